package gitstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// deltaCases are base/target pairs: tree versions, JSON files, unrelated
// bytes, empty objects, and sizes around the copy and insert limits.
func deltaCases() [][2][]byte {
	rng := rand.New(rand.NewPCG(7, 8))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var entries []treeEntry
	var trees [][]byte
	for i := range 17 {
		var h Hash
		copy(h[:], random(20))
		entries = setEntry(entries, treeEntry{name: fmt.Sprintf("%x", i%16), dir: true, hash: h})
		trees = append(trees, encodeTree(nil, entries))
	}
	big := random(200000)
	bigger := append(append(bytes.Clone(big[:70000]), random(300)...), big[90000:]...)
	json1 := []byte(`{"id":"01KDVDNA005FYX6BRY34D0F5P1","namespace":"bench","type":"observation","content":"decision memory thread"}`)
	json2 := []byte(`{"id":"01KDVDNA005FYX6BRY34D0F5P2","namespace":"bench","type":"observation","content":"result search commit agent"}`)
	cases := [][2][]byte{
		{nil, nil},
		{nil, []byte("new")},
		{[]byte("old"), nil},
		{json1, json2},
		{json2, json1},
		{random(100), random(300)},
		{big, bigger},
		{bigger, big},
		{big, big},
		{[]byte(strings.Repeat("a", 1000)), []byte(strings.Repeat("a", 1001))},
	}
	for i := 1; i < len(trees); i++ {
		cases = append(cases, [2][]byte{trees[i-1], trees[i]})
	}
	return cases
}

// Every delta the encoder writes turns its base into its target, and a
// tree that changed one entry costs little more than the entry's id.
func TestDelta_RoundTrip(t *testing.T) {
	var enc deltaEncoder
	for i, c := range deltaCases() {
		d := enc.encode(nil, c[0], c[1])
		got, err := applyDelta(c[0], d)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !bytes.Equal(got, c[1]) {
			t.Fatalf("case %d: delta of %d bytes gives %d bytes that differ from the %d-byte target", i, len(d), len(got), len(c[1]))
		}
	}
	// The table of a base is kept for the next delta against it; a base
	// changed in place since must still give right deltas.
	base := []byte(strings.Repeat("a context file of the store, keyed and laid out alike; ", 8))
	target := append([]byte("new first line; "), base[40:]...)
	for i := range 3 {
		d := enc.encode(nil, base, target)
		if got, err := applyDelta(base, d); err != nil || !bytes.Equal(got, target) {
			t.Fatalf("against a base used before (round %d): %v", i, err)
		}
		copy(base, strings.Repeat(fmt.Sprint(i), 100))
	}
	var h1, h2 Hash
	h2[0] = 1
	e := []treeEntry{{name: "0", dir: true}, {name: "1", dir: true, hash: h1}, {name: "2", dir: true}}
	base = encodeTree(nil, e)
	e[1].hash = h2
	d := enc.encode(nil, base, encodeTree(nil, e))
	if len(d) > 35 {
		t.Fatalf("a tree that changed one id: delta of %d bytes, want at most 35", len(d))
	}
}

// Damaged deltas give an error that says what is wrong, never a panic or
// an output of another size than declared.
func TestApplyDelta_Errors(t *testing.T) {
	base := []byte("0123456789")
	for _, tc := range []struct {
		name, want string
		delta      []byte
	}{
		{"empty", "truncated header", nil},
		{"no target size", "truncated header", []byte{10}},
		{"wrong base size", "base of 11 bytes", []byte{11, 1, 1, 'x'}},
		{"huge target", "over the", []byte{10, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"reserved instruction", "reserved instruction 0", []byte{10, 1, 0}},
		{"truncated insert", "truncated insert", []byte{10, 5, 5, 'a', 'b'}},
		{"truncated copy", "truncated copy", []byte{10, 5, 0x91}},
		{"copy outside the base", "outside the base", []byte{10, 5, 0x91, 8, 5}},
		{"longer than declared", "longer than the 2 bytes", []byte{10, 2, 3, 'a', 'b', 'c'}},
		{"shorter than declared", "gives 1 bytes, declares 2", []byte{10, 2, 1, 'a'}},
		{"copy of 0x10000 from a short base", "outside the base", []byte{10, 5, 0x80}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := applyDelta(base, tc.delta)
			if err == nil || !errors.Is(err, errDelta) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, %v; want an error containing %q", out, err, tc.want)
			}
		})
	}
}

