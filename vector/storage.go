package vector

import (
	"sync"
	"sync/atomic"
	"unsafe"
)

// Nodes live in chunks of a fixed number of internal ids, so that growing
// the index never moves a vector or a neighbour list that a concurrent
// search may be reading. Internal ids are dense and assigned in the order in
// which Add calls start; keys are the caller's names for them.

// chunkBytes bounds the vector storage of one chunk; chunkMin and chunkMax
// bound its number of nodes.
const (
	chunkBytes = 4 << 20
	chunkMin   = 64
	chunkMax   = 4096
)

// chunkShift returns log2 of the number of nodes per chunk for vectors of
// dim components: the largest power of two whose vectors fit in chunkBytes,
// clamped to [chunkMin, chunkMax].
func chunkShift(dim int) uint {
	shift := uint(0)
	for (1<<(shift+1)) <= chunkMax && (1<<(shift+1))*dim*4 <= chunkBytes {
		shift++
	}
	for 1<<shift < chunkMin {
		shift++
	}
	return shift
}

// qmeta is what a quantised vector needs beside its components, side by
// side so that one cache line holds both: its scale, and its dot product
// with itself, by which copies (equal components and scales; see
// selectNeighbours) are told apart from other nodes without reading them.
type qmeta struct {
	scale float32
	norm  int32
}

// chunk holds the nodes whose internal ids share id>>shift.
type chunk struct {
	vecs []float32 // dim components per node; written once, before the node is linked
	// qvecs holds each vector quantised to int8 (qStride bytes per node)
	// and qmeta its scale and squared norm, written with vecs;
	// insertions search with them.
	qvecs []int8
	qmeta []qmeta
	keys  []uint32 // the caller's key of each node
	level []uint8  // the node's top layer
	done  []atomic.Bool

	// mu[i] guards links and upper of node i.
	mu    []sync.Mutex
	links []uint32   // layer 0: stride m0+1, a count then up to m0 ids
	upper [][]uint32 // layers 1..level: stride m+1 each, a count then up to m ids
}

func (ix *Index) newChunk() *chunk {
	n := 1 << ix.shift
	return &chunk{
		vecs:  make([]float32, n*ix.dim),
		qvecs: make([]int8, n*ix.qdim),
		qmeta: make([]qmeta, n),
		keys:  make([]uint32, n),
		level: make([]uint8, n),
		done:  make([]atomic.Bool, n),
		mu:    make([]sync.Mutex, n),
		links: make([]uint32, n*(ix.m0+1)),
		upper: make([][]uint32, n),
	}
}

// chunkOf returns the chunk holding id and id's index in it. The chunk must
// exist: id was reached through a link or the entry point, or reserved.
func (ix *Index) chunkOf(id uint32) (*chunk, int) {
	d := *ix.chunks.Load()
	return d[id>>ix.shift], int(id & ix.mask)
}

// finished returns the chunk holding id and id's index in it if id's
// insertion has finished. An id just reserved may have no chunk yet: a
// key is mapped to its id before the chunk is allocated.
func (ix *Index) finished(id uint32) (*chunk, int, bool) {
	d := *ix.chunks.Load()
	if int(id>>ix.shift) >= len(d) {
		return nil, 0, false
	}
	c, i := d[id>>ix.shift], int(id&ix.mask)
	return c, i, c.done[i].Load()
}

// vec returns the vector of node id.
func (ix *Index) vec(id uint32) []float32 {
	c, i := ix.chunkOf(id)
	return c.vecs[i*ix.dim : (i+1)*ix.dim : (i+1)*ix.dim]
}

// ensure returns the chunk for id, allocating chunks up to it.
func (ix *Index) ensure(id uint32) (*chunk, int) {
	ci := int(id >> ix.shift)
	if d := *ix.chunks.Load(); ci < len(d) {
		return d[ci], int(id & ix.mask)
	}
	ix.growMu.Lock()
	defer ix.growMu.Unlock()
	d := *ix.chunks.Load()
	if ci >= len(d) {
		grown := make([]*chunk, len(d), ci+1)
		copy(grown, d)
		for len(grown) <= ci {
			grown = append(grown, ix.newChunk())
		}
		ix.chunks.Store(&grown)
		d = grown
	}
	return d[ci], int(id & ix.mask)
}

// list returns the neighbour list of node i of c at layer l, count first.
// The caller holds c.mu[i].
func (ix *Index) listLocked(c *chunk, i, l int) []uint32 {
	if l == 0 {
		s := ix.m0 + 1
		return c.links[i*s : (i+1)*s : (i+1)*s]
	}
	s := ix.opts.M + 1
	return c.upper[i][(l-1)*s : l*s : l*s]
}

// neighbours copies the neighbours of id at layer l into buf.
func (ix *Index) neighbours(buf []uint32, id uint32, l int) []uint32 {
	c, i := ix.chunkOf(id)
	c.mu[i].Lock()
	list := ix.listLocked(c, i, l)
	buf = append(buf[:0], list[1:1+list[0]]...)
	c.mu[i].Unlock()
	return buf
}

// prefetchNeighbours asks for the layer-0 neighbour list of id and its
// mutex to be loaded into the cache, where a search will want them next;
// it reads neither.
func (ix *Index) prefetchNeighbours(id uint32) {
	c, i := ix.chunkOf(id)
	s := ix.m0 + 1
	prefetchLines(unsafe.Pointer(&c.links[i*s]), (s*4+63)/64+1)
	prefetchLines(unsafe.Pointer(&c.mu[i]), 1)
}
