package vector

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/nexus-mem/nexus"
)

// The file format, version 1. All integers and floats are little-endian;
// node i is the i-th vector added (its internal id).
//
//	offset  size  field
//	0       8     magic "NXVECIDX"
//	8       4     format version (1)
//	12      4     dim
//	16      4     M
//	20      4     EfConstruction
//	24      4     EfSearch
//	28      4     zero
//	32      8     Seed
//	40      4     n, the number of nodes
//	44      4     entry node (0 when n is 0)
//	48      4     entry node's top layer (0 when n is 0)
//	52      4     zero
//	56      4n    keys
//	        n     top layer of each node
//	        4n·dim  vectors
//	        4n·(2M+1)  layer-0 lists: a count, then 2M ids (unused ones zero)
//	        ...   for each node with top layer L > 0, in node order: L lists of
//	              4·(M+1) bytes, layers 1 to L
//	        32    SHA-256 of every byte before it
//
// Nothing may follow the checksum.
const (
	magic         = "NXVECIDX"
	formatVersion = 1
	headerSize    = 56
)

// ErrCorrupt is in the chain of every error that [Read] returns for data
// that is not a whole, intact index: truncated, altered, or followed by
// other bytes. Such errors have the code nexus.EInternal; rebuild the index
// from its source.
var ErrCorrupt = errors.New("corrupt vector index")

func corrupt(format string, args ...any) error {
	return nexus.WrapError(nexus.EInternal, ErrCorrupt, "vector index: "+format, args...)
}

// littleEndian is true on the platforms where the in-memory layout of
// []uint32 and []float32 is the file's, so sections move as whole blocks.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// WriteTo writes the index to w in the format above and returns the number
// of bytes written. Searches go on while it runs; Add calls wait for it.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	ix.writeMu.Lock()
	defer ix.writeMu.Unlock()
	cw := &countWriter{w: w}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(cw, h), 1<<20)
	n := int(ix.next.Load())
	e := ix.entry.Load()
	hdr := make([]byte, headerSize)
	le := binary.LittleEndian
	copy(hdr, magic)
	le.PutUint32(hdr[8:], formatVersion)
	le.PutUint32(hdr[12:], uint32(ix.dim))
	le.PutUint32(hdr[16:], uint32(ix.opts.M))
	le.PutUint32(hdr[20:], uint32(ix.opts.EfConstruction))
	le.PutUint32(hdr[24:], uint32(ix.opts.EfSearch))
	le.PutUint64(hdr[32:], uint64(ix.opts.Seed))
	le.PutUint32(hdr[40:], uint32(n))
	if e != 0 {
		le.PutUint32(hdr[44:], uint32(e))
		le.PutUint32(hdr[48:], uint32(entryLevel(e)))
	}
	bw.Write(hdr)
	chunks := *ix.chunks.Load()
	each := func(f func(c *chunk, cnt int)) {
		for ci, c := range chunks {
			if cnt := min(n-ci<<ix.shift, 1<<ix.shift); cnt > 0 {
				f(c, cnt)
			}
		}
	}
	var buf []byte
	if !littleEndian {
		buf = make([]byte, 64<<10)
	}
	each(func(c *chunk, cnt int) { writeU32s(bw, c.keys[:cnt], buf) })
	each(func(c *chunk, cnt int) { bw.Write(c.level[:cnt]) })
	each(func(c *chunk, cnt int) { writeU32s(bw, floatBits(c.vecs[:cnt*ix.dim]), buf) })
	each(func(c *chunk, cnt int) { writeU32s(bw, c.links[:cnt*(ix.m0+1)], buf) })
	each(func(c *chunk, cnt int) {
		for i := range cnt {
			writeU32s(bw, c.upper[i], buf)
		}
	})
	if err := bw.Flush(); err != nil {
		return cw.n, fmt.Errorf("write vector index: %w", err)
	}
	if _, err := cw.Write(h.Sum(nil)); err != nil {
		return cw.n, fmt.Errorf("write vector index: %w", err)
	}
	return cw.n, nil
}

// Read reads an index written by [Index.WriteTo], to the end of r. Data
// that is truncated, altered or followed by anything is reported with
// [ErrCorrupt] in the error chain; the checksum covers every byte, and the
// structure is checked as well, so a damaged file never yields an index.
func Read(r io.Reader) (*Index, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	hr := newHashReader(br)
	defer hr.stop()
	d := &decoder{r: hr}
	if !littleEndian {
		d.buf = make([]byte, 64<<10)
	}
	ix, err := d.index()
	if err != nil {
		return nil, err
	}
	sum := make([]byte, sha256.Size)
	if _, err := io.ReadFull(br, sum); err != nil {
		return nil, d.fail(err, "checksum")
	}
	if !bytes.Equal(sum, hr.stop()) {
		return nil, corrupt("checksum mismatch")
	}
	switch _, err := br.ReadByte(); {
	case err == nil:
		return nil, corrupt("data after the checksum")
	case err != io.EOF:
		return nil, fmt.Errorf("read vector index: %w", err)
	}
	return ix, nil
}

