package keyword

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/bits"
	"slices"

	"github.com/nexus-mem/nexus"
)

// The file format, version 3, all integers little endian:
//
//	header   magic "NXKWIDX\x00" | version uint32 | flags uint32 | payload length uint64
//	payload  uvarint key slots | key-slot bitmap of the documents, uint64 words
//	         per document, in key order: uvarint length in words
//	         uvarint terms | per term, in byte order: uvarint length, bytes,
//	         uvarint postings n, n uvarint doc gaps (the first is the doc),
//	         n uvarint term frequencies
//	trailer  SHA-256 of header and payload
//
// Tombstoned documents are not written. Version 1 had no lengths (a
// length was the sum of the document's term frequencies) and was written
// by the analyzer before compound words were split into parts; version 2
// has this layout, written by the stemmer before it had Porter2's step 5
// ("parsing" was "pars", "parse" was "parse"). Their terms are not what
// the analyzer gives now, so [Read] refuses them and the caller rebuilds
// the index from the texts.
const (
	magic      = "NXKWIDX\x00"
	version    = 3
	headerSize = 24
	flagNoStem = 1
	chunk      = 1 << 20
)

// ErrCorrupt is in the chain of the errors [Read] returns for data that is
// not an intact index file.
var ErrCorrupt = errors.New("keyword index file is corrupt")

// ErrVersion is in the chain of the errors [Read] returns for an index
// file of another version of the format (one written before the analyzer
// split compound words or before the stemmer's step 5, say). Such a file is intact but its terms are not
// the analyzer's: the index must be rebuilt from the texts.
var ErrVersion = errors.New("keyword index file has another version")

func corrupt(format string, args ...any) error {
	return nexus.WrapError(nexus.EInternal, ErrCorrupt, "keyword index file is corrupt: "+format, args...)
}

// WriteTo writes the index to w in a versioned binary format ending in a
// SHA-256 of the whole file. It compacts the index first, so that the
// index read back answers exactly like this one. Add and Delete wait
// while it writes; Search does not.
func (x *Index) WriteTo(w io.Writer) (int64, error) {
	x.Compact()
	x.mu.RLock()
	defer x.mu.RUnlock()
	terms := make([]string, 0, len(x.dict))
	for t, id := range x.dict {
		if x.liveCountLocked(id) > 0 {
			terms = append(terms, t)
		}
	}
	slices.Sort(terms)
	nkeys, live := x.liveKeysLocked()
	size := x.payloadSizeLocked(terms, nkeys, live)
	cw := &chunkWriter{w: w, h: sha256.New(), buf: make([]byte, 0, chunk+64)}
	var flags uint32
	if x.an.NoStem {
		flags |= flagNoStem
	}
	cw.buf = append(cw.buf, magic...)
	cw.buf = binary.LittleEndian.AppendUint32(cw.buf, version)
	cw.buf = binary.LittleEndian.AppendUint32(cw.buf, flags)
	cw.buf = binary.LittleEndian.AppendUint64(cw.buf, size)
	cw.buf = binary.AppendUvarint(cw.buf, uint64(nkeys))
	for _, word := range live[:(nkeys+63)/64] {
		cw.buf = binary.LittleEndian.AppendUint64(cw.buf, word)
		cw.maybeFlush()
	}
	for key := range nkeys {
		if live.has(uint32(key)) {
			cw.buf = binary.AppendUvarint(cw.buf, uint64(x.lens[key]))
			cw.maybeFlush()
		}
	}
	cw.buf = binary.AppendUvarint(cw.buf, uint64(len(terms)))
	for _, t := range terms {
		x.writeTermLocked(cw, t)
	}
	if cw.err == nil && uint64(cw.n+int64(len(cw.buf))) != headerSize+size {
		return cw.n, nexus.Errorf(nexus.EInternal, "keyword index: wrote %d payload bytes, declared %d", cw.n+int64(len(cw.buf))-headerSize, size)
	}
	cw.flush()
	if cw.err != nil {
		return cw.n, fmt.Errorf("write keyword index: %w", cw.err)
	}
	sum := cw.h.Sum(nil)
	n, err := w.Write(sum)
	cw.n += int64(n)
	if err != nil {
		return cw.n, fmt.Errorf("write keyword index: %w", err)
	}
	return cw.n, nil
}

// liveKeysLocked returns the key slots and the bitmap of live keys.
func (x *Index) liveKeysLocked() (int, bitset) {
	live := slices.Clone(x.added)
	for w, m := range x.dead {
		if w < len(live) {
			live[w] &^= m
		}
	}
	n := len(x.lens)
	for n > 0 && !live.has(uint32(n-1)) {
		n--
	}
	return n, live
}

func (x *Index) liveCountLocked(id uint32) int {
	p := &x.lists[id]
	if x.ndead == 0 {
		return len(p.docs)
	}
	n := 0
	for i := range p.docs {
		if !x.dead.has(p.doc(i)) {
			n++
		}
	}
	return n
}

