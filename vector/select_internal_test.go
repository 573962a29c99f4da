package vector

import (
	"fmt"
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

// selectPlain is the heuristic of selectNeighbours written without its
// shortcut for copies: each candidate is compared with every candidate
// kept before it.
func selectPlain(ix *Index, w []cand, m int) []cand {
	var dst []cand
	for _, c := range w {
		if len(dst) >= m {
			break
		}
		cv, cs := ix.qvec(c.id)
		good := true
		for _, k := range dst {
			kv, ks := ix.qvec(k.id)
			d := make([]int32, 1)
			dotBatchInt8Generic(cv, [][]int8{kv}, d)
			if float32(d[0])*cs*ks > c.score {
				good = false
				break
			}
		}
		if good {
			dst = append(dst, c)
		}
	}
	return dst
}

// TestSelectNeighbours_copies checks that comparing a candidate with one
// of each set of copies among the kept ones keeps exactly what comparing
// it with all of them keeps, on an index where most vectors have copies:
// exact ones, and ones scaled by 2 (the same int8 components, another
// scale, so not copies), among distinct vectors.
func TestSelectNeighbours_copies(t *testing.T) {
	const dim = 64
	r := rand.New(rand.NewPCG(5, 6))
	var uniq [][]float32
	for range 12 {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		uniq = append(uniq, v)
	}
	ix, err := New(dim, Options{M: 4})
	if err != nil {
		t.Fatal(err)
	}
	var vecs [][]float32
	for k := range 600 {
		var v []float32
		switch k % 3 {
		case 0: // an exact copy of one of the twelve
			v = uniq[r.IntN(len(uniq))]
		case 1: // one of them scaled by 2
			v = slices.Clone(uniq[r.IntN(len(uniq))])
			for j := range v {
				v[j] *= 2
			}
		default: // near one of them
			v = slices.Clone(uniq[r.IntN(len(uniq))])
			for j := range v {
				v[j] += 0.3 * float32(r.NormFloat64())
			}
		}
		vecs = append(vecs, v)
		if err := ix.Add(uint32(k), v); err != nil {
			t.Fatal(err)
		}
	}
	s := ix.getScratch()
	copiesKept := 0
	for p := range 300 {
		base := vecs[r.IntN(len(vecs))]
		var pool []cand
		for _, id := range r.Perm(len(vecs))[:40] {
			sc := dot(base, ix.vec(uint32(id)))
			if p%2 == 1 { // as connect scores a pool: from the int8 copies
				bq := make([]int8, ix.qdim)
				bs := quantize(bq, base)
				cv, cs := ix.qvec(uint32(id))
				d := make([]int32, 1)
				dotBatchInt8Generic(bq, [][]int8{cv}, d)
				sc = float32(d[0]) * bs * cs
			}
			pool = append(pool, cand{score: sc, id: uint32(id)})
		}
		slices.SortFunc(pool, compareCand)
		for _, m := range []int{4, 8, 40} {
			want := selectPlain(ix, pool, m)
			got := ix.selectNeighbours(s, nil, pool, m)
			if !slices.Equal(got, want) {
				t.Fatalf("pool %d, m %d: kept %v, the plain heuristic %v", p, m, got, want)
			}
			seen := map[string]bool{}
			for _, c := range want {
				q, sc := ix.qvec(c.id)
				key := fmt.Sprint(q, sc)
				if seen[key] {
					copiesKept++
				}
				seen[key] = true
			}
		}
	}
	if copiesKept < 100 {
		t.Fatalf("only %d copies kept beside another in all the pools: the shortcut is not exercised", copiesKept)
	}
	t.Logf("%d copies kept beside another", copiesKept)
}
