package gitstore

import (
	"bytes"
	"compress/flate"
	stdzlib "compress/zlib"
	"encoding/binary"
	"hash/adler32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zlib"
	"github.com/nexus-mem/nexus"
)

// zlibStream compresses data at level as the pack writers do.
func zlibStream(tb testing.TB, level int, data []byte) []byte {
	zw, err := zlib.NewWriterLevel(io.Discard, level)
	if err != nil {
		tb.Fatal(err)
	}
	var out []byte
	zw.Reset(appender{&out})
	zw.Write(data)
	zw.Close()
	return out
}

var stdReaders sync.Pool

// stdInflate decodes the zlib stream at the start of src with the
// standard library, as the packed read uses a decoder: exactly size bytes,
// then the end of the stream with its checksum. It returns the bytes and
// the stream's length, or ok false.
func stdInflate(src []byte, size int) (out []byte, n int, ok bool) {
	br := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := stdReaders.Get(); v != nil {
		zr = v.(io.ReadCloser)
		defer stdReaders.Put(zr)
		if zr.(stdzlib.Resetter).Reset(br, nil) != nil {
			return nil, 0, false
		}
	} else {
		var err error
		if zr, err = stdzlib.NewReader(br); err != nil {
			return nil, 0, false
		}
		defer stdReaders.Put(zr)
	}
	out = make([]byte, size)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, 0, false
	}
	var one [1]byte
	if n, err := zr.Read(one[:]); n != 0 || err != io.EOF {
		return nil, 0, false
	}
	return out, len(src) - br.Len(), true
}

// inflateCases are contents of the kinds packs hold (context JSON, deltas
// between contexts, trees, random bytes, runs) in sizes around the block
// and window limits, each compressed at every level by both compressors
// (klauspost/compress, which the store writes with, and compress/zlib).
func inflateCases(tb testing.TB) (data, streams [][]byte) {
	rng := rand.New(rand.NewPCG(3, 4))
	text := func(n int) []byte { return []byte(wordText(rng, n)) }
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	contents := [][]byte{nil, {0}, []byte("a"), bytes.Repeat([]byte("ab"), 200), bytes.Repeat([]byte{0}, 70000)}
	for _, n := range []int{10, 300, 700, 4000, 40000, 200000} {
		contents = append(contents, text(n), random(n))
	}
	var enc deltaEncoder
	for _, c := range deltaCases() {
		contents = append(contents, enc.encode(nil, c[0], c[1]), c[1])
	}
	for _, c := range contents {
		for _, level := range []int{zlib.HuffmanOnly, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9} {
			data = append(data, c, c)
			streams = append(streams, zlibStream(tb, level, c))
			var b bytes.Buffer
			zw, err := stdzlib.NewWriterLevel(&b, level)
			if err != nil {
				tb.Fatal(err)
			}
			zw.Write(c)
			zw.Close()
			streams = append(streams, b.Bytes())
		}
	}
	return data, streams
}

// The decoder gives every stream's bytes and length, with or without
// bytes after the stream, and refuses any other size; a damaged or cut
// stream it either refuses or decodes as the standard library does.
func TestInflater(t *testing.T) {
	var d inflater
	data, streams := inflateCases(t)
	for k, src := range streams {
		want := data[k]
		out := make([]byte, len(want))
		for _, tail := range [][]byte{nil, {0}, bytes.Repeat([]byte{0xff}, 40)} {
			n, ok := d.inflate(out, append(slices.Clone(src), tail...))
			if !ok || n != len(src) || !bytes.Equal(out, want) {
				t.Fatalf("case %d (%d bytes, tail %d): ok %v, length %d of %d, equal %v", k, len(want), len(tail), ok, n, len(src), bytes.Equal(out, want))
			}
		}
		if _, ok := d.inflate(make([]byte, len(want)+1), src); ok {
			t.Fatalf("case %d: decoded into %d bytes, one more than its content", k, len(want)+1)
		}
		if len(want) > 0 {
			if _, ok := d.inflate(make([]byte, len(want)-1), src); ok {
				t.Fatalf("case %d: decoded into %d bytes, one less than its content", k, len(want)-1)
			}
		}
		if len(src) > 4000 {
			continue // the large streams: TestInflater_DamagedLarge
		}
		// Every byte of the headers, tables and trailer; every seventh
		// of the codes between them.
		for i := range src {
			if i >= 300 && i < len(src)-16 && i%7 != 0 {
				continue
			}
			checkAgainstStd(t, &d, src[:i], len(want))
			checkAgainstStd(t, &d, flip(src, i, byte(1)<<(i%8)), len(want))
		}
	}
}

func flip(b []byte, i int, mask byte) []byte {
	b = slices.Clone(b)
	b[i] ^= mask
	return b
}

