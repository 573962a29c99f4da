package gitstore

import (
	"encoding/binary"
	"hash/adler32"
	"math/bits"
)

// A zlib decoder for the packed read (rebuild.go), made for what it reads
// by the million: small streams (a few hundred bytes of delta or tree)
// whose size is known from the pack entry's header, decoded whole into one
// buffer. The general decoder (klauspost/compress, through a reader) spends
// most of such a stream building its Huffman tables and moving bytes
// through its 32 KiB window; this one builds compact tables and writes the
// output in place, copying matches from the output itself.
//
// It is exact where it answers: when it reports success, compress/zlib
// accepts the same stream and gives the same bytes (FuzzInflater checks
// this against the standard library). It reports failure for any stream it
// cannot decode to exactly len(out) bytes with a matching Adler-32 —
// damaged, truncated, longer or shorter than declared, with a preset
// dictionary — and the caller then hands the object to the ordinary
// reader, which gives the verdict and the error.

// Table layout. An entry is a uint32:
//
//	bits 0–4   code length in bits (0: no code, the stream is invalid)
//	bit  5     link: the entry points to a subtable
//	bits 8–11  for a link, the subtable's index width
//	bits 16–31 the symbol, or for a link the subtable's start
//
// A table is indexed by the next root bits of the stream; a code longer
// than root bits goes through a subtable indexed by the bits after them.
const (
	entryLink = 1 << 5

	litRoot  = 9 // index width of the literal/length root table
	distRoot = 7 // of the distance root table
	clenRoot = 7 // of the code-length table (its codes have at most 7 bits)

	maxCodeLen = 15
	numLit     = 286 // literal/length symbols a dynamic block may use
	numDist    = 30  // distance symbols

	// Room for the root table and the worst case of subtables: one of
	// 2^(maxCodeLen-root) entries per symbol longer than root bits.
	litTableLen  = 1<<litRoot + 288<<(maxCodeLen-litRoot)
	distTableLen = 1<<distRoot + 32<<(maxCodeLen-distRoot)
)

// Base values and extra bits of the length symbols 257–285 and the
// distance symbols 0–29 (RFC 1951, 3.2.5).
var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}

	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	// The order in which a dynamic block lists its code-length code.
	clenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// The tables of the fixed codes (RFC 1951, 3.2.6), built once.
var fixedLit, fixedDist = func() ([]uint32, []uint32) {
	var lit, dist codeLens
	for s := range 288 {
		switch {
		case s < 144:
			lit.add(s, 8)
		case s < 256:
			lit.add(s, 9)
		case s < 280:
			lit.add(s, 7)
		default:
			lit.add(s, 8)
		}
	}
	for s := range 32 {
		dist.add(s, 5)
	}
	lt := make([]uint32, litTableLen)
	dt := make([]uint32, distTableLen)
	if !buildTable(lt, &lit, litRoot) || !buildTable(dt, &dist, distRoot) {
		panic("gitstore: fixed Huffman codes rejected")
	}
	return lt, dt
}()

// inflater is one goroutine's decoder state: its tables are rebuilt for
// every dynamic block.
type inflater struct {
	lit  [litTableLen]uint32
	dist [distTableLen]uint32
	clen [1 << clenRoot]uint32

	litLens, distLens, clenLens codeLens
}

// codeLens are the code lengths of a code: the symbols that have a code,
// in order, with their lengths, and how many codes each length has.
type codeLens struct {
	n      int
	sym    [288]uint16
	len    [288]uint8
	count  [maxCodeLen + 1]uint16 // count[0] stays 0
	sorted [288]uint16            // buildTable's scratch
}

func (c *codeLens) reset() {
	c.n = 0
	c.count = [maxCodeLen + 1]uint16{}
}

// add gives symbol s, above those added before, a code of l bits (1–15).
func (c *codeLens) add(s int, l uint8) {
	c.sym[c.n], c.len[c.n] = uint16(s), l
	c.n++
	c.count[l]++
}

