package vector_test

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus/vector"
)

// clustered returns n unit vectors of dim components drawn around clusters
// random unit centres: centre + sigma*g/sqrt(dim) for a standard normal g,
// normalised. With sigma 1 a vector's cosine to its centre is about 0.7 and
// to another member of its cluster about 0.5, as for sentence embeddings of
// one topic; vectors of different clusters are nearly orthogonal.
func clustered(seed uint64, n, dim, clusters int, sigma float64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	centres := make([][]float64, clusters)
	for i := range centres {
		c := make([]float64, dim)
		for j := range c {
			c[j] = r.NormFloat64()
		}
		centres[i] = normalise64(c)
	}
	out := make([][]float32, n)
	v := make([]float64, dim)
	scale := sigma / math.Sqrt(float64(dim))
	for i := range out {
		c := centres[r.IntN(clusters)]
		for j := range v {
			v[j] = c[j] + scale*r.NormFloat64()
		}
		normalise64(v)
		f := make([]float32, dim)
		for j := range f {
			f[j] = float32(v[j])
		}
		out[i] = f
	}
	return out
}

func normalise64(v []float64) []float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	s = math.Sqrt(s)
	for i := range v {
		v[i] /= s
	}
	return v
}

// dataset is a clustered base set and queries from the same distribution.
func dataset(seed uint64, n, queries, dim, clusters int, sigma float64) (base, qs [][]float32) {
	all := clustered(seed, n+queries, dim, clusters, sigma)
	return all[:n], all[n:]
}

// build adds base[i] under key i from workers goroutines.
func build(tb testing.TB, ix *vector.Index, base [][]float32, workers int) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(base); i += workers {
				if err := ix.Add(uint32(i), base[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// MustBuild returns an index of base under keys 0..len(base)-1.
func MustBuild(tb testing.TB, dim int, opts vector.Options, base [][]float32) *vector.Index {
	tb.Helper()
	ix, err := vector.New(dim, opts)
	if err != nil {
		tb.Fatal(err)
	}
	build(tb, ix, base, 2)
	return ix
}

// recall returns the fraction of the exact top-k keys found in got.
func recall(got, want []vector.Result) float64 {
	if len(want) == 0 {
		return 1
	}
	in := make(map[uint32]bool, len(want))
	for _, r := range want {
		in[r.Key] = true
	}
	hit := 0
	for _, r := range got {
		if in[r.Key] {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

// envInt returns the integer in environment variable name, or def.
func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}
