package vector_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/vector"
)

// MustEncode returns the bytes WriteTo writes for ix.
func MustEncode(tb testing.TB, ix *vector.Index) []byte {
	tb.Helper()
	var buf bytes.Buffer
	n, err := ix.WriteTo(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	if n != int64(buf.Len()) {
		tb.Fatalf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

func TestRead_roundTrip(t *testing.T) {
	n, dim := 3000, 24
	base, queries := dataset(9, n, 40, dim, 30, 1)
	ix := MustBuild(t, dim, vector.Options{M: 6, EfConstruction: 50, EfSearch: 30, Seed: 99}, base)
	data := MustEncode(t, ix)
	got, err := vector.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != n || got.Dim() != dim || got.Options() != ix.Options() {
		t.Fatalf("read back Len %d Dim %d Options %+v, want %d %d %+v", got.Len(), got.Dim(), got.Options(), n, dim, ix.Options())
	}
	allow := func(k uint32) bool { return k%4 == 1 }
	for _, q := range queries {
		for _, f := range []func(uint32) bool{nil, allow} {
			a, _ := ix.Search(q, 10, f)
			b, _ := got.Search(q, 10, f)
			if !slices.Equal(a, b) {
				t.Fatalf("Search differs after a round trip:\n%v\n%v", a, b)
			}
			a, _ = ix.Exact(q, 10, f)
			b, _ = got.Exact(q, 10, f)
			if !slices.Equal(a, b) {
				t.Fatalf("Exact differs after a round trip:\n%v\n%v", a, b)
			}
		}
	}
	if again := MustEncode(t, got); !bytes.Equal(again, data) {
		t.Fatal("writing the read-back index gives other bytes")
	}
	// The read-back index takes new vectors and refuses known keys.
	if err := got.Add(uint32(n), queries[0]); err != nil {
		t.Fatal(err)
	}
	if err := got.Add(5, queries[1]); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("Add of a known key after Read = %v, want a conflict", err)
	}
	if r, _ := got.Search(queries[0], 1, nil); len(r) != 1 || r[0].Key != uint32(n) {
		t.Fatalf("the vector added after Read is not found: %v", r)
	}
}

func TestRead_empty(t *testing.T) {
	ix, err := vector.New(5, vector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := vector.Read(bytes.NewReader(MustEncode(t, ix)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != 0 || got.Dim() != 5 {
		t.Fatalf("Len %d Dim %d", got.Len(), got.Dim())
	}
	if err := got.Add(1, []float32{1, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
}

// smallEncoded is an index with upper layers: M 2 puts half the nodes on
// layer 1 or above.
func smallEncoded(tb testing.TB) []byte {
	base, _ := dataset(13, 60, 0, 4, 3, 1)
	return MustEncode(tb, MustBuild(tb, 4, vector.Options{M: 2, EfConstruction: 8}, base))
}

func TestRead_corruption(t *testing.T) {
	data := smallEncoded(t)
	check := func(t *testing.T, what string, b []byte) {
		t.Helper()
		ix, err := vector.Read(bytes.NewReader(b))
		if ix != nil || !errors.Is(err, vector.ErrCorrupt) || nexus.ErrorCode(err) != nexus.EInternal {
			t.Fatalf("%s: Read = %v, %v; want an ErrCorrupt error", what, ix, err)
		}
	}
	t.Run("every byte flipped", func(t *testing.T) {
		masks := []byte{0x01, 0x80, 0xff, 0x10}
		for i := range data {
			b := slices.Clone(data)
			b[i] ^= masks[i%len(masks)]
			check(t, "flip", b)
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := range len(data) {
			check(t, "truncated", data[:n])
		}
	})
	t.Run("trailing data", func(t *testing.T) {
		check(t, "trailing", append(slices.Clone(data), 0))
	})
	t.Run("other magic", func(t *testing.T) {
		check(t, "magic", append([]byte("NOTANIDX"), data[8:]...))
	})
}

// rehash replaces the checksum of an encoded index, so that a test can
// reach the structural checks behind it.
func rehash(b []byte) []byte {
	body := b[:len(b)-sha256.Size]
	sum := sha256.Sum256(body)
	return append(slices.Clone(body), sum[:]...)
}

// TestRead_structure alters fields and fixes the checksum: the checks of
// the structure must catch what the checksum no longer does.
func TestRead_structure(t *testing.T) {
	data := smallEncoded(t)
	le := binary.LittleEndian
	n := int(le.Uint32(data[40:]))
	dim, m := 4, 2
	keys := 56
	levels := keys + 4*n
	vecs := levels + n
	links := vecs + 4*n*dim
	upper := links + 4*n*(2*m+1)
	for _, tc := range []struct {
		name string
		edit func(b []byte)
	}{
		{"version", func(b []byte) { le.PutUint32(b[8:], 2) }},
		{"dim 0", func(b []byte) { le.PutUint32(b[12:], 0) }},
		{"M 0", func(b []byte) { le.PutUint32(b[16:], 0) }},
		{"seed 0", func(b []byte) { le.PutUint64(b[32:], 0) }},
		{"reserved", func(b []byte) { b[28] = 1 }},
		{"count larger", func(b []byte) { le.PutUint32(b[40:], uint32(n+1)) }},
		{"count huge", func(b []byte) { le.PutUint32(b[40:], 1<<31) }},
		{"entry out of range", func(b []byte) { le.PutUint32(b[44:], uint32(n)) }},
		{"duplicate key", func(b []byte) { copy(b[keys+4:], b[keys:keys+4]) }},
		{"level too high", func(b []byte) { b[levels+1] = 200 }},
		{"entry not on top", func(b []byte) { b[levels+int(le.Uint32(b[44:]))] = 0 }},
		{"NaN component", func(b []byte) { le.PutUint32(b[vecs+8:], 0x7fc00000) }},
		{"Inf component", func(b []byte) { le.PutUint32(b[vecs+8:], 0x7f800000) }},
		{"too many links", func(b []byte) { le.PutUint32(b[links:], uint32(2*m+1)) }},
		{"link out of range", func(b []byte) { le.PutUint32(b[links+4:], uint32(n)) }},
		{"link to itself", func(b []byte) { le.PutUint32(b[links+4:], 0) }},
		{"unused slot set", func(b []byte) { le.PutUint32(b[links:], 0); le.PutUint32(b[links+4:], 1) }},
		{"upper link below its layer", func(b []byte) {
			// Point the first upper list of the first node above layer 0
			// at a node that is only on layer 0.
			low := slices.Index(b[levels:levels+n], 0)
			le.PutUint32(b[upper:], 1)
			le.PutUint32(b[upper+4:], uint32(low))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := slices.Clone(data)
			tc.edit(b)
			ix, err := vector.Read(bytes.NewReader(rehash(b)))
			if ix != nil || !errors.Is(err, vector.ErrCorrupt) {
				t.Fatalf("Read = %v, %v; want an ErrCorrupt error", ix, err)
			}
			t.Log(err)
		})
	}
	if _, err := vector.Read(bytes.NewReader(rehash(data))); err != nil {
		t.Fatalf("rehash of intact data: %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after < len(p) {
		n := f.after
		f.after = 0
		return n, io.ErrShortWrite
	}
	f.after -= len(p)
	return len(p), nil
}

func TestReadWrite_ioErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	if _, err := vector.Read(failingReader{boom}); !errors.Is(err, boom) || errors.Is(err, vector.ErrCorrupt) {
		t.Errorf("Read from a failing reader = %v, want the reader's error", err)
	}
	data := smallEncoded(t)
	ix, err := vector.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{0, 10, len(data) - 40, len(data) - 1} {
		n, err := ix.WriteTo(&failingWriter{after: after})
		if err == nil || n > int64(after) {
			t.Errorf("WriteTo failing after %d bytes = %d, %v", after, n, err)
		}
	}
}