// checkAgainstStd decodes src into size bytes with d and with the standard
// library and fails unless they agree on whether it is valid, on its bytes
// and on its length.
func checkAgainstStd(tb testing.TB, d *inflater, src []byte, size int) {
	out := make([]byte, size)
	n, ok := d.inflate(out, src)
	want, wn, wok := stdInflate(src, size)
	if ok != wok || ok && (n != wn || !bytes.Equal(out, want)) {
		tb.Fatalf("stream %x into %d bytes: decoder ok %v, %d bytes of stream; compress/zlib ok %v, %d bytes; same output %v",
			src, size, ok, n, wok, wn, bytes.Equal(out, want))
	}
}

// Damage in large streams, at random places.
func TestInflater_DamagedLarge(t *testing.T) {
	var d inflater
	rng := rand.New(rand.NewPCG(5, 6))
	data, streams := inflateCases(t)
	for k, src := range streams {
		if len(src) <= 4000 {
			continue
		}
		for range 4 {
			i := rng.IntN(len(src))
			checkAgainstStd(t, &d, flip(src, i, byte(1)<<rng.IntN(8)), len(data[k]))
			checkAgainstStd(t, &d, src[:i], len(data[k]))
		}
	}
}

// The fixed, stored and degenerate forms compress/flate accepts, written
// by hand: a block of fixed codes, an empty stored block before a final
// one, and a dynamic block whose distance code has a single code of one
// bit (and so the other half of its table invalid).
func TestInflater_Forms(t *testing.T) {
	var d inflater
	for _, data := range [][]byte{nil, []byte("a"), []byte("hello hello hello hello")} {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestSpeed)
		fw.Write(data)
		fw.Flush() // an empty stored block, not final
		fw.Write(data)
		fw.Close()
		src := append([]byte{0x78, 0x01}, b.Bytes()...)
		want := append(slices.Clone(data), data...)
		src = binary.BigEndian.AppendUint32(src, adler32.Checksum(want))
		checkAgainstStd(t, &d, src, len(want))
		if n, ok := d.inflate(make([]byte, len(want)), src); !ok || n != len(src) {
			t.Fatalf("%q twice, with a flush: not decoded", data)
		}
	}
	// Built by zlib for "aaaa...": a dynamic block of one literal and
	// one length, distance 1 only.
	src := zlibStream(t, 9, bytes.Repeat([]byte("a"), 1000))
	checkAgainstStd(t, &d, src, 1000)
	// Fixed codes: compress/flate writes them for a short input at
	// HuffmanOnly? Not necessarily; encode one by hand: final block, fixed
	// codes, literal 'a' (0x61: 8 bits 00110000+0x61), end of block.
	var bw bitWriter
	bw.put(1, 1)
	bw.put(1, 2)
	bw.putCode(0x30+'a', 8)
	bw.putCode(0, 7) // end of block: 256 is 0000000
	fixed := append([]byte{0x78, 0x01}, bw.bytes()...)
	fixed = binary.BigEndian.AppendUint32(fixed, adler32.Checksum([]byte("a")))
	checkAgainstStd(t, &d, fixed, 1)
	if _, ok := d.inflate(make([]byte, 1), fixed); !ok {
		t.Fatal("a block of fixed codes: not decoded")
	}
}

// bitWriter writes a DEFLATE bit stream by hand.
type bitWriter struct {
	out []byte
	n   uint
}

// put writes the n low bits of v, least significant first.
func (w *bitWriter) put(v uint32, n uint) {
	for i := range n {
		if w.n%8 == 0 {
			w.out = append(w.out, 0)
		}
		w.out[len(w.out)-1] |= byte(v>>i&1) << (w.n % 8)
		w.n++
	}
}

// putCode writes an n-bit Huffman code, most significant bit first.
func (w *bitWriter) putCode(code uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.put(code>>uint(i)&1, 1)
	}
}

func (w *bitWriter) bytes() []byte { return w.out }

// Whatever the stream and the size, the decoder and compress/zlib agree:
// both refuse it, or both give the same bytes from the same length of
// stream.
func FuzzInflater(f *testing.F) {
	data, streams := inflateCases(f)
	for k, src := range streams {
		if len(src) < 2000 {
			f.Add(src, uint16(len(data[k])))
		}
	}
	f.Fuzz(func(t *testing.T, src []byte, size uint16) {
		var d inflater
		checkAgainstStd(t, &d, src, int(size))
	})
}

// Any content, compressed by the store's compressor at any level, decodes
// to itself.
func FuzzInflaterRoundTrip(f *testing.F) {
	f.Add([]byte("{\"id\":\"01KDVDNA005FYX6BRY34D0F5P1\"}"), int8(6))
	f.Add(bytes.Repeat([]byte("ab"), 300), int8(1))
	f.Fuzz(func(t *testing.T, data []byte, level int8) {
		l := int(level)%11 - 1 // -1 (default) to 9
		if level < 0 {
			l = zlib.HuffmanOnly
		}
		src := zlibStream(t, l, data)
		var d inflater
		out := make([]byte, len(data))
		if n, ok := d.inflate(out, src); !ok || n != len(src) || !bytes.Equal(out, data) {
			t.Fatalf("level %d, %d bytes: ok %v, length %d of %d", l, len(data), ok, n, len(src))
		}
	})
}

