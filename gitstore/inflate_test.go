package gitstore

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/klauspost/compress/zlib"
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

// The stored-block decoder takes the streams the write path writes for
// trees (level 0), of every size up to and past one block, and gives
// their bytes; it leaves every other stream, and damaged ones, to the
// general decoder.
func TestInflateStored(t *testing.T) {
	for _, n := range []int{0, 1, 47, 1000, 65535, 65536, 200000} {
		data := bytes.Repeat([]byte("tree "), n/5+1)[:n]
		src := zlibStream(t, zlib.NoCompression, data)
		out := make([]byte, n)
		if !inflateStored(out, src) || !bytes.Equal(out, data) {
			t.Fatalf("%d bytes stored: not decoded, or decoded wrong", n)
		}
		if n > 0 && inflateStored(make([]byte, n-1), src) {
			t.Fatalf("%d bytes stored: decoded into %d bytes", n, n-1)
		}
		if inflateStored(make([]byte, n+1), src) {
			t.Fatalf("%d bytes stored: decoded into %d bytes", n, n+1)
		}
		if inflateStored(make([]byte, n), append(slices.Clone(src), 0)) {
			t.Fatalf("%d bytes stored: decoded with a byte after the stream", n)
		}
		for i := range src {
			if i >= 64 && i < len(src)-64 && n > 1000 {
				continue // the headers and the trailer; not every byte of a big block
			}
			bad := slices.Clone(src)
			bad[i] ^= 0x04
			if out := make([]byte, n); inflateStored(out, bad) && !bytes.Equal(out, data) {
				t.Fatalf("%d bytes stored, byte %d damaged: decoded to other bytes", n, i)
			}
			if inflateStored(make([]byte, n), bad[:i]) {
				t.Fatalf("%d bytes stored, cut at %d: decoded", n, i)
			}
		}
		for _, level := range []int{1, 6, zlib.HuffmanOnly} {
			// Levels above 0 store tiny inputs too; what they compress
			// is left to the general decoder.
			out := make([]byte, n)
			if stored := inflateStored(out, zlibStream(t, level, data)); stored && (n >= 1000 || !bytes.Equal(out, data)) {
				t.Fatalf("%d bytes at level %d: taken as stored", n, level)
			}
		}
	}
}

// Whatever the stream, when the stored-block decoder accepts it, the
// general decoder accepts it too and gives the same bytes.
func FuzzInflateStored(f *testing.F) {
	for _, n := range []int{0, 1, 47, 300} {
		data := bytes.Repeat([]byte{'a', 0, 'b'}, n)[:n]
		f.Add(zlibStream(f, zlib.NoCompression, data), uint16(n))
		f.Add(zlibStream(f, zlib.BestSpeed, data), uint16(n))
	}
	f.Add([]byte{0x78, 0x01, 0x01, 0x01, 0x00, 0xfe, 0xff, 'x', 0, 0x79, 0, 0x79}, uint16(1))
	f.Fuzz(func(t *testing.T, src []byte, size uint16) {
		out := make([]byte, size)
		if !inflateStored(out, src) {
			return
		}
		want, err := inflate(bytes.NewReader(src), uint64(size))
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("stored decoder gives %q; the general decoder %q, %v", out, want, err)
		}
	})
}
