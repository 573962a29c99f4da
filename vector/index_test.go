package vector_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/vector"
)

func TestNew(t *testing.T) {
	ix, err := vector.New(8, vector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ix.Options(), vector.DefaultOptions(); got != want {
		t.Errorf("Options() = %+v, want the defaults %+v", got, want)
	}
	if ix.Dim() != 8 || ix.Len() != 0 {
		t.Errorf("Dim, Len = %d, %d; want 8, 0", ix.Dim(), ix.Len())
	}
	for _, tc := range []struct {
		name string
		dim  int
		opts vector.Options
	}{
		{"dim 0", 0, vector.Options{}},
		{"dim too large", vector.MaxDim + 1, vector.Options{}},
		{"M 1", 8, vector.Options{M: 1}},
		{"M negative", 8, vector.Options{M: -3}},
		{"M too large", 8, vector.Options{M: vector.MaxM + 1}},
		{"EfConstruction negative", 8, vector.Options{EfConstruction: -1}},
		{"EfSearch too large", 8, vector.Options{EfSearch: vector.MaxEf + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := vector.New(tc.dim, tc.opts); nexus.ErrorCode(err) != nexus.EInvalid {
				t.Errorf("New(%d, %+v) = %v, want an invalid error", tc.dim, tc.opts, err)
			}
		})
	}
}

func TestIndex_Add_errors(t *testing.T) {
	ix := MustBuild(t, 3, vector.Options{}, [][]float32{{1, 0, 0}})
	for _, tc := range []struct {
		name string
		key  uint32
		v    []float32
		code nexus.Code
	}{
		{"short", 1, []float32{1, 0}, nexus.EInvalid},
		{"long", 1, []float32{1, 0, 0, 0}, nexus.EInvalid},
		{"nil", 1, nil, nexus.EInvalid},
		{"NaN", 1, []float32{0, float32(math.NaN()), 1}, nexus.EInvalid},
		{"+Inf", 1, []float32{float32(math.Inf(1)), 0, 0}, nexus.EInvalid},
		{"-Inf", 1, []float32{0, 0, float32(math.Inf(-1))}, nexus.EInvalid},
		{"duplicate key", 0, []float32{0, 1, 0}, nexus.EConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ix.Add(tc.key, tc.v)
			if nexus.ErrorCode(err) != tc.code {
				t.Fatalf("Add = %v, want code %s", err, tc.code)
			}
			t.Log(err)
		})
	}
	if ix.Len() != 1 {
		t.Errorf("Len = %d after failed adds, want 1", ix.Len())
	}
	for _, q := range [][]float32{{1, 0}, {float32(math.NaN()), 0, 0}} {
		if _, err := ix.Search(q, 1, nil); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("Search(%v) = %v, want an invalid error", q, err)
		}
		if _, err := ix.Exact(q, 1, nil); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("Exact(%v) = %v, want an invalid error", q, err)
		}
	}
	if _, err := ix.Search([]float32{1, 0, 0}, -1, nil); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Errorf("Search with k -1 = %v, want an invalid error", err)
	}
	if _, err := ix.SearchEf([]float32{1, 0, 0}, 1, -1, nil); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Errorf("SearchEf with ef -1 = %v, want an invalid error", err)
	}
}

