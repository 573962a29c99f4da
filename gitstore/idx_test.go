package gitstore

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

func randomEntries(n int, seed uint64, bigOffsets bool) []packEntry {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]packEntry, n)
	off := uint64(packHeaderLen)
	for i := range out {
		var h Hash
		for j := range h {
			h[j] = byte(r.UintN(256))
		}
		out[i] = packEntry{hash: h, offset: off, crc: r.Uint32()}
		off += 1 + r.Uint64N(300)
		if bigOffsets && i%7 == 3 {
			off += 1 << 31
		}
	}
	return out
}

// Our index must be byte-identical to what go-git's writer and encoder
// produce for the same entries (which git itself reads in every fsck test).
func TestBuildIndex_MatchesGoGit(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		big  bool
	}{{"empty", 0, false}, {"one", 1, false}, {"many", 5000, false}, {"large offsets", 300, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ents := randomEntries(tc.n, uint64(tc.n), tc.big)
			sum := Hash(sha1.Sum([]byte(tc.name)))
			ours := buildIndex(ents, sum)

			w := new(idxfile.Writer)
			w.OnHeader(uint32(len(ents)))
			for _, e := range ents {
				w.Add(plumbing.Hash(e.hash), e.offset, e.crc)
			}
			if err := w.OnFooter(plumbing.Hash(sum)); err != nil {
				t.Fatal(err)
			}
			idx, err := w.Index()
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if _, err := idxfile.NewEncoder(&want).Encode(idx); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours.data, want.Bytes()) {
				t.Fatalf("index differs from go-git's: %d vs %d bytes", len(ours.data), want.Len())
			}
		})
	}
}

func TestPackIndex_FindAndOrder(t *testing.T) {
	ents := randomEntries(3000, 7, true)
	sum := Hash(sha1.Sum([]byte("pack")))
	x, err := parseIndex(buildIndex(ents, sum).data)
	if err != nil {
		t.Fatal(err)
	}
	if x.count() != len(ents) || x.packSum() != sum {
		t.Fatalf("count %d sum %s", x.count(), x.packSum())
	}
	for _, e := range ents {
		off, ok := x.find(e.hash)
		if !ok || off != e.offset {
			t.Fatalf("find %s = %d, %v; want %d", e.hash, off, ok, e.offset)
		}
		missing := e.hash
		missing[19] ^= 0x5a
		if _, ok := x.find(missing); ok {
			t.Fatalf("found absent id %s", missing)
		}
	}
	got := x.byOffset()
	for i := range ents {
		if got[i] != ents[i] {
			t.Fatalf("entry %d by offset = %+v, want %+v", i, got[i], ents[i])
		}
	}
}

func TestParseIndex_RejectsDamage(t *testing.T) {
	good := buildIndex(randomEntries(200, 3, false), Hash{1}).data
	cases := map[string][]byte{
		"truncated":   good[:len(good)-1],
		"too short":   good[:100],
		"bad magic":   append([]byte{0}, good[1:]...),
		"bit flipped": flipByte(good, 2000),
		"empty":       nil,
	}
	// A well-checksummed index whose ids are out of order.
	unsorted := bytes.Clone(good)
	copy(unsorted[idxHeadLen:], good[idxHeadLen+20:idxHeadLen+40])
	copy(unsorted[idxHeadLen+20:], good[idxHeadLen:idxHeadLen+20])
	resum(unsorted)
	cases["unsorted ids"] = unsorted
	// Fan-out claiming more objects than the file holds.
	fat := bytes.Clone(good)
	for i := 8 + 4*255; i < 8+4*256; i++ {
		fat[i] = 0x7f
	}
	resum(fat)
	cases["fan-out too large"] = fat
	for name, b := range cases {
		if _, err := parseIndex(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func resum(b []byte) {
	s := sha1.Sum(b[:len(b)-20])
	copy(b[len(b)-20:], s[:])
}

func FuzzParseIndex(f *testing.F) {
	f.Add(buildIndex(randomEntries(3, 1, false), Hash{2}).data)
	f.Add(buildIndex(randomEntries(20, 2, true), Hash{3}).data)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) >= 20 {
			b = bytes.Clone(b)
			resum(b) // reach the structural checks, not only the checksum
		}
		x, err := parseIndex(b)
		if err != nil {
			return
		}
		for i := range x.count() {
			h := Hash(x.name(i))
			if _, ok := x.find(h); !ok {
				t.Fatalf("accepted index cannot find its own id %s", h)
			}
		}
		x.byOffset()
	})
}

