package keyword

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// decoder reads the payload; the first error sticks and later reads
// return zero.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = corrupt(format, args...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.off < len(d.b) && d.b[d.off] < 0x80 {
		d.off++
		return uint64(d.b[d.off-1])
	}
	return d.uvarintSlow()
}

func (d *decoder) uvarintSlow() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail("bad varint at offset %d", d.off)
		return 0
	}
	d.off += n
	return v
}

// count reads a count of items taking at least per bytes each, so that a
// damaged count cannot allocate more than the data present.
func (d *decoder) count(what string, per int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)-d.off)/uint64(per) {
		d.fail("%s count %d exceeds the data", what, n)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n > len(d.b)-d.off {
		d.fail("truncated payload")
		return nil
	}
	d.off += n
	return d.b[d.off-n : d.off]
}

// decode fills an empty index from a payload whose checksum matched. It
// still validates everything, so that no input can make a wrong index.
func (x *Index) decode(b []byte) error {
	d := &decoder{b: b}
	nkeys := d.uvarint()
	if nkeys > MaxKey+1 {
		d.fail("%d key slots, over the limit of %d", nkeys, MaxKey+1)
	}
	words := d.bytes(8 * int((nkeys+63)/64))
	if d.err != nil {
		return d.err
	}
	x.added = make(bitset, len(words)/8)
	for i := range x.added {
		x.added[i] = binary.LittleEndian.Uint64(words[8*i:])
		x.ndocs += bits.OnesCount64(x.added[i])
	}
	if nkeys > 0 && (!x.added.has(uint32(nkeys-1)) || nkeys%64 != 0 && x.added[len(x.added)-1]>>(nkeys%64) != 0) {
		d.fail("key bitmap does not end at key %d", nkeys-1)
	}
	x.lens = make([]uint32, nkeys)
	for key := range x.lens {
		if !x.added.has(uint32(key)) {
			continue
		}
		l := d.uvarint()
		if l > math.MaxUint32 {
			d.fail("key %d: length %d", key, l)
		}
		x.lens[key] = uint32(l)
		x.sumLen += l
	}
	if d.err != nil {
		return d.err
	}
	// The frequencies of a document's terms sum to at least its length (a
	// word has a term, a compound word also those of its parts), and to 0
	// exactly when the length is 0.
	tfSum := make([]uint64, nkeys)
	nterms := d.count("term", 4)
	x.lists = make([]postings, 0, nterms)
	// Term bytes go to one string and postings to shared chunks, so that
	// loading costs a few allocations rather than two per term.
	var names, prev []byte
	ends := make([]int, 0, nterms)
	var arena []uint32
	for i := 0; i < nterms && d.err == nil; i++ {
		t := d.bytes(d.count("term byte", 1))
		if len(t) == 0 || len(t) > MaxTokenBytes || i > 0 && bytes.Compare(t, prev) <= 0 {
			d.fail("term %d (%q) is empty, too long or out of order", i, t)
			break
		}
		prev = t
		names = append(names, t...)
		ends = append(ends, len(names))
		x.lists = append(x.lists, x.decodePostings(d, t, &arena, tfSum))
	}
	if d.err == nil && d.off != len(b) {
		d.fail("%d bytes after the last term", len(b)-d.off)
	}
	if d.err != nil {
		return d.err
	}
	for key, sum := range tfSum {
		l := uint64(x.lens[key])
		if sum > 0 && !x.added.has(uint32(key)) {
			return corrupt("postings for key %d, which is not a document", key)
		}
		if sum < l || (sum == 0) != (l == 0) {
			return corrupt("key %d: length %d, term frequencies summing to %d", key, l, sum)
		}
	}
	all := string(names)
	x.dict = make(map[string]uint32, len(ends))
	start := 0
	for i, end := range ends {
		x.dict[all[start:end]] = uint32(i)
		start = end
		x.lists[i].rebuildBlocks(0, x.lens)
	}
	return nil
}

// decodePostings reads the postings of term t, checks that docs increase
// and are below the key slots, and adds the frequencies to tfSum.
func (x *Index) decodePostings(d *decoder, t []byte, arena *[]uint32, tfSum []uint64) postings {
	n := d.count("posting", 2)
	if n == 0 {
		d.fail("term %q has no postings", t)
		return postings{}
	}
	if len(*arena) < n {
		*arena = make([]uint32, max(n, 1<<20))
	}
	p := postings{docs: (*arena)[:n:n]}
	*arena = (*arena)[n:]
	doc, nkeys := uint64(0), uint64(len(x.lens))
	for i := range p.docs {
		var gap uint64
		if d.off < len(d.b) && d.b[d.off] < 0x80 { // uvarint, inlined
			gap = uint64(d.b[d.off])
			d.off++
		} else {
			gap = d.uvarintSlow()
		}
		if i > 0 && gap == 0 || gap >= nkeys {
			d.fail("term %q: doc gap %d out of range", t, gap)
			return postings{}
		}
		if doc += gap; doc >= nkeys {
			d.fail("term %q: key %d out of range", t, doc)
			return postings{}
		}
		p.docs[i] = uint32(doc)
	}
	for i, doc := range p.docs {
		var tf uint64
		if d.off < len(d.b) && d.b[d.off] < 0x80 { // uvarint, inlined
			tf = uint64(d.b[d.off])
			d.off++
		} else {
			tf = d.uvarintSlow()
		}
		if tf == 0 || tf > math.MaxUint32 {
			d.fail("term %q: frequency %d for key %d", t, tf, doc)
			return postings{}
		}
		tfSum[doc] += tf
		p.docs[i] = p.pack(doc, uint32(tf))
	}
	return p
}
