package vector

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// selectPools builds an index of n clustered unit vectors and returns it
// with, for some nodes, the pool a full bottom-layer neighbour list is
// pruned from: its 2M+1 most similar nodes, best first.
func selectPools(t testing.TB, n, pools int) (*Index, [][]cand) {
	const dim = 384
	r := rand.New(rand.NewPCG(3, 4))
	centers := make([][]float32, 40)
	for i := range centers {
		centers[i] = make([]float32, dim)
		for j := range centers[i] {
			centers[i][j] = float32(r.NormFloat64())
		}
	}
	ix, err := New(dim, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range n {
		v := make([]float32, dim)
		c := centers[r.IntN(len(centers))]
		var norm float64
		for j := range v {
			v[j] = c[j] + 0.6*float32(r.NormFloat64())
			norm += float64(v[j]) * float64(v[j])
		}
		for j := range v {
			v[j] /= float32(math.Sqrt(norm))
		}
		if err := ix.Add(uint32(k), v); err != nil {
			t.Fatal(err)
		}
	}
	ids := int(ix.next.Load())
	var out [][]cand
	for p := range pools {
		base := uint32(p * ids / pools)
		var all []cand
		for id := range uint32(ids) {
			if id != base {
				all = append(all, cand{score: dot(ix.vec(base), ix.vec(id)), id: id})
			}
		}
		slices.SortFunc(all, compareCand)
		out = append(out, all[:ix.m0+1])
	}
	return ix, out
}

// The pools of the benchmark exercise the heuristic: it rejects some of
// every pool, and keeps several of most.
func TestSelectPools(t *testing.T) {
	ix, pools := selectPools(t, 3000, 100)
	several := 0
	for i, pool := range pools {
		got := ix.selectNeighbours(ix.getScratch(), nil, pool, ix.m0)
		if len(got) == len(pool) {
			t.Fatalf("pool %d: all %d kept", i, len(pool))
		}
		if len(got) >= 2 {
			several++
		}
	}
	if several <= len(pools)/2 {
		t.Fatalf("%d of %d pools keep more than one", several, len(pools))
	}
}

// BenchmarkSelectNeighbours is the pruning of one full bottom-layer
// neighbour list (2M+1 candidates to 2M), which each insertion does for
// every neighbour whose list is full.
func BenchmarkSelectNeighbours(b *testing.B) {
	ix, pools := selectPools(b, 20000, 2000)
	var dst []cand
	s := ix.getScratch()
	i := 0
	for b.Loop() {
		dst = ix.selectNeighbours(s, dst[:0], pools[i%len(pools)], ix.m0)
		i++
	}
}
