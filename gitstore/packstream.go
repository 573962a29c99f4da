package gitstore

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
)

// A merge writes its pack to a temp file in the pack directory as it
// assembles it, a megabyte at a time, rather than building the whole pack
// in memory and writing it at the end: a merge of the largest tier, up to
// maxMergeBytes, held that much memory for its output (allocated, zeroed,
// then copied into) besides what it read. Packs it copies as blocks go
// from the read buffer to the file directly. The SHA-1 of the pack is
// computed over the bytes as they are written; the header, which comes
// first, claims the objects of the packs merged, which is the count
// unless an object repeats (packs from stock git may hold objects of
// other packs; a merge object by object writes each once). Then the
// header is rewritten and the SHA-1 computed again from the file.

// streamFlush is how many bytes a streamed pack gathers before writing
// them. A variable only so that a test can make it write every entry.
var streamFlush = 1 << 20

// packStream is the file a streamed pack goes to.
type packStream struct {
	f     *os.File
	sha   hash.Hash // of the bytes written to f
	count uint32    // objects the header claims
	err   error     // the first write error: later writes are skipped
}

// stream makes p write the pack to f (empty, or a spare to overwrite)
// from now on; count is the number of objects the header claims. p must
// hold nothing but its header.
func (p *packWriter) stream(f *os.File, count int64) {
	p.out = &packStream{f: f, sha: sha1.New(), count: uint32(min(count, math.MaxUint32))}
	putPackHeader(p.buf, p.out.count)
}

// putPackHeader writes a pack's header, version 2, into b.
func putPackHeader(b []byte, count uint32) {
	copy(b[0:4], "PACK")
	binary.BigEndian.PutUint32(b[4:8], 2)
	binary.BigEndian.PutUint32(b[8:12], count)
}

// offset is the offset in the pack of the next byte written.
func (p *packWriter) offset() uint64 { return p.base + uint64(len(p.buf)) }

// flush writes what a streamed pack gathered.
func (p *packWriter) flush() {
	p.write(p.buf)
	p.buf = p.buf[:0]
}

// write writes b to a streamed pack, after what it gathered.
func (p *packWriter) write(b []byte) {
	if p.out.err == nil {
		if _, err := p.out.f.WriteAt(b, int64(p.base)); err != nil {
			p.out.err = err
		}
		p.out.sha.Write(b)
	}
	p.base += uint64(len(b))
}

// appendBlock appends b, entries already encoded, to the pack.
func (p *packWriter) appendBlock(b []byte) {
	if p.out == nil {
		p.buf = append(p.buf, b...)
		return
	}
	p.flush()
	p.write(b)
}

// finishStream completes a streamed pack: the rest of it, the header
// rewritten if the count it claims is wrong, the trailer, the file cut to
// its length and fsynced. It returns the file's name and the pack's
// index; the caller installs them. On an error the file is removed.
func (p *packWriter) finishStream() (string, *packIndex, error) {
	out := p.out
	p.flush()
	err := out.err
	if err == nil && int64(out.count) != int64(len(p.entries)) {
		err = p.rehash(uint32(len(p.entries)))
	}
	var sum Hash
	if err == nil {
		sum = Hash(out.sha.Sum(nil))
		_, err = out.f.WriteAt(sum[:], int64(p.base))
	}
	name, err := sealTemp(out.f, int64(p.base)+int64(len(sum)), err)
	if err != nil {
		return "", nil, err
	}
	return name, buildIndex(p.entries, sum), nil
}

// rehash rewrites the header of a streamed pack with the count of
// objects it holds and computes its SHA-1 again, reading the pack back.
func (p *packWriter) rehash(count uint32) error {
	var hdr [packHeaderLen]byte
	putPackHeader(hdr[:], count)
	if _, err := p.out.f.WriteAt(hdr[:], 0); err != nil {
		return err
	}
	p.out.sha.Reset()
	n, err := io.Copy(p.out.sha, io.NewSectionReader(p.out.f, 0, int64(p.base)))
	if err == nil && n != int64(p.base) {
		err = fmt.Errorf("pack %s: read %d of %d bytes back", p.out.f.Name(), n, p.base)
	}
	return err
}

// abortStream removes the file of a streamed pack that will not be
// installed.
func (p *packWriter) abortStream() {
	if p.out != nil {
		p.out.f.Close()
		os.Remove(p.out.f.Name())
		p.out = nil
	}
}
