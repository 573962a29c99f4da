package keyword

import "math"

// A posting is one uint32: the document key in the low docBits bits and
// the term frequency, capped at tfEscape, in the high bits. A frequency of
// tfEscape or more is kept exactly in postings.big.
const (
	docBits  = 28
	docMask  = 1<<docBits - 1
	tfEscape = 1<<(32-docBits) - 1
)

// blockSize is the number of postings summarized by one block bound.
// Lists shorter than that have no blocks.
const blockSize = 128

// block bounds the BM25 contribution of its postings: every doc of the
// block has tf ≤ maxTF and length ≥ minLen, and BM25 grows with tf and
// shrinks with length.
type block struct {
	maxTF  uint32
	minLen uint32
}

// postings is the list of one term, docs strictly increasing.
type postings struct {
	docs   []uint32          // doc | tf<<docBits
	blocks []block           // one per blockSize postings, if there are that many
	big    map[uint32]uint32 // doc → tf, for tf ≥ tfEscape
}

func (p *postings) doc(i int) uint32 { return p.docs[i] & docMask }

func (p *postings) tf(i int) uint32 {
	if t := p.docs[i] >> docBits; t != tfEscape {
		return t
	}
	return p.big[p.docs[i]&docMask]
}

// pack returns the posting of doc with frequency tf.
func (p *postings) pack(doc, tf uint32) uint32 {
	if tf < tfEscape {
		return doc | tf<<docBits
	}
	if p.big == nil {
		p.big = map[uint32]uint32{}
	}
	p.big[doc] = tf
	return doc | tfEscape<<docBits
}

// add records that doc has the term tf times; lens holds doc lengths.
// Docs normally arrive in increasing order and are appended; an earlier
// doc is inserted at its place.
func (p *postings) add(doc, tf uint32, lens []uint32) {
	n := len(p.docs)
	if n > 0 && doc < p.doc(n-1) {
		p.insert(doc, tf, lens)
		return
	}
	p.docs = append(p.docs, p.pack(doc, tf))
	switch {
	case n+1 < blockSize:
	case n+1 == blockSize:
		p.rebuildBlocks(0, lens)
	case n%blockSize == 0:
		p.blocks = append(p.blocks, block{tf, lens[doc]})
	default:
		last := &p.blocks[len(p.blocks)-1]
		last.maxTF = max(last.maxTF, tf)
		last.minLen = min(last.minLen, lens[doc])
	}
}

func (p *postings) insert(doc, tf uint32, lens []uint32) {
	i := search(p.docs, 0, doc)
	p.docs = append(p.docs, 0)
	copy(p.docs[i+1:], p.docs[i:])
	p.docs[i] = p.pack(doc, tf)
	p.rebuildBlocks(i/blockSize, lens)
}

// rebuildBlocks recomputes the block bounds from block b on.
func (p *postings) rebuildBlocks(b int, lens []uint32) {
	if len(p.docs) < blockSize {
		p.blocks = nil
		return
	}
	p.blocks = p.blocks[:min(b, len(p.blocks))]
	for s := len(p.blocks) * blockSize; s < len(p.docs); s += blockSize {
		e := min(s+blockSize, len(p.docs))
		bl := block{0, math.MaxUint32}
		for i := s; i < e; i++ {
			bl.maxTF = max(bl.maxTF, p.tf(i))
			bl.minLen = min(bl.minLen, lens[p.doc(i)])
		}
		p.blocks = append(p.blocks, bl)
	}
}

// purge removes the docs for which dead reports true, in place.
func (p *postings) purge(dead func(uint32) bool, lens []uint32) {
	j := 0
	for i := range p.docs {
		d := p.doc(i)
		if dead(d) {
			delete(p.big, d)
			continue
		}
		p.docs[j] = p.docs[i]
		j++
	}
	if j == len(p.docs) {
		return
	}
	p.docs = shrink(p.docs[:j])
	if len(p.big) == 0 {
		p.big = nil
	}
	p.rebuildBlocks(0, lens)
}

// shrink returns s in an array of its own length when it wastes over a
// quarter of its capacity.
func shrink[T any](s []T) []T {
	if cap(s)-len(s) <= cap(s)/4 {
		return s
	}
	return append([]T(nil), s...)
}

// search returns the first index ≥ from whose doc is ≥ d, galloping from
// from: cheap when d is near.
func search(docs []uint32, from int, d uint32) int {
	if from >= len(docs) || docs[from]&docMask >= d {
		return from
	}
	lo, step := from, 1 // docs[lo] < d
	hi := lo + step
	for hi < len(docs) && docs[hi]&docMask < d {
		lo = hi
		step <<= 1
		hi = lo + step
	}
	if hi > len(docs) {
		hi = len(docs)
	}
	// docs[lo] < d, and hi == len(docs) or docs[hi] ≥ d.
	for lo+1 < hi {
		m := int(uint(lo+hi) >> 1)
		if docs[m]&docMask < d {
			lo = m
		} else {
			hi = m
		}
	}
	return hi
}
