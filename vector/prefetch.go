package vector

// How far ahead of the vector they multiply the batch kernels prefetch
// (dot_amd64.s). A graph walk scores vectors at random places in memory,
// so each costs a cache miss that the arithmetic cannot hide; prefetching
// many ahead keeps several misses in flight at once. An int8 vector is six
// cache lines, a float32 one twenty-four: the int8 kernel asks for a whole
// batch of a node's neighbours at once (up to int8Ahead of them), the
// float32 one for the next floatAhead. Measured by BenchmarkPrefetch
// (docs/BENCHMARKS.md, "Prefetch distance"); variables only so that the
// benchmark can compare distances in one process.
var (
	int8Ahead  = 24
	floatAhead = 4
)