// buildTable fills t with the decoding table, root bits wide, of the
// canonical code of c. It reports false for a code compress/flate
// rejects: over-subscribed, or incomplete unless it is a single code of
// length 1. A code with no symbol gives a table whose every entry is
// invalid (compress/flate accepts it, and fails if a symbol is read
// through it).
func buildTable(t []uint32, c *codeLens, root uint) bool {
	maxLen := uint(maxCodeLen)
	for maxLen > 0 && c.count[maxLen] == 0 {
		maxLen--
	}
	rootLen := 1 << root
	if maxLen == 0 {
		clear(t[:rootLen])
		return true
	}
	// Check the code is complete: the codes of each length take their
	// share of the 2^len strings of that length.
	left := 1
	for l := uint(1); l <= maxLen; l++ {
		left = left<<1 - int(c.count[l])
		if left < 0 {
			return false // over-subscribed
		}
	}
	if left > 0 {
		if maxLen != 1 || c.count[1] != 1 {
			return false // incomplete
		}
		// One code, 0: the other half of the table stays invalid.
		e := uint32(c.sym[0])<<16 | 1
		for i := range rootLen {
			t[i] = e * uint32(1-i&1)
		}
		return true
	}
	// The symbols sorted by code length, then by value: the order of
	// their canonical codes.
	var offs [maxCodeLen + 2]uint16
	for l := uint(1); l <= maxLen; l++ {
		offs[l+1] = offs[l] + c.count[l]
	}
	sorted := &c.sorted
	for k := range c.n {
		l := c.len[k]
		sorted[offs[l]] = c.sym[k]
		offs[l]++
	}
	// Codes of up to root bits, shortest first: the 2^l first entries
	// hold the codes of up to l bits, each at its bits reversed, and are
	// doubled before the codes of l+1 bits are placed (an entry repeats
	// every 2^len entries).
	code, k := 0, 0
	size := 1
	for l := uint(1); l <= min(maxLen, root); l++ {
		copy(t[size:2*size], t[:size])
		size *= 2
		for range c.count[l] {
			t[bits.Reverse16(uint16(code))>>(16-l)] = uint32(sorted[k])<<16 | uint32(l)
			code++
			k++
		}
		code <<= 1
	}
	for ; size < rootLen; size *= 2 {
		copy(t[size:2*size], t[:size])
	}
	if maxLen <= root {
		return true
	}
	// Longer codes share root-bit prefixes in runs (canonical codes grow
	// with their length); each prefix gets a subtable of 2^(maxLen-root)
	// entries after the root table.
	subBits := maxLen - root
	next, prefix, start := rootLen, -1, 0
	for l := root + 1; l <= maxLen; l++ {
		for range c.count[l] {
			rev := int(bits.Reverse16(uint16(code)) >> (16 - l))
			if p := rev & (rootLen - 1); p != prefix {
				prefix, start = p, next
				next += 1 << subBits
				t[p] = uint32(start)<<16 | uint32(subBits)<<8 | entryLink
			}
			e := uint32(sorted[k])<<16 | uint32(l)
			for i := rev >> root; i < 1<<subBits; i += 1 << (l - root) {
				t[start+i] = e
			}
			code++
			k++
		}
		code <<= 1
	}
	return true
}

