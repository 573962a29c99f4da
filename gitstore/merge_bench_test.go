package gitstore

import (
	"bytes"
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/klauspost/compress/zlib"
)

// mergedPayloads merges 8 group commits of 1024 contexts in memory and
// returns what the merged pack's entries hold before zlib, by kind: the
// object type and whether the entry is whole or a delta ("blob/delta").
func mergedPayloads(b *testing.B) (map[string][][]byte, int) {
	const n = 8192
	s, err := Open(b.TempDir(), Options{MergePacks: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fillApply(b, s, n, 512, 1024)
	data, idx := mergeInMemory(b, s.allPacks())
	ents := idx.byOffset()
	types := map[uint64]objType{}
	kinds := map[string][][]byte{}
	for i, e := range ents {
		end := uint64(len(data) - 20)
		if i+1 < len(ents) {
			end = ents[i+1].offset
		}
		pe, err := parsePacked(e, data[e.offset:end])
		if err != nil {
			b.Fatal(err)
		}
		body, err := inflate(bytes.NewReader(pe.raw[pe.hdr:]), pe.size)
		if err != nil {
			b.Fatal(err)
		}
		t, form := pe.t, "whole"
		if t == objOfsDelta {
			t, form = types[pe.baseOff], "delta"
		}
		types[e.offset] = t
		kind := t.String() + "/" + form
		kinds[kind] = append(kinds[kind], body)
	}
	return kinds, n
}

// BenchmarkMergeLevels measures, for each kind of entry a merge writes
// (blob, commit or tree; whole or a delta), what compressing all of them
// at each zlib level costs: bytes per context (zlib-bytes/context, the
// stored entry less its header) and CPU per context (cpu-ns/context).
// Level -2 is Huffman coding only.
//
//	go test -run '^$' -bench MergeLevels -benchtime 20x -count 3 ./gitstore/
func BenchmarkMergeLevels(b *testing.B) {
	kinds, n := mergedPayloads(b)
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, kind := range names {
		objs := kinds[kind]
		for _, level := range []int{0, -2, 1, 3, 6} {
			b.Run(fmt.Sprintf("%s/%d/level=%d", kind, len(objs), level), func(b *testing.B) {
				zw, _ := zlib.NewWriterLevel(nil, level)
				var out []byte
				written := 0
				start := cpuTime()
				for b.Loop() {
					written = 0
					for _, o := range objs {
						out = out[:0]
						zw.Reset(appender{&out})
						zw.Write(o)
						zw.Close()
						written += len(out)
					}
				}
				b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N)/float64(n), "cpu-ns/context")
				b.ReportMetric(float64(written)/float64(n), "zlib-bytes/context")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// sortByHash orders entries as the index does, whatever their order.
func TestSortByHash(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 255, 256, 5000, 300000} {
		var in []packEntry
		for i := range n {
			var h Hash
			for j := range h {
				h[j] = byte(rng.Uint32())
			}
			if i%7 == 3 {
				h[0] = 0x42 // crowded buckets too
			}
			in = append(in, packEntry{hash: h, offset: uint64(i)})
		}
		got := sortByHash(slices.Clone(in))
		want := slices.Clone(in)
		slices.SortFunc(want, func(a, b packEntry) int { return compareHash(&a.hash, &b.hash) })
		if !slices.Equal(got, want) {
			t.Fatalf("%d entries: not in index order", n)
		}
	}
}

// sortByOffset puts entries in pack order, whatever their order and
// however unevenly the offsets spread: a pack may hold one large object
// among small ones, which crowds the small ones into few buckets.
func TestSortByOffset(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 2, 255, 256, 5000, 300000} {
		var in []packEntry
		off := uint64(packHeaderLen)
		for i := range n {
			in = append(in, packEntry{offset: off, crc: uint32(i)})
			off += 1 + uint64(rng.IntN(200))
			if i == n/3 {
				off += 1 << 34 // one object larger than everything else
			}
		}
		rng.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		got := sortByOffset(slices.Clone(in))
		want := slices.Clone(in)
		slices.SortFunc(want, func(a, b packEntry) int { return cmp.Compare(a.offset, b.offset) })
		if !slices.Equal(got, want) {
			t.Fatalf("%d entries: not in pack order", n)
		}
	}
}

// A merge's hashObject, which keeps its SHA-1 state, gives the ids
// hashObject gives, one object after another.
func TestPackMerge_HashObject(t *testing.T) {
	var m packMerge
	for i, data := range [][]byte{nil, []byte("a"), bytes.Repeat([]byte("tree entry "), 300), []byte("b")} {
		for _, ty := range []objType{objCommit, objTree, objBlob, objTag} {
			if got, want := m.hashObject(ty, data), hashObject(ty, data); got != want {
				t.Fatalf("object %d of type %s: %s, want %s", i, ty, got, want)
			}
		}
	}
}
