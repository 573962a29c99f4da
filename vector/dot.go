package vector

// dotGeneric is the portable dot product: eight independent accumulators
// let the compiler keep several multiply-adds in flight, which makes it about
// twice as fast as the naive loop (see BenchmarkDot).
func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		x := a[i : i+8 : i+8]
		y := b[i : i+8 : i+8]
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
		s4 += x[4] * y[4]
		s5 += x[5] * y[5]
		s6 += x[6] * y[6]
		s7 += x[7] * y[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3) + (s4 + s5) + (s6 + s7)
}

// dotBatchGeneric sets out[i] to the dot product of q and vs[i].
func dotBatchGeneric(q []float32, vs [][]float32, out []float32) {
	out = out[:len(vs)]
	for i, v := range vs {
		out[i] = dot(q, v)
	}
}

// dotBatchInto returns out, grown to len(vs), holding the dot products of q
// with each of vs.
func dotBatchInto(out, q []float32, vs [][]float32) []float32 {
	if cap(out) < len(vs) {
		out = make([]float32, len(vs), 2*len(vs))
	}
	out = out[:len(vs)]
	dotBatch(q, vs, out)
	return out
}
