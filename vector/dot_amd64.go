package vector

import "unsafe"

// useAVX2 is set when the processor and the operating system support AVX2
// and FMA, the instructions dotAVX2 uses.
var useAVX2 = detectAVX2()

// dot returns the dot product of a and b, which have the same length.
func dot(a, b []float32) float32 {
	if useAVX2 && len(a) > 0 {
		_ = b[len(a)-1] // the assembly trusts the lengths
		return dotAVX2(&a[0], &b[0], len(a))
	}
	return dotGeneric(a, b)
}

// dotBatch sets out[i] to the dot product of q and vs[i]; every vs[i] has
// the length of q, and out the length of vs.
func dotBatch(q []float32, vs [][]float32, out []float32) {
	if !useAVX2 || len(q) == 0 || len(vs) == 0 {
		dotBatchGeneric(q, vs, out)
		return
	}
	out = out[:len(vs)]
	for _, v := range vs {
		if len(v) != len(q) {
			panic("vector: dotBatch length mismatch")
		}
	}
	dotBatchAVX2(&q[0], &vs[0], len(vs), len(q), &out[0])
}

// dotBatchInt8 sets out[i] to the dot product of q and vs[i]; q and
// every vs[i] have the same length, a multiple of 16, no component of a
// vs[i] is -128 (quantize gives ±127 at most), and out has the length of
// vs.
func dotBatchInt8(q []int8, vs [][]int8, out []int32) {
	if !useAVX2 || len(q) == 0 || len(vs) == 0 {
		dotBatchInt8Generic(q, vs, out)
		return
	}
	out = out[:len(vs)]
	if len(q)%16 != 0 {
		panic("vector: dotBatchInt8 length not a multiple of 16")
	}
	for _, v := range vs {
		if len(v) != len(q) {
			panic("vector: dotBatchInt8 length mismatch")
		}
	}
	dotBatchInt8AVX2(&q[0], &vs[0], len(vs), len(q), &out[0])
}

// detectAVX2 reports whether AVX2 and FMA can be used: the CPU has them and
// the operating system saves the YMM registers (OSXSAVE and XCR0 bits 1-2).
func detectAVX2() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if ecx1&fma == 0 || ecx1&osxsave == 0 || ecx1&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0
}

// dotAVX2 returns the dot product of the n floats at a and b.
//
//go:noescape
func dotAVX2(a, b *float32, n int) float32

// dotBatchAVX2 sets out[i] to the dot product of q and vs[i] for i < n.
//
//go:noescape
func dotBatchAVX2(q *float32, vs *[]float32, n, dim int, out *float32)

// dotBatchInt8AVX2 sets out[i] to the dot product of q and vs[i] for i < n.
//
//go:noescape
func dotBatchInt8AVX2(q *int8, vs *[]int8, n, dim int, out *int32)

// prefetchLines asks for the n cache lines from p to be loaded.
//
//go:noescape
func prefetchLines(p unsafe.Pointer, n int)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)