// decoder reads the sections of an index and checks what it reads.
type decoder struct {
	r   *hashReader
	buf []byte  // scratch for big-endian platforms
	n   int     // nodes
	lvl []uint8 // top layer of each node
}

// fail describes a read error in section what.
func (d *decoder) fail(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("truncated in the %s (%d bytes read)", what, d.r.n)
	}
	return fmt.Errorf("read vector index: %w", err)
}

func (d *decoder) index() (*Index, error) {
	ix, entry, err := d.header()
	if err != nil {
		return nil, err
	}
	keys, err := d.keys(ix)
	if err != nil {
		return nil, err
	}
	if err := d.levels(entry); err != nil {
		return nil, err
	}
	// Each chunk's quantised copies are derived on the other cores while
	// the next chunk's vectors are read: at a million vectors the two
	// took about as long each.
	var wg sync.WaitGroup
	busy := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))
	for base := 0; base < d.n; base += 1 << ix.shift {
		cnt := min(d.n-base, 1<<ix.shift)
		c, _ := ix.ensure(uint32(base))
		copy(c.keys, keys[base:base+cnt])
		copy(c.level, d.lvl[base:base+cnt])
		if err := d.vectors(c.vecs[:cnt*ix.dim]); err != nil {
			wg.Wait()
			return nil, err
		}
		busy <- struct{}{}
		wg.Go(func() {
			defer func() { <-busy }()
			for i := range cnt {
				ix.quantizeNode(c, i)
			}
		})
	}
	wg.Wait()
	for base := 0; base < d.n; base += 1 << ix.shift {
		c, _ := ix.chunkOf(uint32(base))
		if err := d.lists(c.links[:min(d.n-base, 1<<ix.shift)*(ix.m0+1)], ix.m0, base, 0); err != nil {
			return nil, err
		}
	}
	for id := range d.n {
		c, i := ix.chunkOf(uint32(id))
		if c.level[i] == 0 {
			continue
		}
		c.upper[i] = make([]uint32, int(c.level[i])*(ix.opts.M+1))
		for l := 1; l <= int(c.level[i]); l++ {
			if err := d.lists(ix.listLocked(c, i, l), ix.opts.M, id, l); err != nil {
				return nil, err
			}
		}
	}
	for id := range d.n {
		c, i := ix.chunkOf(uint32(id))
		c.done[i].Store(true)
	}
	ix.next.Store(uint32(d.n))
	ix.count.Store(int64(d.n))
	if d.n > 0 {
		ix.entry.Store(entryBit | uint64(d.lvl[entry])<<32 | uint64(entry))
	}
	return ix, nil
}

// header reads the fixed header and returns an empty index with its
// options, and the entry node.
func (d *decoder) header() (*Index, int, error) {
	hdr := make([]byte, headerSize)
	if _, err := io.ReadFull(d.r, hdr); err != nil {
		return nil, 0, d.fail(err, "header")
	}
	if string(hdr[:8]) != magic {
		return nil, 0, corrupt("not a vector index (magic %q)", hdr[:8])
	}
	le := binary.LittleEndian
	if v := le.Uint32(hdr[8:]); v != formatVersion {
		return nil, 0, corrupt("format version %d, this build reads %d", v, formatVersion)
	}
	u := func(off int) int { return int(le.Uint32(hdr[off:])) }
	dim := u(12)
	opts := Options{M: u(16), EfConstruction: u(20), EfSearch: u(24), Seed: int64(le.Uint64(hdr[32:]))}
	if opts.M == 0 || opts.EfConstruction == 0 || opts.EfSearch == 0 || opts.Seed == 0 {
		return nil, 0, corrupt("zero option in header %+v", opts)
	}
	ix, err := New(dim, opts)
	if err != nil {
		return nil, 0, corrupt("header: %s", strings.TrimPrefix(nexus.ErrorMessage(err), "vector index: "))
	}
	d.n = u(40)
	entry, top := u(44), u(48)
	switch {
	case u(28) != 0 || u(52) != 0:
		return nil, 0, corrupt("reserved header fields are not zero")
	case d.n == 0 && (entry != 0 || top != 0):
		return nil, 0, corrupt("empty index with an entry point")
	case d.n > 0 && entry >= d.n:
		return nil, 0, corrupt("entry node %d of %d", entry, d.n)
	case uint64(d.n) >= math.MaxUint32:
		return nil, 0, corrupt("%d nodes", d.n)
	}
	return ix, entry, nil
}

// keys reads the key of every node into ix.ids and returns them. Memory
// grows with the bytes actually read, never with the header's claims.
func (d *decoder) keys(ix *Index) ([]uint32, error) {
	var keys []uint32
	for len(keys) < d.n {
		at := len(keys)
		keys = append(keys, make([]uint32, min(d.n-at, 1<<16))...)
		if err := readU32s(d.r, keys[at:], d.buf); err != nil {
			return nil, d.fail(err, "keys")
		}
	}
	ix.ids = make(map[uint32]uint32, len(keys))
	for id, k := range keys {
		if _, dup := ix.ids[k]; dup {
			return nil, corrupt("key %d appears twice", k)
		}
		ix.ids[k] = uint32(id)
	}
	return keys, nil
}