func uvarintLen(v uint64) uint64 { return uint64(bits.Len64(v|1)+6) / 7 }

func (x *Index) payloadSizeLocked(terms []string, nkeys int, live bitset) uint64 {
	size := uvarintLen(uint64(nkeys)) + 8*uint64((nkeys+63)/64) + uvarintLen(uint64(len(terms)))
	for key := range nkeys {
		if live.has(uint32(key)) {
			size += uvarintLen(uint64(x.lens[key]))
		}
	}
	for _, t := range terms {
		id := x.dict[t]
		size += uvarintLen(uint64(len(t))) + uint64(len(t)) + uvarintLen(uint64(x.liveCountLocked(id)))
		x.eachLiveLocked(id, func(gap, tf uint32) { size += uvarintLen(uint64(gap)) + uvarintLen(uint64(tf)) })
	}
	return size
}

// eachLiveLocked calls f with the doc gap and frequency of each live
// posting of term id.
func (x *Index) eachLiveLocked(id uint32, f func(gap, tf uint32)) {
	p := &x.lists[id]
	prev := uint32(0)
	for i := range p.docs {
		d := p.doc(i)
		if x.ndead > 0 && x.dead.has(d) {
			continue
		}
		f(d-prev, p.tf(i))
		prev = d
	}
}

func (x *Index) writeTermLocked(cw *chunkWriter, t string) {
	id := x.dict[t]
	cw.buf = binary.AppendUvarint(cw.buf, uint64(len(t)))
	cw.buf = append(cw.buf, t...)
	cw.buf = binary.AppendUvarint(cw.buf, uint64(x.liveCountLocked(id)))
	x.eachLiveLocked(id, func(gap, _ uint32) {
		cw.buf = binary.AppendUvarint(cw.buf, uint64(gap))
		cw.maybeFlush()
	})
	x.eachLiveLocked(id, func(_, tf uint32) {
		cw.buf = binary.AppendUvarint(cw.buf, uint64(tf))
		cw.maybeFlush()
	})
}

// chunkWriter hashes and writes in chunks; the first error sticks.
type chunkWriter struct {
	w   io.Writer
	h   hash.Hash
	buf []byte
	n   int64
	err error
}

func (c *chunkWriter) maybeFlush() {
	if len(c.buf) >= chunk {
		c.flush()
	}
}

func (c *chunkWriter) flush() {
	if c.err == nil && len(c.buf) > 0 {
		c.h.Write(c.buf)
		var n int
		n, c.err = c.w.Write(c.buf)
		c.n += int64(n)
	}
	c.buf = c.buf[:0]
}

// Read reads an index written by [Index.WriteTo]. It reads the header,
// the payload and the trailer and nothing past them. Damaged data, a
// truncated file or a checksum mismatch is an error with [ErrCorrupt] in
// its chain, an intact file of another version of the format one with
// [ErrVersion]; it never yields a partial or silently wrong index.
func Read(r io.Reader) (*Index, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, readErr(err)
	}
	if string(hdr[:8]) != magic {
		return nil, corrupt("bad magic: not a keyword index")
	}
	size := binary.LittleEndian.Uint64(hdr[16:])
	if size > math.MaxInt64/2 {
		return nil, corrupt("payload length %d", size)
	}
	payload, err := readChunks(r, size)
	if err != nil {
		return nil, err
	}
	var sum [sha256.Size]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, readErr(err)
	}
	h := sha256.New()
	h.Write(hdr[:])
	h.Write(payload)
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		return nil, corrupt("checksum mismatch")
	}
	// Checked after the checksum, so that a damaged version field is
	// damage, and an intact file of another version is that.
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != version {
		return nil, nexus.WrapError(nexus.EInternal, ErrVersion, "keyword index file has version %d, this build reads %d: rebuild it", v, version)
	}
	flags := binary.LittleEndian.Uint32(hdr[12:])
	if flags&^flagNoStem != 0 {
		return nil, corrupt("unknown flags %#x", flags)
	}
	x := New(Config{NoStem: flags&flagNoStem != 0})
	if err := x.decode(payload); err != nil {
		return nil, err
	}
	return x, nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("truncated")
	}
	return fmt.Errorf("read keyword index: %w", err)
}

// readChunks reads size bytes, growing the buffer as data arrives so that
// a damaged length cannot allocate more than the data present.
func readChunks(r io.Reader, size uint64) ([]byte, error) {
	buf := make([]byte, 0, min(size, 16*chunk))
	for uint64(len(buf)) < size {
		n := int(min(size-uint64(len(buf)), 16*chunk))
		buf = slices.Grow(buf, n)
		if _, err := io.ReadFull(r, buf[len(buf):len(buf)+n]); err != nil {
			return nil, readErr(err)
		}
		buf = buf[:len(buf)+n]
	}
	return buf, nil
}
