package gitstore

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// packIndex is a version 2 pack index (git's .idx format) kept as its file
// bytes: lookups read the fan-out table and binary-search the sorted object
// ids in place, as git does with a mapped index, so building or loading one
// costs a sort or a checksum and nothing per object.
//
// Layout: magic "\377tOc", version 2, 256 fan-out counts, n object ids
// (sorted), n CRC-32s of the packed entries, n 4-byte offsets (high bit set:
// an index into the 8-byte large-offset table that follows), the pack's
// checksum, and a SHA-1 of everything before it.
type packIndex struct {
	data  []byte
	n     int
	names int // start of the object ids
	crcs  int
	offs  int
	large int

	nLarge int // entries of the large-offset table
}

var idxMagic = []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2}

const (
	idxFanoutLen = 256 * 4
	idxHeadLen   = 8 + idxFanoutLen
	idxTrailLen  = 2 * 20
	maxSmallOff  = 1<<31 - 1
)

func (x *packIndex) layout(n int) {
	x.n = n
	x.names = idxHeadLen
	x.crcs = x.names + 20*n
	x.offs = x.crcs + 4*n
	x.large = x.offs + 4*n
}

// buildIndex returns the index of a pack holding entries, whose trailer
// checksum is sum. entries is not modified.
func buildIndex(entries []packEntry, sum Hash) *packIndex {
	byHash := func(a, b packEntry) int { return compareHash(&a.hash, &b.hash) }
	sorted := entries
	if !slices.IsSortedFunc(entries, byHash) {
		sorted = slices.Clone(entries)
		slices.SortFunc(sorted, byHash)
	}
	var x packIndex
	x.layout(len(sorted))
	nLarge := 0
	for _, e := range sorted {
		if e.offset > maxSmallOff {
			nLarge++
		}
	}
	b := make([]byte, x.large+8*nLarge+idxTrailLen)
	copy(b, idxMagic)
	var fan [256]uint32
	for _, e := range sorted {
		fan[e.hash[0]]++
	}
	var total uint32
	for i, c := range fan {
		total += c
		binary.BigEndian.PutUint32(b[8+4*i:], total)
	}
	large := 0
	for i, e := range sorted {
		copy(b[x.names+20*i:], e.hash[:])
		binary.BigEndian.PutUint32(b[x.crcs+4*i:], e.crc)
		off := uint32(e.offset)
		if e.offset > maxSmallOff {
			binary.BigEndian.PutUint64(b[x.large+8*large:], e.offset)
			off = 1<<31 | uint32(large)
			large++
		}
		binary.BigEndian.PutUint32(b[x.offs+4*i:], off)
	}
	end := len(b) - idxTrailLen
	copy(b[end:], sum[:])
	check := sha1.Sum(b[:end+20])
	copy(b[end+20:], check[:])
	x.data = b
	x.nLarge = nLarge
	return &x
}

// parseIndex checks b as a version 2 pack index in full: its structure
// (openIndex) and everything verify checks. Indexes from outside the
// store (a replica's history, stock git's index-pack) are read with it.
func parseIndex(b []byte) (*packIndex, error) {
	x, err := openIndex(b)
	if err != nil {
		return nil, err
	}
	if err := x.verify(); err != nil {
		return nil, err
	}
	return x, nil
}