// inflate decodes the zlib stream at the start of src (bytes after it are
// ignored) into out, which must be exactly as long as the stream's
// content. It returns the length of the stream, or false when the stream
// is not one it decodes to exactly len(out) bytes with a matching
// Adler-32. It reads no byte outside src and writes none outside out.
func (d *inflater) inflate(out, src []byte) (int, bool) {
	if len(src) < 2 {
		return 0, false
	}
	if cmf, flg := src[0], src[1]; cmf&0x0f != 8 || cmf>>4 > 7 || (uint(cmf)<<8|uint(flg))%31 != 0 || flg&0x20 != 0 {
		return 0, false
	}
	r := bitReader{src: src, pos: 2}
	w := 0
	for {
		r.refill()
		if r.nb < 3 {
			return 0, false
		}
		final := r.b&1 != 0
		kind := r.b >> 1 & 3
		r.drop(3)
		var ok bool
		switch kind {
		case 0:
			w, ok = r.stored(out, w)
		case 1:
			w, ok = r.codes(out, w, fixedLit, fixedDist)
		case 2:
			if !d.readTables(&r) {
				return 0, false
			}
			w, ok = r.codes(out, w, d.lit[:], d.dist[:])
		}
		if !ok {
			return 0, false
		}
		if final {
			break
		}
	}
	if w != len(out) {
		return 0, false
	}
	// The Adler-32 starts at the next byte boundary.
	pos := r.pos - int(r.nb>>3)
	if pos+4 > len(src) || adler32.Checksum(out) != binary.BigEndian.Uint32(src[pos:]) {
		return 0, false
	}
	return pos + 4, true
}

// readTables reads a dynamic block's code lengths and builds its tables,
// with compress/flate's checks.
func (d *inflater) readTables(r *bitReader) bool {
	r.refill()
	if r.nb < 14 {
		return false
	}
	nlit := int(r.b&0x1f) + 257
	ndist := int(r.b>>5&0x1f) + 1
	nclen := int(r.b>>10&0xf) + 4
	r.drop(14)
	if nlit > numLit || ndist > numDist {
		return false
	}
	var clens [19]uint8
	for i := range nclen {
		if r.nb < 3 {
			if r.refill(); r.nb < 3 {
				return false
			}
		}
		clens[clenOrder[i]] = uint8(r.b & 7)
		r.drop(3)
	}
	cl := &d.clenLens
	cl.reset()
	for s, l := range clens {
		if l != 0 {
			cl.add(s, l)
		}
	}
	if !buildTable(d.clen[:], cl, clenRoot) {
		return false
	}
	lit, dist := &d.litLens, &d.distLens
	lit.reset()
	dist.reset()
	n := nlit + ndist
	var prev uint8 // the last length read
	for i := 0; i < n; {
		r.refill()
		e := d.clen[r.b&(1<<clenRoot-1)]
		nb := uint(e & 0x1f)
		if nb == 0 || nb > r.nb {
			return false
		}
		r.drop(nb)
		sym := e >> 16
		rep := 1
		switch sym {
		case 16:
			if i == 0 || r.nb < 2 {
				return false
			}
			rep = 3 + int(r.b&3)
			r.drop(2)
		case 17:
			if r.nb < 3 {
				return false
			}
			rep, prev = 3+int(r.b&7), 0
			r.drop(3)
		case 18:
			if r.nb < 7 {
				return false
			}
			rep, prev = 11+int(r.b&0x7f), 0
			r.drop(7)
		default:
			prev = uint8(sym)
		}
		if i+rep > n {
			return false
		}
		if prev == 0 {
			i += rep
			continue
		}
		for range rep {
			if i < nlit {
				lit.add(i, prev)
			} else {
				dist.add(i-nlit, prev)
			}
			i++
		}
	}
	return buildTable(d.lit[:], lit, litRoot) && buildTable(d.dist[:], dist, distRoot)
}

// bitReader reads a DEFLATE bit stream from src[pos:], least significant
// bit first, through the 64-bit buffer b holding nb valid bits. Bits of b
// above nb may hold the next bytes of src already (a refill loads eight
// bytes at once and counts only the whole ones it fits): loading them
// again ORs the same bits into the same places.
type bitReader struct {
	src []byte
	pos int
	b   uint64
	nb  uint
}