func TestIndex_Search_small(t *testing.T) {
	ix, err := vector.New(2, vector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ix.Search([]float32{1, 0}, 3, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty index: Search = %v, %v", got, err)
	}
	// Keys need not be dense or ordered.
	vs := map[uint32][]float32{7: {1, 0}, 3: {0, 1}, 1 << 31: {0.6, 0.8}, 42: {-1, 0}}
	for k, v := range vs {
		if err := ix.Add(k, v); err != nil {
			t.Fatal(err)
		}
	}
	want := []vector.Result{{7, 1}, {1 << 31, 0.6}, {3, 0}, {42, -1}}
	for _, k := range []int{1, 3, 4, 10} {
		got, err := ix.Search([]float32{1, 0}, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		if w := want[:min(k, 4)]; !slices.Equal(got, w) {
			t.Errorf("Search k=%d = %v, want %v", k, got, w)
		}
		if got, _ := ix.Exact([]float32{1, 0}, k, nil); !slices.Equal(got, want[:min(k, 4)]) {
			t.Errorf("Exact k=%d = %v, want %v", k, got, want[:min(k, 4)])
		}
	}
	if got, err := ix.Search([]float32{1, 0}, 0, nil); err != nil || len(got) != 0 {
		t.Errorf("Search k=0 = %v, %v; want nothing", got, err)
	}
}

// TestIndex_recall checks recall@10 against Exact on clustered data: a
// thousand small clusters, and a few large ones, which are harder because
// the ten nearest must be told apart among a thousand similar vectors.
func TestIndex_recall(t *testing.T) {
	n, dim, nq := 20000, 64, 200
	if testing.Short() || raceEnabled {
		n, nq = 4000, 100
	}
	for _, tc := range []struct {
		name     string
		clusters int
	}{{"1000 clusters", 1000}, {"clusters of 1000", n / 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			base, queries := dataset(7, n, nq, dim, tc.clusters, 1)
			ix := MustBuild(t, dim, vector.Options{}, base)
			if ix.Len() != n {
				t.Fatalf("Len = %d, want %d", ix.Len(), n)
			}
			var sum float64
			for _, q := range queries {
				got, err := ix.Search(q, 10, nil)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ix.Exact(q, 10, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 10 || !slices.IsSortedFunc(got, byScore) {
					t.Fatalf("Search returned %d results, sorted %v", len(got), slices.IsSortedFunc(got, byScore))
				}
				sum += recall(got, want)
			}
			r := sum / float64(nq)
			t.Logf("%d x %d, %s: recall@10 %.4f", n, dim, tc.name, r)
			if r < 0.95 {
				t.Errorf("recall@10 = %.4f, want >= 0.95", r)
			}
		})
	}
}

func byScore(a, b vector.Result) int {
	switch {
	case a.Score > b.Score:
		return -1
	case a.Score < b.Score:
		return 1
	}
	return 0
}

func TestIndex_Search_filtered(t *testing.T) {
	n, dim, nq := 5000, 32, 50
	if testing.Short() || raceEnabled {
		n, nq = 2000, 15
	}
	base, queries := dataset(11, n, nq, dim, n/100, 1)
	ix := MustBuild(t, dim, vector.Options{}, base)
	for _, tc := range []struct {
		name  string
		allow func(uint32) bool
		k     int
		want  int // results expected
	}{
		{"one in ten", func(k uint32) bool { return k%10 == 3 }, 10, 10},
		{"one in a hundred", func(k uint32) bool { return k%100 == 42 }, 10, 10},
		{"one cluster's worth", func(k uint32) bool { return k < 100 }, 20, 20},
		{"exactly k", func(k uint32) bool { return k%400 == 399 }, 5, 5},
		{"fewer than k", func(k uint32) bool { return k == 17 || k == 1999 }, 10, 2},
		{"none", func(uint32) bool { return false }, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sum float64
			for _, q := range queries {
				calls := map[uint32]int{}
				got, err := ix.Search(q, tc.k, func(k uint32) bool {
					calls[k]++
					return tc.allow(k)
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tc.want {
					t.Fatalf("%d results, want %d", len(got), tc.want)
				}
				for _, r := range got {
					if !tc.allow(r.Key) {
						t.Fatalf("result %d is not allowed", r.Key)
					}
				}
				for k, c := range calls {
					if c > 2 { // once by the walk, once by Exact if it falls back
						t.Fatalf("allow(%d) called %d times", k, c)
					}
				}
				want, err := ix.Exact(q, tc.k, tc.allow)
				if err != nil {
					t.Fatal(err)
				}
				sum += recall(got, want)
			}
			if r := sum / float64(len(queries)); r < 0.95 {
				t.Errorf("filtered recall@%d = %.4f, want >= 0.95", tc.k, r)
			}
		})
	}
}

func TestIndex_Exact(t *testing.T) {
	base, queries := dataset(3, 1500, 20, 16, 15, 1)
	ix := MustBuild(t, 16, vector.Options{M: 4, EfConstruction: 16}, base)
	allow := func(k uint32) bool { return k%3 != 0 }
	for _, q := range queries {
		var want []vector.Result
		for i, v := range base {
			if allow(uint32(i)) {
				var s float32
				for j := range v {
					s += q[j] * v[j]
				}
				want = append(want, vector.Result{Key: uint32(i), Score: s})
			}
		}
		slices.SortStableFunc(want, byScore)
		got, err := ix.Exact(q, 25, allow)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i].Key != want[i].Key || math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
				t.Fatalf("Exact[%d] = %v, want %v", i, got[i], want[i])
			}
		}
		if len(got) != 25 {
			t.Fatalf("Exact returned %d, want 25", len(got))
		}
	}
}

