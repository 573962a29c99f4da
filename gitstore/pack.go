package gitstore

import (
	"container/list"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// packWriter accumulates the objects of one batch as a version 2 packfile in
// memory. Objects are stored whole (no deltas) in zlib streams of stored
// blocks (level 0), in the order they were added, so the same objects
// always give the same bytes. The write path's packs live until the merger
// rewrites them, compressed and delta-encoded: compressing them first
// cost the writer CPU for bytes that live seconds, and the merger the
// decompression (a stored stream it copies out).
type packWriter struct {
	buf     []byte
	entries []packEntry
	seen    map[Hash]struct{}
	zw      *zlib.Writer // level 0
	scratch []byte       // reusable encoding buffer

	// A pack streamed to a file (a merge's: see stream) keeps in buf only
	// what was written since the last flush; base is the offset in the
	// pack of buf[0]. Otherwise out is nil and base 0.
	out  *packStream
	base uint64
}

type packEntry struct {
	hash   Hash
	offset uint64
	crc    uint32
}

const packHeaderLen = 12

func newPackWriter() *packWriter {
	zw, _ := zlib.NewWriterLevel(io.Discard, zlib.NoCompression) // level is valid: no error
	p := &packWriter{zw: zw, seen: map[Hash]struct{}{}}
	p.reset()
	return p
}

func (p *packWriter) reset() {
	p.out, p.base = nil, 0
	p.buf = append(p.buf[:0], make([]byte, packHeaderLen)...)
	p.entries = p.entries[:0]
	clear(p.seen)
}

// appender lets the zlib writer append to the pack buffer.
type appender struct{ b *[]byte }

func (a appender) Write(p []byte) (int, error) { *a.b = append(*a.b, p...); return len(p), nil }

// add stores an object and returns its id. An object already in the pack is
// not stored twice.
func (p *packWriter) add(t objType, data []byte) Hash {
	h, _, _ := p.addAt(t, data)
	return h
}

// addAt is add that also returns where the entry starts and whether it
// was stored (false: the pack already held the object).
func (p *packWriter) addAt(t objType, data []byte) (Hash, uint64, bool) {
	h := hashObject(t, data)
	if !p.claim(h) {
		return h, 0, false
	}
	return h, p.addHashed(p.zw, h, t, data), true
}

// claim adds h to the objects of the pack and reports whether it is new
// (one map operation where a lookup and an insert take two).
func (p *packWriter) claim(h Hash) bool {
	n := len(p.seen)
	p.seen[h] = struct{}{}
	return len(p.seen) > n
}

// addHashed stores object h, of type t, compressed by zw, and returns
// where its entry starts. The caller computed h from data (or checked
// data against it) and claimed it.
func (p *packWriter) addHashed(zw *zlib.Writer, h Hash, t objType, data []byte) uint64 {
	start := len(p.buf)
	p.buf = appendPackHeader(p.buf, t, uint64(len(data)))
	return p.deflate(zw, h, start, data)
}

// deflate appends data compressed by zw to the entry that starts at
// p.buf[start], lists the entry and returns its offset in the pack.
func (p *packWriter) deflate(zw *zlib.Writer, h Hash, start int, data []byte) uint64 {
	zw.Reset(appender{&p.buf})
	zw.Write(data) // writes to memory: cannot fail
	zw.Close()
	off := p.base + uint64(start)
	p.entries = append(p.entries, packEntry{h, off, crc32.ChecksumIEEE(p.buf[start:])})
	if p.out != nil && len(p.buf) >= streamFlush {
		p.flush()
	}
	return off
}

// addRaw stores an object already encoded as a pack entry (header and
// zlib data) whose integrity the caller checked.
func (p *packWriter) addRaw(h Hash, raw []byte, crc uint32) {
	if _, ok := p.seen[h]; ok {
		return
	}
	p.seen[h] = struct{}{}
	p.entries = append(p.entries, packEntry{h, p.base + uint64(len(p.buf)), crc})
	p.buf = append(p.buf, raw...)
}

// addDelta stores object h as an OFS_DELTA entry: delta (git's delta
// format) against the object stored at baseOff in this pack. An object
// already in the pack is not stored twice; it returns the entry's offset.
func (p *packWriter) addDelta(h Hash, baseOff uint64, delta []byte) uint64 {
	p.claim(h)
	return p.addDeltaWith(p.zw, h, baseOff, delta)
}

// addDeltaWith is addDelta compressing the delta with zw, for a caller
// that claimed h.
func (p *packWriter) addDeltaWith(zw *zlib.Writer, h Hash, baseOff uint64, delta []byte) uint64 {
	start := len(p.buf)
	p.buf = appendPackHeader(p.buf, objOfsDelta, uint64(len(delta)))
	p.buf = appendOfsDeltaOffset(p.buf, p.base+uint64(start)-baseOff)
	return p.deflate(zw, h, start, delta)
}

// appendOfsDeltaOffset appends the distance back to a delta's base as git
// writes it: big-endian base-128, each continued byte standing for one
// more than its value.
func appendOfsDeltaOffset(dst []byte, rel uint64) []byte {
	var b [10]byte
	i := len(b) - 1
	b[i] = byte(rel & 0x7f)
	for rel >>= 7; rel != 0; rel >>= 7 {
		rel--
		i--
		b[i] = 0x80 | byte(rel&0x7f)
	}
	return append(dst, b[i:]...)
}

// appendPackHeader appends a pack object header: type and size, 4 bits of
// size in the first byte, then 7 bits per byte, little-endian.
func appendPackHeader(dst []byte, t objType, size uint64) []byte {
	b := byte(t)<<4 | byte(size&0x0f)
	size >>= 4
	for size != 0 {
		dst = append(dst, b|0x80)
		b = byte(size & 0x7f)
		size >>= 7
	}
	return append(dst, b)
}

// finish completes the pack (header and trailer) and builds its index.
func (p *packWriter) finish() (pack []byte, idx *packIndex) {
	putPackHeader(p.buf, uint32(len(p.entries)))
	sum := Hash(sha1.Sum(p.buf))
	p.buf = append(p.buf, sum[:]...)
	return p.buf, buildIndex(p.entries, sum)
}

// pack is one packfile open for reading.
type pack struct {
	name  string // pack-<sum>, without extension
	f     *os.File
	idx   *packIndex
	size  int64
	count int64
	bases baseCache // delta bases resolved by reads
}

// openPack opens dir/name.pack with its index. idx may be passed when the
// caller just built it. An index read from disk gets the checks of
// openIndex, which do not grow with its objects (a store's open reads
// every index); openPackVerified verifies it in full.
func openPack(dir, name string, idx *packIndex) (*pack, error) {
	return openPackChecked(dir, name, idx, false)
}

// openPackVerified is openPack with the index read from disk verified in
// full (checksum, order of ids): what a repair that looks for damaged
// packs needs.
func openPackVerified(dir, name string) (*pack, error) {
	return openPackChecked(dir, name, nil, true)
}

func openPackChecked(dir, name string, idx *packIndex, verify bool) (*pack, error) {
	if idx == nil {
		b, err := os.ReadFile(filepath.Join(dir, name+".idx"))
		if err != nil {
			return nil, err
		}
		if idx, err = openIndex(b); err == nil && verify {
			err = idx.verify()
		}
		if err != nil {
			return nil, fmt.Errorf("pack index %s.idx: %w", name, err)
		}
	}
	f, err := os.Open(filepath.Join(dir, name+".pack"))
	if err != nil {
		return nil, err
	}
	p := &pack{name: name, f: f, idx: idx}
	if err := p.checkHeader(); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

// checkHeader verifies the pack's header, size and trailer against its index.
func (p *pack) checkHeader() error {
	st, err := p.f.Stat()
	if err != nil {
		return err
	}
	p.size = st.Size()
	var hdr [packHeaderLen]byte
	if _, err := p.f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("pack %s: cannot read header: %w", p.name, err)
	}
	if string(hdr[:4]) != "PACK" || binary.BigEndian.Uint32(hdr[4:8]) != 2 {
		return fmt.Errorf("pack %s: bad header", p.name)
	}
	n := int64(p.idx.count())
	p.count = n
	if int64(binary.BigEndian.Uint32(hdr[8:12])) != n {
		return fmt.Errorf("pack %s: holds %d objects but its index lists %d", p.name, binary.BigEndian.Uint32(hdr[8:12]), n)
	}
	var trailer Hash
	if p.size < packHeaderLen+20 {
		return fmt.Errorf("pack %s: truncated (%d bytes)", p.name, p.size)
	}
	if _, err := p.f.ReadAt(trailer[:], p.size-20); err != nil {
		return fmt.Errorf("pack %s: cannot read trailer: %w", p.name, err)
	}
	if trailer != p.idx.packSum() {
		return fmt.Errorf("pack %s: trailer does not match its index (truncated or replaced)", p.name)
	}
	return nil
}

func (p *pack) offset(h Hash) (int64, bool) {
	off, ok := p.idx.find(h)
	return int64(off), ok
}

var zlibReaders sync.Pool

// Reads of objects up to maxFastInflate bytes take their zlib stream in
// one read and decode it with the store's inflater (inflate.go), pooled
// with its read buffer; larger ones, and a stream the inflater refuses
// (which the general decoder then describes), are read through the
// general decoder. The one read takes zlib's bound on the stream, which
// for an object that compresses well is many times its stream: the
// limit keeps that read small.
const maxFastInflate = 64 << 10

type readInflater struct {
	inflater
	buf []byte
}

var readInflaters = sync.Pool{New: func() any { return new(readInflater) }}

// deflateBound is the most bytes a zlib stream of n bytes of content
// takes, as zlib's deflateBound reckons it for any compression level.
func deflateBound(n uint64) uint64 { return n + n>>12 + n>>14 + n>>25 + 13 + 6 }

// inflate reads a zlib stream of exactly size bytes starting at off and
// checks its Adler-32 trailer.
func (p *pack) inflate(off int64, size uint64) ([]byte, error) {
	// An offset in the trailer or past it (a damaged index or header)
	// leaves no stream to read: the general decoder reports it.
	if rest := p.size - 20 - off; size <= maxFastInflate && rest > 0 {
		n := int(min(int64(deflateBound(size)), rest))
		d := readInflaters.Get().(*readInflater)
		defer readInflaters.Put(d)
		d.buf = slices.Grow(d.buf[:0], n)[:n]
		if got, _ := p.f.ReadAt(d.buf, off); got == n {
			out := make([]byte, size)
			if _, ok := d.inflate(out, d.buf); ok {
				return out, nil
			}
		}
	}
	return inflate(io.NewSectionReader(p.f, off, p.size-20-off), size)
}

// inflate reads a zlib stream of exactly size bytes from src and checks
// its Adler-32 trailer.
func inflate(src io.Reader, size uint64) ([]byte, error) {
	if size > maxObjectSize {
		return nil, fmt.Errorf("object of %d bytes is over the %d byte limit", size, maxObjectSize)
	}
	out := make([]byte, size)
	if err := inflateTo(out, src); err != nil {
		return nil, err
	}
	return out, nil
}

// inflateTo reads a zlib stream of exactly len(out) bytes from src into
// out and checks its Adler-32 trailer.
func inflateTo(out []byte, src io.Reader) error {
	var zr io.ReadCloser
	if v := zlibReaders.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(src, nil); err != nil {
			return err
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(src); err != nil {
			return err
		}
	}
	defer zlibReaders.Put(zr)
	if _, err := io.ReadFull(zr, out); err != nil {
		return err
	}
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		return errors.New("object data longer than its header says, or checksum mismatch")
	}
	return nil
}

