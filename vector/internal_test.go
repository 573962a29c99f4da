package vector

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestHeaps checks both heaps against a sorted slice under random pushes
// and pops.
func TestHeaps(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		var hi maxHeap
		var lo minHeap
		var his, los []cand // what each heap should hold
		for range r.IntN(400) {
			if r.IntN(3) == 0 {
				if len(his) > 0 {
					slices.SortFunc(his, compareCand)
					if got := hi.pop(); got != his[0] {
						t.Fatalf("round %d: maxHeap.pop = %v, want %v", round, got, his[0])
					}
					his = his[1:]
				}
				if len(los) > 0 {
					slices.SortFunc(los, compareCand)
					if got := lo.pop(); got != los[len(los)-1] {
						t.Fatalf("round %d: minHeap.pop = %v, want %v", round, got, los[len(los)-1])
					}
					los = los[:len(los)-1]
				}
				continue
			}
			// Few distinct scores, so that ties broken by id are exercised.
			c := cand{score: float32(r.IntN(20)) / 4, id: r.Uint32N(1000)}
			hi.push(c)
			lo.push(c)
			his, los = append(his, c), append(los, c)
			if hi.top() != slices.MinFunc(his, compareCand) || lo.top() != slices.MaxFunc(los, compareCand) {
				t.Fatalf("round %d: wrong top after push", round)
			}
		}
		slices.SortFunc(his, compareCand)
		slices.SortFunc(los, compareCand)
		if got := lo.drainBest(nil); !slices.Equal(got, los) {
			t.Fatalf("round %d: minHeap drained %v, want %v", round, got, los)
		}
		for i := range his {
			if got := hi.pop(); got != his[i] {
				t.Fatalf("round %d: maxHeap pop %d = %v, want %v", round, i, got, his[i])
			}
		}
		if hi.len() != 0 || lo.len() != 0 {
			t.Fatalf("round %d: heaps not empty", round)
		}
	}
}

func TestMinHeap_boundedTopK(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	all := make([]cand, 5000)
	var h minHeap
	for i := range all {
		all[i] = cand{score: r.Float32(), id: uint32(i)}
		h.push(all[i])
		if h.len() > 10 {
			h.pop()
		}
	}
	slices.SortFunc(all, compareCand)
	if got := h.drainBest(nil); !slices.Equal(got, all[:10]) {
		t.Fatalf("top 10 = %v, want %v", got, all[:10])
	}
}

func TestDot(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 200 {
		a, b := make([]float32, n), make([]float32, n)
		var want float64
		for i := range a {
			a[i], b[i] = r.Float32()*2-1, r.Float32()*2-1
			want += float64(a[i]) * float64(b[i])
		}
		tol := 1e-5 * float64(n+1)
		if got := dotGeneric(a, b); math.Abs(float64(got)-want) > tol {
			t.Fatalf("n=%d: dotGeneric = %v, want %v", n, got, want)
		}
		if got := dot(a, b); math.Abs(float64(got)-want) > tol {
			t.Fatalf("n=%d: dot (AVX2 %v) = %v, want %v", n, useAVX2, got, want)
		}
		vs := [][]float32{b, a, b}
		out := make([]float32, 3)
		dotBatch(a, vs, out)
		for i, v := range vs {
			if out[i] != dot(a, v) {
				t.Fatalf("n=%d: dotBatch[%d] = %v, dot = %v", n, i, out[i], dot(a, v))
			}
		}
	}
	t.Logf("AVX2 kernel in use: %v", useAVX2)
}

func TestChunkShift(t *testing.T) {
	for _, tc := range []struct {
		dim   int
		nodes int
	}{{1, chunkMax}, {64, chunkMax}, {384, 2048}, {1536, 512}, {MaxDim, chunkMin}} {
		if got := 1 << chunkShift(tc.dim); got != tc.nodes {
			t.Errorf("dim %d: %d nodes per chunk, want %d", tc.dim, got, tc.nodes)
		}
	}
}

func TestScratch_visitWraps(t *testing.T) {
	var s scratch
	for round := range 70000 {
		s.begin(10)
		if !s.visit(3) {
			t.Fatalf("round %d: 3 already visited", round)
		}
		if s.visit(3) {
			t.Fatalf("round %d: 3 not marked", round)
		}
	}
	s.begin(10)
	if !s.visit(5000) || s.visit(5000) || !s.visit(4) {
		t.Fatal("visit beyond the initial size")
	}
}

func TestLevelOf(t *testing.T) {
	ix, err := New(4, Options{M: 16})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, maxLevel+1)
	const n = 1 << 20
	for k := range uint32(n) {
		counts[ix.levelOf(k)]++
	}
	// P(level >= l) = M^-l.
	for l, want := range []float64{n * 15 / 16, n * 15 / 256} {
		if got := float64(counts[l]); math.Abs(got-want) > 0.02*want {
			t.Errorf("layer %d: %v nodes, want about %v", l, got, want)
		}
	}
	if a, b := ix.levelOf(12345), ix.levelOf(12345); a != b {
		t.Errorf("levelOf is not a function of the key")
	}
}

var sink float32

// BenchmarkDot compares the kernels at the dimension of common sentence
// embeddings.
func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	x, y := make([]float32, 384), make([]float32, 384)
	for i := range x {
		x[i], y[i] = r.Float32(), r.Float32()
	}
	b.Run("naive", func(b *testing.B) {
		for b.Loop() {
			sink = naiveDot(x, y)
		}
	})
	b.Run("unrolled", func(b *testing.B) {
		for b.Loop() {
			sink = dotGeneric(x, y)
		}
	})
	b.Run("dispatch", func(b *testing.B) { // AVX2 where available
		for b.Loop() {
			sink = dot(x, y)
		}
	})
}

// naiveDot is the one-accumulator loop the kernels are measured against.
func naiveDot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// A key is mapped to its id before the id's chunk exists: lookups in that
// moment find nothing rather than panic.
func TestLookup_reservedBeforeChunk(t *testing.T) {
	ix, err := New(4, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.reserve(7); err != nil {
		t.Fatal(err)
	}
	if v, ok := ix.Vector(7); ok || v != nil {
		t.Errorf("Vector of a key being added: %v, %v", v, ok)
	}
	got, err := ix.ExactAmong([]float32{1, 0, 0, 0}, 3, []uint32{7})
	if err != nil || len(got) != 0 {
		t.Errorf("ExactAmong a key being added: %v, %v", got, err)
	}
}