// TestIndex_concurrent adds from several goroutines while others search,
// filter, run Exact and write the index out; run it with -race.
func TestIndex_concurrent(t *testing.T) {
	n, dim := 4000, 16
	base, queries := dataset(5, n, 20, dim, 40, 1)
	ix, err := vector.New(dim, vector.Options{M: 8, EfConstruction: 40})
	if err != nil {
		t.Fatal(err)
	}
	var added atomic.Int64
	var writers, readers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			for i := w; i < n; i += 4 {
				if err := ix.Add(uint32(i), base[i]); err != nil {
					t.Error(err)
					return
				}
				added.Add(1)
			}
		})
	}
	stop := make(chan struct{})
	for r := range 3 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				q := queries[(i+r)%len(queries)]
				before := int(added.Load())
				var allow func(uint32) bool
				if i%2 == 1 {
					allow = func(k uint32) bool { return k%7 == 0 }
				}
				got, err := ix.Search(q, 10, allow)
				if err != nil {
					t.Error(err)
					return
				}
				if allow == nil && before >= 10 && len(got) < 10 {
					t.Errorf("Search returned %d results with %d vectors added", len(got), before)
					return
				}
				if _, err := ix.Exact(q, 5, allow); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					var buf countingDiscard
					if _, err := ix.WriteTo(&buf); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	if ix.Len() != n {
		t.Fatalf("Len = %d, want %d", ix.Len(), n)
	}
	var sum float64
	for _, q := range queries {
		got, _ := ix.Search(q, 10, nil)
		want, _ := ix.Exact(q, 10, nil)
		sum += recall(got, want)
	}
	if r := sum / float64(len(queries)); r < 0.95 {
		t.Errorf("recall@10 after a concurrent build = %.4f, want >= 0.95", r)
	}
	// Read checks every link of the graph.
	if _, err := vector.Read(bytes.NewReader(MustEncode(t, ix))); err != nil {
		t.Fatalf("the concurrently built graph does not read back: %v", err)
	}
	for i := range 10 {
		if err := ix.Add(uint32(i), base[i]); nexus.ErrorCode(err) != nexus.EConflict {
			t.Fatalf("re-adding key %d: %v, want a conflict", i, err)
		}
	}
}

type countingDiscard struct{ n int }

func (c *countingDiscard) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

// TestIndex_ExactAmong checks that scanning a given set of keys gives
// what Exact gives with a filter that keeps exactly those keys, keys the
// index lacks skipped.
func TestIndex_ExactAmong(t *testing.T) {
	const n, dim = 3000, 16
	ix, err := vector.New(dim, vector.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	unit := func() []float32 {
		v := make([]float32, dim)
		s := float32(0)
		for i := range v {
			v[i] = float32(r.NormFloat64())
			s += v[i] * v[i]
		}
		for i := range v {
			v[i] /= float32(math.Sqrt(float64(s)))
		}
		return v
	}
	for i := range n {
		if err := ix.Add(uint32(i*2), unit()); err != nil { // even keys only
			t.Fatal(err)
		}
	}
	for round := range 50 {
		var keys []uint32
		every := 1 + r.IntN(300)
		for k := uint32(r.IntN(every)); k < 2*n+10; k += uint32(1 + r.IntN(every)) {
			keys = append(keys, k)
		}
		in := func(k uint32) bool { _, found := slices.BinarySearch(keys, k); return found }
		q := unit()
		k := []int{1, 10, 100}[round%3]
		got, err := ix.ExactAmong(q, k, keys)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ix.Exact(q, k, in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d, k=%d over %d keys:\n got %v\nwant %v", round, k, len(keys), got, want)
		}
	}
	if _, err := ix.ExactAmong(make([]float32, dim+1), 3, []uint32{0}); err == nil {
		t.Fatal("a query of the wrong dimension was accepted")
	}
}
