package vector

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// kernels runs f once with the assembly kernels (where the CPU has them)
// and once with the portable ones forced, as subtests named after them.
func kernels(t *testing.T, f func(t *testing.T)) {
	for _, on := range []bool{true, false} {
		name := "generic"
		if on {
			name = "avx2"
		}
		t.Run(name, func(t *testing.T) {
			if got := forceAVX2(t, on); got != on {
				t.Logf("the CPU lacks AVX2: the portable kernels run here too")
			}
			f(t)
		})
	}
}

// intVector returns n floats holding small integers, whose dot products
// are exact in float32 whatever the order of the additions: every kernel
// must then give the same bits.
func intVector(r *rand.Rand, n, lim int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.IntN(2*lim+1) - lim)
	}
	return v
}

// TestKernels_exact checks every kernel, assembly and portable, against
// an exact integer sum at every length from 0 to 300, in batches of 0 to 9
// vectors (the batch kernels prefetch the next vector, so the count
// matters): float32 on integer-valued vectors, int8 at multiples of 16
// including the extremes ±127.
func TestKernels_exact(t *testing.T) {
	kernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for n := 0; n <= 300; n++ {
			q := intVector(r, n, 16)
			vs := make([][]float32, r.IntN(10))
			for i := range vs {
				vs[i] = intVector(r, n, 16)
			}
			out := dotBatchInto(nil, q, vs)
			for i, v := range vs {
				var want int64
				for j := range q {
					want += int64(q[j]) * int64(v[j])
				}
				if got := dot(q, v); got != float32(want) {
					t.Fatalf("n=%d: dot = %v, want %d", n, got, want)
				}
				if got := dotGeneric(q, v); got != float32(want) {
					t.Fatalf("n=%d: dotGeneric = %v, want %d", n, got, want)
				}
				if out[i] != float32(want) {
					t.Fatalf("n=%d: dotBatch[%d] = %v, want %d", n, i, out[i], want)
				}
			}
		}
		for n := 16; n <= 1024; n += 16 {
			q8 := make([]int8, n)
			for j := range q8 {
				q8[j] = int8(r.IntN(255) - 127)
			}
			vs := make([][]int8, r.IntN(10))
			for i := range vs {
				vs[i] = make([]int8, n)
				for j := range vs[i] {
					switch i {
					case 0:
						vs[i][j] = 127
					case 1:
						vs[i][j] = -127
					default:
						vs[i][j] = int8(r.IntN(255) - 127)
					}
				}
			}
			if len(vs) > 0 && n == 16 {
				clear(q8) // a zero query
			}
			out := make([]int32, len(vs))
			dotBatchInt8(q8, vs, out)
			for i, v := range vs {
				var want int64
				for j := range q8 {
					want += int64(q8[j]) * int64(v[j])
				}
				if int64(out[i]) != want {
					t.Fatalf("n=%d vector %d: dotBatchInt8 = %d, want %d", n, i, out[i], want)
				}
			}
		}
	})
}

// TestKernels_sameIndex builds the same index twice, one vector at a time,
// with the assembly kernels and with the portable ones, from
// integer-valued vectors (every float32 dot product exact, so both kernels
// give the same bits): the saved indexes must be byte for byte the same
// and every search must answer the same. Where the CPU has AVX2 this shows
// that the portable fallback builds the graph the assembly builds.
func TestKernels_sameIndex(t *testing.T) {
	const dim, n = 40, 3000 // 40: the int8 copies are padded to 48
	r := rand.New(rand.NewPCG(13, 14))
	base := make([][]float32, n)
	for i := range base {
		base[i] = intVector(r, dim, 8)
	}
	base[7] = make([]float32, dim) // a zero vector among them
	queries := make([][]float32, 50)
	for i := range queries {
		queries[i] = intVector(r, dim, 8)
	}
	var saved [2][]byte
	var results [2][][]Result
	for k, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "avx2", false: "generic"}[on], func(t *testing.T) {
			forceAVX2(t, on)
			ix, err := New(dim, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range base {
				if err := ix.Add(uint32(i), v); err != nil {
					t.Fatal(err)
				}
			}
			var buf bytes.Buffer
			if _, err := ix.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			saved[k] = buf.Bytes()
			for _, q := range queries {
				res, err := ix.Search(q, 10, func(key uint32) bool { return key%3 != 0 })
				if err != nil {
					t.Fatal(err)
				}
				results[k] = append(results[k], res)
			}
		})
	}
	if !bytes.Equal(saved[0], saved[1]) {
		t.Fatalf("the saved indexes differ (%d and %d bytes)", len(saved[0]), len(saved[1]))
	}
	for i := range queries {
		if !slices.Equal(results[0][i], results[1][i]) {
			t.Fatalf("query %d: %v with AVX2, %v without", i, results[0][i], results[1][i])
		}
	}
}