// packLikeStreams are the streams a rebuild inflates by the million, made
// as a merge makes them: context blobs as deltas against a keyframe (the
// first blob), at the level merges write blobs with; sizes are the
// contents' sizes.
func packLikeStreams(tb testing.TB, n int) (streams [][]byte, sizes []int) {
	rng := rand.New(rand.NewPCG(1, 2))
	var gen nexus.IDGenerator
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var key []byte
	var enc deltaEncoder
	for i := range n + 1 {
		c := wordContext(rng, &gen, t0.Add(time.Duration(i)*time.Microsecond), 512)
		blob, err := encodeContext(c)
		if err != nil {
			tb.Fatal(err)
		}
		if key == nil {
			key = blob
			continue
		}
		d := enc.encode(nil, key, blob)
		streams = append(streams, zlibStream(tb, mergeBlobLevel, d))
		sizes = append(sizes, len(d))
	}
	return streams, sizes
}

// The decoder against the general one on the streams of a rebuild.
//
//	go test -run '^$' -bench Inflate ./gitstore/
func BenchmarkInflate(b *testing.B) {
	streams, sizes := packLikeStreams(b, 1000)
	in := 0
	for _, s := range streams {
		in += len(s)
	}
	b.Logf("%d streams, %d bytes on average, of %d-byte deltas on average", len(streams), in/len(streams), func() int {
		t := 0
		for _, n := range sizes {
			t += n
		}
		return t / len(sizes)
	}())
	out := make([]byte, 1<<16)
	b.Run("inflater", func(b *testing.B) {
		var d inflater
		c0 := cpuTime()
		for b.Loop() {
			for k, s := range streams {
				if _, ok := d.inflate(out[:sizes[k]], s); !ok {
					b.Fatal("not decoded")
				}
			}
		}
		b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N*len(streams)), "cpu-ns/stream")
	})
	b.Run("klauspost", func(b *testing.B) {
		var br bytes.Reader
		zr, _ := zlib.NewReader(bytes.NewReader(streams[0]))
		c0 := cpuTime()
		for b.Loop() {
			for k, s := range streams {
				br.Reset(s)
				if zr.(zlib.Resetter).Reset(&br, nil) != nil {
					b.Fatal("bad header")
				}
				if _, err := io.ReadFull(zr, out[:sizes[k]]); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N*len(streams)), "cpu-ns/stream")
	})
}

// A pack's reads decode objects up to maxFastInflate bytes from one read
// with the store's inflater and larger ones through the general decoder;
// both give the object, and a damaged stream is an error from either.
func TestPack_InflatePaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var objs [][]byte
	var types []objType
	for _, n := range []int{0, 100, maxFastInflate, maxFastInflate + 1} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		objs, types = append(objs, b), append(types, objBlob)
	}
	dir := t.TempDir()
	p, hs := testPack(t, dir, objs, types)
	for i, h := range hs {
		off, ok := p.idx.find(h)
		if !ok {
			t.Fatalf("object %d not in the index", i)
		}
		typ, data, err := p.readAt(int64(off), nil, 0)
		if err != nil || typ != objBlob || !bytes.Equal(data, objs[i]) {
			t.Fatalf("object %d (%d bytes): %v, type %v, equal %v", i, len(objs[i]), err, typ, bytes.Equal(data, objs[i]))
		}
		// A byte of its content flipped in the file (past the entry
		// header and the zlib and stored-block headers).
		if len(objs[i]) == 0 {
			continue
		}
		at := int64(off) + 16
		orig := make([]byte, 1)
		if _, err := p.f.ReadAt(orig, at); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(filepath.Join(dir, p.name+".pack"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteAt([]byte{orig[0] ^ 0x10}, at)
		if _, _, err := p.readAt(int64(off), nil, 0); err == nil {
			t.Fatalf("object %d (%d bytes), byte at %d flipped: read without error", i, len(objs[i]), at)
		}
		w.WriteAt(orig, at)
		w.Close()
	}
}

// An offset in a pack's trailer (a damaged index or entry header points
// there) is an error, not a panic, for every offset of the trailer.
func TestPack_ReadAtTrailer(t *testing.T) {
	p, _ := testPack(t, t.TempDir(), [][]byte{[]byte("hello")}, []objType{objBlob})
	for off := p.size - 20; off <= p.size; off++ {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("readAt(%d) of a %d-byte pack panics: %v", off, p.size, r)
				}
			}()
			if _, _, err := p.readAt(off, nil, 0); err == nil {
				t.Fatalf("readAt(%d) of a %d-byte pack: no error", off, p.size)
			}
		}()
	}
}