// refill tops the buffer up to at least 56 bits, or to whatever is left
// of src.
func (r *bitReader) refill() {
	if r.pos+8 <= len(r.src) {
		r.b |= binary.LittleEndian.Uint64(r.src[r.pos:]) << r.nb
		k := (63 - r.nb) >> 3
		r.pos += int(k)
		r.nb += k << 3
		return
	}
	for r.nb <= 56 && r.pos < len(r.src) {
		r.b |= uint64(r.src[r.pos]) << r.nb
		r.pos++
		r.nb += 8
	}
}

func (r *bitReader) drop(n uint) {
	r.b >>= n
	r.nb -= n
}

// stored copies a stored block into out at w.
func (r *bitReader) stored(out []byte, w int) (int, bool) {
	// Skip to the byte boundary and give back the whole bytes buffered.
	r.pos -= int(r.nb >> 3)
	r.b, r.nb = 0, 0
	if r.pos+4 > len(r.src) {
		return 0, false
	}
	n := int(binary.LittleEndian.Uint16(r.src[r.pos:]))
	if binary.LittleEndian.Uint16(r.src[r.pos+2:]) != ^uint16(n) {
		return 0, false
	}
	r.pos += 4
	if n > len(r.src)-r.pos || n > len(out)-w {
		return 0, false
	}
	copy(out[w:], r.src[r.pos:r.pos+n])
	r.pos += n
	return w + n, true
}

// codes decodes a Huffman-coded block into out at w with the tables lit
// and dist.
func (r *bitReader) codes(out []byte, w int, lit, dist []uint32) (int, bool) {
	src := r.src
	pos, b, nb := r.pos, r.b, r.nb
	defer func() { r.pos, r.b, r.nb = pos, b, nb }()
	for {
		// Refill (as refill does, kept inline): a length and a distance
		// with their extra bits take at most 48 bits.
		if pos+8 <= len(src) {
			b |= binary.LittleEndian.Uint64(src[pos:]) << nb
			k := (63 - nb) >> 3
			pos += int(k)
			nb += k << 3
		} else {
			for nb <= 56 && pos < len(src) {
				b |= uint64(src[pos]) << nb
				pos++
				nb += 8
			}
		}
		e := lit[b&(1<<litRoot-1)]
		if e&entryLink != 0 {
			e = lit[uint(e>>16)+uint(b>>litRoot)&(1<<(e>>8&0xf)-1)]
		}
		n := uint(e & 0x1f)
		if n == 0 || n > nb {
			return 0, false
		}
		b >>= n
		nb -= n
		sym := e >> 16
		if sym < 256 {
			if w >= len(out) {
				return 0, false
			}
			out[w] = byte(sym)
			w++
			continue
		}
		if sym == 256 {
			return w, true
		}
		sym -= 257
		if sym >= uint32(len(lenBase)) {
			return 0, false
		}
		x := uint(lenExtra[sym])
		if x > nb {
			return 0, false
		}
		length := int(lenBase[sym]) + int(b&(1<<x-1))
		b >>= x
		nb -= x

		e = dist[b&(1<<distRoot-1)]
		if e&entryLink != 0 {
			e = dist[uint(e>>16)+uint(b>>distRoot)&(1<<(e>>8&0xf)-1)]
		}
		n = uint(e & 0x1f)
		if n == 0 || n > nb {
			return 0, false
		}
		b >>= n
		nb -= n
		dsym := e >> 16
		if dsym >= uint32(len(distBase)) {
			return 0, false
		}
		x = uint(distExtra[dsym])
		if x > nb {
			return 0, false
		}
		d := int(distBase[dsym]) + int(b&(1<<x-1))
		b >>= x
		nb -= x
		if d > w || length > len(out)-w {
			return 0, false
		}
		if d >= length {
			copy(out[w:w+length], out[w-d:])
		} else {
			// Overlapping: the match repeats its last d bytes.
			for i := range length {
				out[w+i] = out[w-d+i]
			}
		}
		w += length
	}
}