// openIndex checks what an open needs of a version 2 pack index, in time
// that does not grow with its objects: magic, a monotonic fan-out, and a
// size that matches the count it gives. Nothing read from an index it
// accepts can point outside it (offsetAt bounds the large offsets). It
// does not hash the index or check the order of its ids: the store wrote
// and checksummed its indexes itself (buildIndex), every object read is
// checked against its id, a merge verifies the indexes of the packs it
// copies, and fsck verifies every index (verify); the caller checks the
// pack checksum the index ends with against the pack's trailer.
func openIndex(b []byte) (*packIndex, error) {
	if len(b) < idxHeadLen+idxTrailLen || !bytes.Equal(b[:8], idxMagic) {
		return nil, errors.New("not a version 2 pack index")
	}
	var x packIndex
	prev := uint32(0)
	for i := range 256 {
		c := binary.BigEndian.Uint32(b[8+4*i:])
		if c < prev {
			return nil, errors.New("pack index fan-out is not monotonic")
		}
		prev = c
	}
	if uint64(prev)*28 > uint64(len(b)) {
		return nil, fmt.Errorf("pack index lists %d objects but is only %d bytes", prev, len(b))
	}
	x.layout(int(prev))
	if x.large > len(b)-idxTrailLen || (len(b)-idxTrailLen-x.large)%8 != 0 {
		return nil, fmt.Errorf("pack index of %d objects has a bad size (%d bytes)", x.n, len(b))
	}
	x.data = b
	x.nLarge = (len(b) - idxTrailLen - x.large) / 8
	return &x, nil
}

// verify checks what openIndex does not: the index's SHA-1 checksum, the
// order of its ids, that the fan-out counts them, and that every large
// offset exists.
func (x *packIndex) verify() error {
	b := x.data
	end := len(b) - 20
	if sha1.Sum(b[:end]) != [20]byte(b[end:]) {
		return errors.New("pack index checksum mismatch")
	}
	var fan [256]uint32
	for i := range x.n {
		if i > 0 && bytes.Compare(x.name(i-1), x.name(i)) >= 0 {
			return errors.New("pack index object ids are not sorted")
		}
		fan[x.name(i)[0]]++
		if o := binary.BigEndian.Uint32(b[x.offs+4*i:]); o&(1<<31) != 0 && int(o&maxSmallOff) >= x.nLarge {
			return errors.New("pack index large offset out of range")
		}
	}
	var total uint32
	for i, c := range fan {
		total += c
		if binary.BigEndian.Uint32(b[8+4*i:]) != total {
			return errors.New("pack index fan-out does not match its ids")
		}
	}
	return nil
}

func (x *packIndex) name(i int) []byte { return x.data[x.names+20*i : x.names+20*i+20] }

func (x *packIndex) count() int { return x.n }

// packSum is the checksum of the pack this index describes.
func (x *packIndex) packSum() Hash {
	return Hash(x.data[len(x.data)-idxTrailLen:])
}

func (x *packIndex) offsetAt(i int) uint64 {
	o := binary.BigEndian.Uint32(x.data[x.offs+4*i:])
	if o&(1<<31) == 0 {
		return uint64(o)
	}
	k := int(o & maxSmallOff)
	if k >= x.nLarge {
		return badOffset // an index openIndex accepted without verify
	}
	return binary.BigEndian.Uint64(x.data[x.large+8*k:])
}

// badOffset is the offset of an entry whose large offset is missing: past
// the end of any pack, so reading it fails.
const badOffset = 1 << 62

// find returns the offset of h in the pack.
func (x *packIndex) find(h Hash) (uint64, bool) {
	lo := 0
	if h[0] > 0 {
		lo = int(binary.BigEndian.Uint32(x.data[8+4*(int(h[0])-1):]))
	}
	hi := int(binary.BigEndian.Uint32(x.data[8+4*int(h[0]):]))
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		switch c := bytes.Compare(x.name(m), h[:]); {
		case c == 0:
			return x.offsetAt(m), true
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return 0, false
}

// entries lists the entries in index order (by object id).
func (x *packIndex) entries() []packEntry {
	out := make([]packEntry, x.n)
	for i := range out {
		out[i] = packEntry{
			hash:   Hash(x.name(i)),
			offset: x.offsetAt(i),
			crc:    binary.BigEndian.Uint32(x.data[x.crcs+4*i:]),
		}
	}
	return out
}

// byOffset lists the entries in pack order.
func (x *packIndex) byOffset() []packEntry {
	return sortByOffset(x.entries())
}

// compareHash orders object ids as git does (bytewise).
func compareHash(a, b *Hash) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return bytes.Compare(a[8:], b[8:])
}