const maxObjectSize = 256 << 20

// maxDeltaChain bounds the deltas a read goes through. Merges write
// chains of at most maxDeltaDepth; stock git's default is 50.
const maxDeltaChain = 100

// readAt decodes the object at off, resolving deltas through resolve (for
// REF_DELTA bases) and the pack's cache of delta bases.
func (p *pack) readAt(off int64, resolve func(Hash) (objType, []byte, error), depth int) (objType, []byte, error) {
	if depth > maxDeltaChain {
		return 0, nil, errors.New("delta chain too deep")
	}
	var hdr [32]byte
	n, err := p.f.ReadAt(hdr[:], off)
	if n == 0 {
		return 0, nil, fmt.Errorf("read object header at %d: %w", off, err)
	}
	t := objType(hdr[0] >> 4 & 7)
	size := uint64(hdr[0] & 0x0f)
	i, shift := 1, 4
	for hdr[i-1]&0x80 != 0 {
		if i >= n || shift > 60 {
			return 0, nil, fmt.Errorf("bad object header at %d", off)
		}
		size |= uint64(hdr[i]&0x7f) << shift
		shift += 7
		i++
	}
	switch t {
	case objCommit, objTree, objBlob, objTag:
		data, err := p.inflate(off+int64(i), size)
		return t, data, err
	case objOfsDelta:
		rel, j, err := ofsDeltaOffset(hdr[i:n])
		if err != nil || rel <= 0 || rel > off {
			return 0, nil, fmt.Errorf("bad delta base offset at %d", off)
		}
		bt, base, err := p.base(off-rel, resolve, depth+1)
		if err != nil {
			return 0, nil, err
		}
		return p.patch(bt, base, off+int64(i+j), size)
	case objRefDelta:
		if n < i+20 {
			return 0, nil, fmt.Errorf("bad ref delta at %d", off)
		}
		var bh Hash
		copy(bh[:], hdr[i:i+20])
		bt, base, err := resolve(bh)
		if err != nil {
			return 0, nil, err
		}
		return p.patch(bt, base, off+int64(i+20), size)
	}
	return 0, nil, fmt.Errorf("unknown object type %d at %d", t, off)
}