// levels reads the top layer of every node and checks that the entry node
// is on the highest one.
func (d *decoder) levels(entry int) error {
	for len(d.lvl) < d.n {
		at := len(d.lvl)
		d.lvl = append(d.lvl, make([]uint8, min(d.n-at, 1<<16))...)
		if _, err := io.ReadFull(d.r, d.lvl[at:]); err != nil {
			return d.fail(err, "levels")
		}
	}
	top := 0
	for id, l := range d.lvl {
		if l > maxLevel {
			return corrupt("node %d on layer %d", id, l)
		}
		top = max(top, int(l))
	}
	if d.n > 0 && int(d.lvl[entry]) != top {
		return corrupt("entry node %d is on layer %d, the top is %d", entry, d.lvl[entry], top)
	}
	return nil
}

// vectors reads vector components and rejects NaNs and infinities.
func (d *decoder) vectors(v []float32) error {
	bits := floatBits(v)
	if err := readU32s(d.r, bits, d.buf); err != nil {
		return d.fail(err, "vectors")
	}
	for i, b := range bits {
		if b&0x7f800000 == 0x7f800000 {
			return corrupt("vector component %d is not finite", i)
		}
	}
	return nil
}

// lists reads neighbour lists of stride capacity+1 for the nodes from
// first on layer l (one node when l > 0) and checks every link: a count no
// larger than capacity, ids of other existing nodes that reach layer l, and
// zeros in the unused slots.
func (d *decoder) lists(dst []uint32, capacity, first, l int) error {
	if err := readU32s(d.r, dst, d.buf); err != nil {
		return d.fail(err, "neighbour lists")
	}
	stride := capacity + 1
	for j := 0; j < len(dst); j += stride {
		node := first + j/stride
		list := dst[j : j+stride]
		cnt := int(list[0])
		if cnt > capacity {
			return corrupt("node %d has %d links on layer %d, at most %d", node, cnt, l, capacity)
		}
		for s, nb := range list[1:] {
			switch {
			case s >= cnt && nb != 0:
				return corrupt("node %d: unused link slot is not zero", node)
			case s >= cnt:
			case int(nb) >= d.n || int(nb) == node:
				return corrupt("node %d links to node %d of %d", node, nb, d.n)
			case int(d.lvl[nb]) < l:
				return corrupt("node %d links on layer %d to node %d, which tops out at %d", node, l, nb, d.lvl[nb])
			}
		}
	}
	return nil
}

// floatBits views floats as their IEEE bits, without copying.
func floatBits(f []float32) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(f))), len(f))
}

// writeU32s writes s little-endian; buf is scratch space for big-endian
// platforms.
func writeU32s(w io.Writer, s []uint32, buf []byte) {
	if littleEndian {
		w.Write(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s)))
		return
	}
	for len(s) > 0 {
		n := min(len(s), len(buf)/4)
		for i, x := range s[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], x)
		}
		w.Write(buf[:4*n])
		s = s[n:]
	}
}

// readU32s fills s from little-endian r.
func readU32s(r io.Reader, s []uint32, buf []byte) error {
	if littleEndian {
		_, err := io.ReadFull(r, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s)))
		return err
	}
	for len(s) > 0 {
		n := min(len(s), len(buf)/4)
		if _, err := io.ReadFull(r, buf[:4*n]); err != nil {
			return err
		}
		for i := range s[:n] {
			s[i] = binary.LittleEndian.Uint32(buf[4*i:])
		}
		s = s[n:]
	}
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// hashReader counts the bytes read through it and hashes them on a
// goroutine of its own, so that hashing overlaps reading: it takes about
// half the time of a load. The decoder never writes to a buffer after
// reading into it (except the big-endian scratch buffer, copied), so the
// goroutine can hash the buffers themselves; stop must be called to end the
// goroutine.
type hashReader struct {
	r     io.Reader
	n     int64
	jobs  chan []byte
	sum   chan []byte
	final []byte
}

func newHashReader(r io.Reader) *hashReader {
	h := &hashReader{r: r, jobs: make(chan []byte, 64), sum: make(chan []byte, 1)}
	go func() {
		d := sha256.New()
		for p := range h.jobs {
			d.Write(p)
		}
		h.sum <- d.Sum(nil)
	}()
	return h
}

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		if littleEndian {
			h.jobs <- p[:n:n]
		} else {
			// readU32s reuses its buffer on big-endian platforms.
			h.jobs <- bytes.Clone(p[:n])
		}
		h.n += int64(n)
	}
	return n, err
}

// stop waits for the hashing goroutine and returns the SHA-256 of
// everything read. It may be called more than once.
func (h *hashReader) stop() []byte {
	if h.final == nil {
		close(h.jobs)
		h.final = <-h.sum
	}
	return h.final
}