// The decoder never panics, never returns an output of another size than
// the delta declares, and allocates in proportion to what it outputs.
func FuzzApplyDelta(f *testing.F) {
	var enc deltaEncoder
	for _, c := range deltaCases() {
		if len(c[0]) < 4096 && len(c[1]) < 4096 {
			f.Add(c[0], enc.encode(nil, c[0], c[1]))
		}
	}
	f.Add([]byte("base"), []byte{4, 0xff, 0xff, 0xff, 0x7f, 0x80, 0x80, 0x80})
	f.Fuzz(func(t *testing.T, base, delta []byte) {
		out, err := applyDelta(base, delta)
		if err != nil {
			if out != nil {
				t.Fatal("output with an error")
			}
			return
		}
		var hdr [2]uint64
		rest := delta
		for i := range hdr {
			v, n := uvarint(rest)
			hdr[i], rest = v, rest[n:]
		}
		if hdr[0] != uint64(len(base)) || hdr[1] != uint64(len(out)) {
			t.Fatalf("accepted a delta for %d → %d bytes, base %d, output %d", hdr[0], hdr[1], len(base), len(out))
		}
	})
}

// The encoder's deltas turn any base into any target.
func FuzzDeltaRoundTrip(f *testing.F) {
	for _, c := range deltaCases() {
		if len(c[0]) < 4096 && len(c[1]) < 4096 {
			f.Add(c[0], c[1])
		}
	}
	var enc deltaEncoder
	f.Fuzz(func(t *testing.T, base, target []byte) {
		d := enc.encode(nil, base, target)
		got, err := applyDelta(base, d)
		if err != nil || !bytes.Equal(got, target) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// The header decoder of the entries a merge reads never panics, and what
// it accepts stays inside the entry and points back to a base before it.
func FuzzParsePacked(f *testing.F) {
	pw := newPackWriter()
	_, base, _ := pw.addAt(objTree, []byte("100644 a\x00aaaaaaaaaaaaaaaaaaaa"))
	pw.addDelta(Hash{1}, base, []byte{28, 28, 0x90, 28})
	pw.addAt(objBlob, bytes.Repeat([]byte("x"), 300))
	data, idx := pw.finish()
	ents := idx.byOffset()
	for i, e := range ents {
		end := uint64(len(data) - 20)
		if i+1 < len(ents) {
			end = ents[i+1].offset
		}
		f.Add(data[e.offset:end], e.offset)
	}
	f.Add(append([]byte{byte(objRefDelta)<<4 | 5}, make([]byte, 20)...), uint64(12))
	f.Add([]byte{byte(objOfsDelta)<<4 | 0x8f, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, uint64(1<<40))
	f.Fuzz(func(t *testing.T, raw []byte, off uint64) {
		pe, err := parsePacked(packEntry{offset: off}, raw)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a CorruptError", err)
			}
			return
		}
		if pe.hdr > len(raw) {
			t.Fatalf("header of %d bytes in an entry of %d", pe.hdr, len(raw))
		}
		if pe.t == objOfsDelta && pe.baseOff >= off {
			t.Fatalf("delta at %d based at %d", off, pe.baseOff)
		}
	})
}

func uvarint(b []byte) (uint64, int) {
	var v uint64
	for i, c := range b {
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, i + 1
		}
	}
	return v, len(b)
}

// dropBaseCaches empties every pack's cache of delta bases.
func dropBaseCaches(s *Store) {
	s.repo.mu.RLock()
	defer s.repo.mu.RUnlock()
	for _, p := range s.repo.packs {
		p.bases.mu.Lock()
		clear(p.bases.m)
		p.bases.lru.Init()
		p.bases.bytes = 0
		p.bases.mu.Unlock()
	}
}

// mergeInMemory merges packs (newest first) as Store.merge does, without
// writing the result; it returns the merged pack and its index.
func mergeInMemory(tb testing.TB, packs []*pack) ([]byte, *packIndex) {
	return mergeBlocks(tb, nil, packs).pw.finish()
}

// mergeBlocks adds packs (newest first) to a merge copying blocks, as
// Store.merge's first try does, streamed to a temp file of r's if r is
// set, and orders its entries; the caller finishes it.
func mergeBlocks(tb testing.TB, r *repo, packs []*pack) *packMerge {
	var total, objects int64
	for _, p := range packs {
		total, objects = total+p.size, objects+p.count
	}
	m, err := newPackMerge(r, total, objects, true)
	if err != nil {
		tb.Fatal(err)
	}
	for i := len(packs) - 1; i >= 0; i-- {
		if err := m.addPack(packs[i]); err != nil {
			tb.Fatal(err)
		}
	}
	if !m.index() {
		tb.Fatal("an object repeats")
	}
	return m
}