// TestQuantize_extremes quantises vectors at the ends of the float32
// range: subnormal, tiny, huge, a single non-zero component, and zero.
// Every component must be within half a step of the vector, the largest
// at ±127, the padding zero, and the scale finite.
func TestQuantize_extremes(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	const dim = 20
	for _, scale := range []float64{1e-45, 1e-40, 1e-30, 1e-3, 1, 1e20, 3e38} {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(scale * (r.Float64()*2 - 1))
		}
		v[3] = float32(scale) // the largest
		checkQuantized(t, v)
		one := make([]float32, dim)
		one[dim-1] = float32(-scale)
		checkQuantized(t, one)
	}
	checkQuantized(t, make([]float32, dim))
}

// checkQuantized quantises v and checks the result (see
// TestQuantize_extremes and FuzzQuantize).
func checkQuantized(t *testing.T, v []float32) {
	t.Helper()
	dst := make([]int8, qStride(len(v)))
	for i := range dst {
		dst[i] = 99 // must be overwritten
	}
	s := quantize(dst, v)
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) || s < 0 {
		t.Fatalf("scale %v for a vector of largest magnitude %v", s, m)
	}
	step := m / 127
	top := false
	for i, q := range dst {
		if i >= len(v) {
			if q != 0 {
				t.Fatalf("padding component %d = %d", i, q)
			}
			continue
		}
		if q == -128 {
			t.Fatalf("component %d = -128, outside ±127", i)
		}
		if d := math.Abs(float64(q)*step - float64(v[i])); d > step*0.5000001 {
			t.Fatalf("component %d: %d steps of %v for %v (off by %v)", i, q, step, v[i], d)
		}
		top = top || q == 127 || q == -127
	}
	if m > 0 && !top {
		t.Fatalf("no component at ±127 for a vector of largest magnitude %v: %v", m, dst)
	}
	if m == 0 && s != 0 {
		t.Fatalf("scale %v for a zero vector", s)
	}
}

// TestIndex_extremeScales builds an index of vectors whose lengths span
// the float32 range (subnormal to 1e18, and zero vectors) and checks that
// a search as wide as the index finds exactly what an exact scan finds.
func TestIndex_extremeScales(t *testing.T) {
	kernels(t, func(t *testing.T) {
		const dim, n = 24, 400
		r := rand.New(rand.NewPCG(17, 18))
		scales := []float64{0, 1e-44, 1e-30, 1e-5, 1, 1e10, 1e18}
		ix, err := New(dim, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			v := make([]float32, dim)
			s := scales[i%len(scales)]
			for j := range v {
				v[j] = float32(s * r.NormFloat64())
			}
			if err := ix.Add(uint32(i), v); err != nil {
				t.Fatal(err)
			}
		}
		for qi := range 40 {
			q := make([]float32, dim)
			for j := range q {
				q[j] = float32(r.NormFloat64())
			}
			got, err := ix.SearchEf(q, 10, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ix.Exact(q, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("query %d: search %v, exact %v", qi, got, want)
			}
		}
	})
}

// FuzzQuantize quantises arbitrary float32 vectors (NaN and infinite
// components, which Add refuses, become 0) and checks the result as
// TestQuantize_extremes does; then the int8 kernels, assembly and
// portable, must agree exactly on the dot products of the quantised
// vector with itself and with its reverse.
func FuzzQuantize(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 0, 1, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff, 0xff, 0x7f, 0x7f}, 17))
	f.Add(bytes.Repeat([]byte{1, 0, 0, 0x80}, 33))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := make([]float32, min(len(data)/4, 2048))
		for i := range v {
			x := math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				x = 0
			}
			v[i] = x
		}
		if len(v) == 0 {
			return
		}
		checkQuantized(t, v)
		q := make([]int8, qStride(len(v)))
		quantize(q, v)
		rev := slices.Clone(q)
		slices.Reverse(rev)
		vs := [][]int8{q, rev}
		want := make([]int32, 2)
		dotBatchInt8Generic(q, vs, want)
		got := make([]int32, 2)
		dotBatchInt8(q, vs, got)
		if !slices.Equal(got, want) {
			t.Fatalf("int8 kernel %v, portable %v", got, want)
		}
	})
}