// openIndex (the check at open) accepts damage that keeps the structure
// (a flipped id, unsorted ids, a large offset that does not exist), and
// verify, which fsck and merges run, rejects every such index; what
// breaks the structure is refused at open.
func TestOpenIndex_StructureOnly(t *testing.T) {
	good := buildIndex(randomEntries(200, 3, true), Hash{1}).data
	x, err := openIndex(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := x.verify(); err != nil {
		t.Fatalf("a built index fails verify: %v", err)
	}
	unsorted := bytes.Clone(good)
	copy(unsorted[idxHeadLen:], good[idxHeadLen+20:idxHeadLen+40])
	copy(unsorted[idxHeadLen+20:], good[idxHeadLen:idxHeadLen+20])
	resum(unsorted)
	// A large offset naming an entry past the large-offset table.
	var lx packIndex
	lx.layout(200)
	badLarge := bytes.Clone(good)
	big := -1
	for i := range 200 {
		if o := binary.BigEndian.Uint32(good[lx.offs+4*i:]); o&(1<<31) != 0 {
			big = i
			binary.BigEndian.PutUint32(badLarge[lx.offs+4*i:], 1<<31|1000)
			break
		}
	}
	if big < 0 {
		t.Fatal("no large offset in the index")
	}
	resum(badLarge)
	for name, tc := range map[string]struct {
		b      []byte
		verify string
	}{
		"id flipped":       {flipByte(good, idxHeadLen+20*50+7), "checksum mismatch"},
		"checksum flipped": {flipByte(good, len(good)-1), "checksum mismatch"},
		"unsorted ids":     {unsorted, "not sorted"},
		"large offset":     {badLarge, "large offset out of range"},
	} {
		x, err := openIndex(tc.b)
		if err != nil {
			t.Errorf("%s: refused at open: %v", name, err)
			continue
		}
		if err := x.verify(); err == nil || !strings.Contains(err.Error(), tc.verify) {
			t.Errorf("%s: verify says %v, want %q", name, err, tc.verify)
		}
		if _, err := parseIndex(tc.b); err == nil {
			t.Errorf("%s: parseIndex accepted it", name)
		}
	}
	x, _ = openIndex(badLarge)
	if off := x.offsetAt(big); off != badOffset {
		t.Fatalf("missing large offset reads as %d, want %d", off, uint64(badOffset))
	}
	for name, b := range map[string][]byte{
		"truncated by 1":  good[:len(good)-1],
		"truncated by 30": good[:len(good)-30],
		"too short":       good[:100],
		"bad magic":       append([]byte{0}, good[1:]...),
		"empty":           nil,
	} {
		if _, err := openIndex(b); err == nil {
			t.Errorf("%s: accepted at open", name)
		}
	}
}

// Whatever openIndex accepts, no lookup reads outside it and verify
// returns.
func FuzzOpenIndex(f *testing.F) {
	f.Add(buildIndex(randomEntries(3, 1, false), Hash{2}).data, []byte{0x12})
	f.Add(buildIndex(randomEntries(20, 2, true), Hash{3}).data, []byte{0xff, 1})
	f.Fuzz(func(t *testing.T, b, probe []byte) {
		x, err := openIndex(b)
		if err != nil {
			return
		}
		var h Hash
		copy(h[:], probe)
		x.find(h)
		for i := range x.count() {
			x.find(Hash(x.name(i)))
			x.offsetAt(i)
		}
		x.byOffset()
		x.packSum()
		if x.verify() == nil {
			if _, err := parseIndex(b); err != nil {
				t.Fatalf("verify accepts what parseIndex refuses: %v", err)
			}
		}
	})
}
