package keyword_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/keyword/keywordtest"
)

func MustWrite(tb testing.TB, x *keyword.Index) []byte {
	tb.Helper()
	var buf bytes.Buffer
	n, err := x.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		tb.Fatalf("WriteTo = %d, %v (wrote %d)", n, err, buf.Len())
	}
	return buf.Bytes()
}

// corpusIndex returns an index of n corpus documents with some deleted
// and some tf over 255.
func corpusIndex(tb testing.TB, n int) *keyword.Index {
	c := &keywordtest.Corpus{Seed: 9, Vocab: 2000}
	x := keyword.New(keyword.Config{})
	for i := range n {
		text := c.Doc(i)
		if i == 5 {
			text += strings.Repeat(" loud", 400)
		}
		if err := x.Add(uint32(i), text); err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < n; i += 11 {
		x.Delete(uint32(i))
	}
	return x
}

func TestIndex_WriteTo_roundTrip(t *testing.T) {
	x := corpusIndex(t, 2000)
	data := MustWrite(t, x)
	y, err := keyword.Read(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if xs, ys := x.Stats(), y.Stats(); xs != ys || xs.Deleted != 0 {
		t.Fatalf("stats %+v, read back %+v", xs, ys)
	}
	c := &keywordtest.Corpus{Seed: 9, Vocab: 2000}
	queries := slices.Concat(c.Queries(keywordtest.And2, 50), c.Queries(keywordtest.OrCommon3, 50), c.Queries(keywordtest.OrZipf4, 50), []string{"loud"})
	for _, q := range queries {
		for _, mode := range []keyword.Mode{keyword.Or, keyword.And} {
			for _, allow := range []func(uint32) bool{nil, func(k uint32) bool { return k%2 == 0 }} {
				want := MustSearch(t, x, q, 20, mode, allow)
				if got := MustSearch(t, y, q, 20, mode, allow); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s %q: read back %v, want %v", mode, q, got, want)
				}
			}
		}
	}
	if again := MustWrite(t, y); !bytes.Equal(again, data) {
		t.Fatal("writing the read-back index gives other bytes")
	}
	if got := MustSearch(t, y, "loud", 1, keyword.Or, nil); got[0].Key != 5 {
		t.Fatalf("big frequency lost: %v", got)
	}
}

func TestRead_config(t *testing.T) {
	for _, cfg := range []keyword.Config{{}, {NoStem: true}} {
		x := keyword.New(cfg)
		if err := x.Add(3, "Running dogs"); err != nil {
			t.Fatal(err)
		}
		y, err := keyword.Read(bytes.NewReader(MustWrite(t, x)))
		if err != nil {
			t.Fatal(err)
		}
		if y.Analyzer().NoStem != cfg.NoStem || len(MustSearch(t, y, "running", 1, keyword.And, nil)) != 1 {
			t.Fatalf("config %+v not kept", cfg)
		}
	}
	empty, err := keyword.Read(bytes.NewReader(MustWrite(t, keyword.New(keyword.Config{}))))
	if err != nil || empty.Stats() != (keyword.Stats{}) {
		t.Fatalf("empty index: %v %+v", err, empty)
	}
}

func TestRead_corruption(t *testing.T) {
	data := MustWrite(t, corpusIndex(t, 40))
	mustCorrupt := func(t *testing.T, what string, b []byte) {
		t.Helper()
		x, err := keyword.Read(bytes.NewReader(b))
		if !errors.Is(err, keyword.ErrCorrupt) || x != nil {
			t.Fatalf("%s: Read = %v, %v; want ErrCorrupt", what, x, err)
		}
	}
	t.Run("truncated", func(t *testing.T) {
		for n := range len(data) {
			mustCorrupt(t, "truncated", data[:n])
		}
	})
	t.Run("flipped", func(t *testing.T) {
		for i := range data {
			b := slices.Clone(data)
			b[i] ^= 1 << (i % 8)
			mustCorrupt(t, "flipped", b)
		}
	})
	t.Run("sealed garbage", func(t *testing.T) {
		// A valid checksum over an invalid payload: one extra byte.
		b := slices.Clone(data[:len(data)-sha256.Size])
		binary.LittleEndian.PutUint64(b[16:], binary.LittleEndian.Uint64(b[16:])+1)
		b = append(b, 0)
		mustCorrupt(t, "extra byte", reseal(b))
	})
}

// reseal appends the SHA-256 trailer to b.
func reseal(b []byte) []byte {
	sum := sha256.Sum256(b)
	return append(slices.Clone(b), sum[:]...)
}

// TestRead_version1 checks that an intact file of version 1 is refused
// as another version (so that the caller rebuilds the index with the
// analyzer of now), and that its payload under this version's header is
// refused as corrupt rather than misread.
func TestRead_version1(t *testing.T) {
	texts := []string{"strings.TrimSpace returns s without spaces", "trim the space", "sha256 Sum256 checksum", ""}
	v1 := keywordtest.FileV1(texts)
	x, err := keyword.Read(bytes.NewReader(v1))
	if x != nil || !errors.Is(err, keyword.ErrVersion) || errors.Is(err, keyword.ErrCorrupt) {
		t.Fatalf("version 1: Read = %v, %v; want ErrVersion", x, err)
	}
	relabeled := slices.Clone(v1[:len(v1)-sha256.Size])
	binary.LittleEndian.PutUint32(relabeled[8:], 3)
	if x, err := keyword.Read(bytes.NewReader(reseal(relabeled))); x != nil || !errors.Is(err, keyword.ErrCorrupt) {
		t.Fatalf("version 1 payload as version 3: Read = %v, %v; want ErrCorrupt", x, err)
	}
	// The index rebuilt from the texts finds the parts of compound words,
	// which the version 1 file has no terms for.
	y := MustIndex(t, texts...)
	if got := keys(MustSearch(t, y, "trim sha", 10, keyword.Or, nil)); !slices.Equal(slices.Sorted(slices.Values(got)), []uint32{0, 1, 2}) {
		t.Fatalf("rebuilt index: trim sha finds %v, want 0, 1 and 2", got)
	}
	z, err := keyword.Read(bytes.NewReader(MustWrite(t, y)))
	if err != nil || !slices.Equal(keys(MustSearch(t, z, "space", 10, keyword.Or, nil)), keys(MustSearch(t, y, "space", 10, keyword.Or, nil))) {
		t.Fatalf("version 3 round trip: %v", err)
	}
}

// TestRead_version2 checks that an intact file of version 2, written
// before the stemmer had Porter2's step 5, is refused as another version,
// and that the same payload under version 3's header reads.
func TestRead_version2(t *testing.T) {
	texts := []string{"parse the file", "parsing files", "floating point", "a float"}
	v2 := keywordtest.FileV2(texts)
	x, err := keyword.Read(bytes.NewReader(v2))
	if x != nil || !errors.Is(err, keyword.ErrVersion) || errors.Is(err, keyword.ErrCorrupt) {
		t.Fatalf("version 2: Read = %v, %v; want ErrVersion", x, err)
	}
	relabeled := slices.Clone(v2[:len(v2)-sha256.Size])
	binary.LittleEndian.PutUint32(relabeled[8:], 3)
	if _, err := keyword.Read(bytes.NewReader(reseal(relabeled))); err != nil {
		t.Fatalf("version 2's layout as version 3: %v", err)
	}
	// The index made now folds the forms of a verb that step 5 brings
	// together: "parse" finds both, "floating" finds "float".
	y := MustIndex(t, texts...)
	if got := keys(MustSearch(t, y, "parse", 10, keyword.Or, nil)); !slices.Equal(slices.Sorted(slices.Values(got)), []uint32{0, 1}) {
		t.Fatalf("parse finds %v, want 0 and 1", got)
	}
	if got := keys(MustSearch(t, y, "floating", 10, keyword.Or, nil)); !slices.Equal(slices.Sorted(slices.Values(got)), []uint32{2, 3}) {
		t.Fatalf("floating finds %v, want 2 and 3", got)
	}
}