func (p *pack) patch(t objType, base []byte, off int64, size uint64) (objType, []byte, error) {
	delta, err := p.inflate(off, size)
	if err != nil {
		return 0, nil, err
	}
	out, err := applyDelta(base, delta)
	return t, out, err
}

// base returns the object at off as the base of a delta: from the pack's
// cache, else decoded and cached. What it returns is only read (a delta
// is applied to it), never handed to a caller of readAt, so the cache's
// copies cannot be changed from outside.
func (p *pack) base(off int64, resolve func(Hash) (objType, []byte, error), depth int) (objType, []byte, error) {
	if t, data, ok := p.bases.get(off); ok {
		return t, data, nil
	}
	t, data, err := p.readAt(off, resolve, depth)
	if err == nil {
		p.bases.put(off, t, data)
	}
	return t, data, err
}

// baseCache is a byte-bounded LRU of the delta bases a pack's reads
// resolved, by offset. A read through a delta chain caches every base on
// the way, so the next read of the chain (the next version of the same
// tree, in a sequential scan) applies one or two deltas instead of all.
type baseCache struct {
	mu    sync.Mutex
	max   int
	bytes int
	m     map[int64]*list.Element
	lru   list.List // of *cachedBase, most recent first
}

type cachedBase struct {
	off  int64
	t    objType
	data []byte
}

