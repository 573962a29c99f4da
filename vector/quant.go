package vector

import "math"

// Insertions search the graph with 8-bit copies of the vectors: each
// vector is scaled by its own largest magnitude into int8 components
// (scalar quantisation), which reads a quarter of the memory per distance
// and multiplies 32 components per instruction (dot_amd64.s). Insertions use them for
// the search for candidates, for the ranking of the candidates found and
// the heuristic's comparisons of a candidate with the neighbours already
// kept, and for the pruning of a full neighbour list (only the scores of
// links a concurrent insertion made to a node before its own are taken in
// float32: setLinks); queries use float32 throughout. Every kernel has a portable Go version, used where
// the CPU lacks AVX2 and checked against the assembly bit for bit
// (kernel_test.go).
// The 8-bit copies are derived from the float32 vectors, on Add and on
// Read, so they are not part of the saved format.

// qStride returns the bytes of one quantised vector of dim components: a
// multiple of 16 (the kernel's step), zero-padded.
func qStride(dim int) int { return (dim + 15) &^ 15 }

// quantize writes v scaled to int8 into dst (len qStride) and returns the
// scale: v[i] ≈ dst[i] * scale. Components round to the nearest step and
// stay within ±127; the largest magnitude maps to ±127. The arithmetic is
// in float64, so that a vector whose largest component is subnormal (127/m
// beyond the float32 range) quantises like any other; its scale may then
// round to 0 in float32, which only makes its approximate scores 0: an
// insertion ranks it last among its candidates, and queries, which score
// in float32, find it as any other.
func quantize(dst []int8, v []float32) float32 {
	var m float64
	for _, x := range v {
		m = max(m, math.Abs(float64(x)))
	}
	clear(dst)
	if m == 0 {
		return 0
	}
	inv := 127 / m
	for i, x := range v {
		dst[i] = int8(max(-127, min(127, math.Round(float64(x)*inv))))
	}
	return float32(m / 127)
}

// dotBatchInt8Generic is the portable kernel: it sets out[i] to the dot
// product of q and vs[i], with four sums in flight.
func dotBatchInt8Generic(q []int8, vs [][]int8, out []int32) {
	out = out[:len(vs)]
	for k, v := range vs {
		v = v[:len(q)]
		var s0, s1, s2, s3 int32
		i := 0
		for ; i+4 <= len(q); i += 4 {
			s0 += int32(q[i]) * int32(v[i])
			s1 += int32(q[i+1]) * int32(v[i+1])
			s2 += int32(q[i+2]) * int32(v[i+2])
			s3 += int32(q[i+3]) * int32(v[i+3])
		}
		for ; i < len(q); i++ {
			s0 += int32(q[i]) * int32(v[i])
		}
		out[k] = s0 + s1 + s2 + s3
	}
}

// quantizeNode derives the quantised copy of node i of c from its float32
// vector: the int8 components, their scale and their dot product with
// themselves.
func (ix *Index) quantizeNode(c *chunk, i int) {
	q := c.qvecs[i*ix.qdim : (i+1)*ix.qdim : (i+1)*ix.qdim]
	scale := quantize(q, c.vecs[i*ix.dim:(i+1)*ix.dim])
	var n int32
	for _, x := range q {
		n += int32(x) * int32(x)
	}
	c.qmeta[i] = qmeta{scale: scale, norm: n}
}

// qvec returns the quantised vector of node id and its scale.
func (ix *Index) qvec(id uint32) ([]int8, float32) {
	c, i := ix.chunkOf(id)
	s := ix.qdim
	return c.qvecs[i*s : (i+1)*s : (i+1)*s], c.qmeta[i].scale
}

// qvecNorm is qvec with the dot product of the quantised vector with
// itself.
func (ix *Index) qvecNorm(id uint32) ([]int8, float32, int32) {
	c, i := ix.chunkOf(id)
	s := ix.qdim
	m := c.qmeta[i]
	return c.qvecs[i*s : (i+1)*s : (i+1)*s], m.scale, m.norm
}

// qscores returns in s.scores the approximate similarity of the query
// s.q8 (scale s.qs) to each of ids, from the quantised vectors.
func (ix *Index) qscores(s *scratch, ids []uint32) []float32 {
	s.qv = s.qv[:0]
	s.qsc = s.qsc[:0]
	for _, id := range ids {
		v, sc := ix.qvec(id)
		s.qv = append(s.qv, v)
		s.qsc = append(s.qsc, sc)
	}
	if cap(s.idots) < len(ids) {
		s.idots = make([]int32, len(ids), 2*len(ids))
	}
	s.idots = s.idots[:len(ids)]
	dotBatchInt8(s.q8, s.qv, s.idots)
	if cap(s.scores) < len(ids) {
		s.scores = make([]float32, len(ids), 2*len(ids))
	}
	s.scores = s.scores[:len(ids)]
	for j, d := range s.idots {
		s.scores[j] = float32(d) * s.qs * s.qsc[j]
	}
	return s.scores
}

// grow returns b with length n, reallocated if its capacity is less.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n, 2*n)
	}
	return b[:n]
}
