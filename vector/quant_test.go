package vector

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDotInt8 checks the int8 kernel, AVX2 where present, and the
// portable one against an exact sum, at every length the index uses
// (multiples of 16), at the extremes ±127 of the vectors, and with a
// query holding -128, which the kernel's sign trick allows on the query
// side only.
func TestDotInt8(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for n := 16; n <= 1024; n += 16 {
		q := make([]int8, n)
		vs := make([][]int8, 5)
		for i := range q {
			q[i] = int8(r.IntN(255) - 127)
		}
		if n%64 == 0 {
			q[r.IntN(n)] = -128
		}
		for k := range vs {
			vs[k] = make([]int8, n)
			for i := range vs[k] {
				switch k {
				case 0:
					vs[k][i] = 127
				case 1:
					vs[k][i] = -127
				default:
					vs[k][i] = int8(r.IntN(255) - 127)
				}
			}
		}
		out := make([]int32, len(vs))
		dotBatchInt8(q, vs, out)
		gen := make([]int32, len(vs))
		dotBatchInt8Generic(q, vs, gen)
		for k, v := range vs {
			var want int64
			for i := range q {
				want += int64(q[i]) * int64(v[i])
			}
			if int64(out[k]) != want || int64(gen[k]) != want {
				t.Fatalf("n=%d vector %d: dotBatchInt8 = %d, dotBatchInt8Generic = %d, want %d", n, k, out[k], gen[k], want)
			}
		}
	}
}

// TestQuantize checks that a quantised unit vector's scaled dot products
// stay within a few thousandths of the float32 ones, and that the padding
// and a zero vector quantise to zeros.
func TestQuantize(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const dim = 384
	unit := func() []float32 {
		v := make([]float32, dim)
		var s float64
		for i := range v {
			v[i] = float32(r.NormFloat64())
			s += float64(v[i]) * float64(v[i])
		}
		for i := range v {
			v[i] /= float32(math.Sqrt(s))
		}
		return v
	}
	qa, qb := make([]int8, qStride(dim)), make([]int8, qStride(dim))
	for range 100 {
		a, b := unit(), unit()
		sa, sb := quantize(qa, a), quantize(qb, b)
		out := make([]int32, 1)
		dotBatchInt8Generic(qa, [][]int8{qb}, out)
		got := float64(out[0]) * float64(sa) * float64(sb)
		if want := float64(dot(a, b)); math.Abs(got-want) > 0.003 {
			t.Fatalf("quantised dot %v, float32 %v", got, want)
		}
	}
	z := make([]int8, qStride(20))
	for i := range z {
		z[i] = 1
	}
	if s := quantize(z, make([]float32, 20)); s != 0 {
		t.Fatalf("scale of a zero vector: %v, want 0", s)
	}
	for i, x := range z {
		if x != 0 {
			t.Fatalf("component %d of a zero vector quantised to %d", i, x)
		}
	}
	if qStride(20) != 32 || qStride(384) != 384 || qStride(1) != 16 {
		t.Fatalf("qStride: %d %d %d", qStride(20), qStride(384), qStride(1))
	}
}