// baseCacheBytes bounds each pack's cache of delta bases.
const baseCacheBytes = 1 << 20

// baseCacheMaxObject is the largest base kept: bases are trees and
// commits of a few hundred bytes; a large blob would evict them all.
const baseCacheMaxObject = 64 << 10

func (c *baseCache) get(off int64) (objType, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[off]
	if !ok {
		return 0, nil, false
	}
	c.lru.MoveToFront(e)
	b := e.Value.(*cachedBase)
	return b.t, b.data, true
}

func (c *baseCache) put(off int64, t objType, data []byte) {
	if len(data) > baseCacheMaxObject {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int64]*list.Element{}
		c.max = baseCacheBytes
	}
	if _, ok := c.m[off]; ok {
		return
	}
	c.m[off] = c.lru.PushFront(&cachedBase{off, t, data})
	c.bytes += len(data)
	for c.bytes > c.max {
		last := c.lru.Back()
		b := last.Value.(*cachedBase)
		c.lru.Remove(last)
		delete(c.m, b.off)
		c.bytes -= len(b.data)
	}
}

func ofsDeltaOffset(b []byte) (int64, int, error) {
	if len(b) == 0 {
		return 0, 0, errors.New("short")
	}
	c := b[0]
	v := int64(c & 0x7f)
	i := 1
	for c&0x80 != 0 {
		if i >= len(b) {
			return 0, 0, errors.New("short")
		}
		c = b[i]
		i++
		v = ((v + 1) << 7) | int64(c&0x7f)
	}
	return v, i, nil
}

func isPackName(name string) bool {
	return strings.HasPrefix(name, "pack-") && len(name) == len("pack-")+40
}
