package vector

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkKernelInt8 scores batches of 32 quantised 384-component
// vectors, as an insertion's search scores a node's neighbours, drawn at
// random from a pool of 200,000 (77 MB, more than the caches hold),
// 20,000 (7.7 MB, more than the L2 cache holds) or 256 (in the L1 and L2
// caches).
//
//	go test -run '^$' -bench KernelInt8 -count 6 ./vector/
func BenchmarkKernelInt8(b *testing.B) {
	for _, pool := range []struct {
		name string
		n    int
	}{{"pool=200000", 200000}, {"pool=20000", 20000}, {"pool=256", 256}} {
		r := rand.New(rand.NewPCG(3, 4))
		const dim = 384
		all := make([]int8, pool.n*dim)
		for i := range all {
			all[i] = int8(r.IntN(255) - 127)
		}
		q := all[:dim]
		batches := make([][][]int8, 1024)
		for i := range batches {
			batches[i] = make([][]int8, 32)
			for j := range batches[i] {
				k := r.IntN(pool.n)
				batches[i][j] = all[k*dim : (k+1)*dim]
			}
		}
		out := make([]int32, 32)
		b.Run(pool.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				dotBatchInt8(q, batches[i%len(batches)], out)
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(32*b.N), "ns/vector")
		})
	}
}
