//go:build !amd64

package vector

import "unsafe"

// useAVX2 is false: the assembly kernel exists only on amd64.
const useAVX2 = false

// dot returns the dot product of a and b, which have the same length.
func dot(a, b []float32) float32 { return dotGeneric(a, b) }

// dotBatch sets out[i] to the dot product of q and vs[i].
func dotBatch(q []float32, vs [][]float32, out []float32) { dotBatchGeneric(q, vs, out) }

// dotBatchInt8 sets out[i] to the dot product of q and vs[i].
func dotBatchInt8(q []int8, vs [][]int8, out []int32) { dotBatchInt8Generic(q, vs, out) }

// prefetchLines does nothing: prefetching is only done on amd64.
func prefetchLines(unsafe.Pointer, int) {}
