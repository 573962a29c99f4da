package gitstore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Git's delta format (the data of an OFS_DELTA or REF_DELTA pack entry,
// before zlib): the base's size and the target's size as little-endian
// base-128 numbers, then instructions until the end:
//
//	1xxxxxxx  copy: the low 4 bits say which offset bytes follow, the next
//	          3 which size bytes follow (little-endian, absent bytes are 0);
//	          a size of 0 means 0x10000. Copies base[offset:offset+size].
//	0nnnnnnn  insert: the n (1..127) bytes that follow.
//	00000000  reserved: an error.

// Delta encoding limits.
const (
	deltaWindow  = 8       // bytes hashed per position of the base
	deltaMaxCopy = 0x10000 // longest copy one instruction carries (as git writes them)
	deltaMaxLit  = 0x7f    // longest insert one instruction carries
)

// deltaEncoder computes deltas; it keeps its hash table between calls,
// and the table of the last base hashed: a merge encodes up to
// keyframeEvery blobs in a row against the same keyframe, whose windows
// are then hashed once.
type deltaEncoder struct {
	table []uint32 // base position + 1 of each hashed window, 0: none
	of    []byte   // the base the table was built for
}

// deltaMinMatch is the shortest middle part (between the common prefix
// and suffix) that the encoder looks up in the base: in a shorter one (a
// tree whose version differs by one object id) a copy would save at most
// a few bytes, and hashing the base costs more than the rest of the
// encoding.
const deltaMinMatch = 32

// encode appends to dst the delta that turns base into target. It copies
// the common prefix and suffix, and between them every run of at least
// deltaWindow bytes found in the base through a hash table of its windows;
// the rest is inserted. Trees and commits that differ from their previous
// version by a few entries or lines give a delta of a few dozen bytes.
func (d *deltaEncoder) encode(dst, base, target []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(base)))
	dst = binary.AppendUvarint(dst, uint64(len(target)))
	pre := commonPrefix(base, target)
	suf := commonSuffix(base[pre:], target[pre:])
	dst = appendCopy(dst, 0, pre)
	mid := target[pre : len(target)-suf]
	if len(mid) >= deltaMinMatch && len(base) >= deltaWindow {
		dst = d.matchInto(dst, base, mid)
	} else {
		dst = appendInsert(dst, mid)
	}
	return appendCopy(dst, len(base)-suf, suf)
}

// matchInto appends instructions for mid, the part of the target between
// the common prefix and suffix.
func (d *deltaEncoder) matchInto(dst, base, mid []byte) []byte {
	n := 1
	for n < 2*len(base) {
		n <<= 1
	}
	if cap(d.table) < n {
		d.table = make([]uint32, n)
		d.of = nil
	}
	t := d.table[:n]
	mask := uint64(n - 1)
	// The same base: its windows are in the table. A base that changed in
	// place since would only give candidates that fail the comparison
	// below, never a wrong copy.
	if len(d.of) != len(base) || &d.of[0] != &base[0] {
		clear(t)
		for i := 0; i+deltaWindow <= len(base); i++ {
			t[windowHash(base[i:])&mask] = uint32(i + 1)
		}
		d.of = base
	}
	lit := 0
	for j := 0; j+deltaWindow <= len(mid); {
		c := int(t[windowHash(mid[j:])&mask]) - 1
		if c < 0 || string(base[c:c+deltaWindow]) != string(mid[j:j+deltaWindow]) {
			j++
			continue
		}
		start, at := j, c
		for start > lit && at > 0 && base[at-1] == mid[start-1] {
			start--
			at--
		}
		end := j + deltaWindow + commonPrefix(base[c+deltaWindow:], mid[j+deltaWindow:])
		dst = appendInsert(dst, mid[lit:start])
		dst = appendCopy(dst, at, end-start)
		lit, j = end, end
	}
	return appendInsert(dst, mid[lit:])
}

// windowHash hashes the deltaWindow bytes at the start of b.
func windowHash(b []byte) uint64 {
	return binary.LittleEndian.Uint64(b) * 0x9E3779B97F4A7C15 >> 20
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i+8 <= n && binary.LittleEndian.Uint64(a[i:]) == binary.LittleEndian.Uint64(b[i:]) {
		i += 8
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

func commonSuffix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[len(a)-1-i] == b[len(b)-1-i] {
		i++
	}
	return i
}

// appendCopy appends copy instructions for base[off:off+n].
func appendCopy(dst []byte, off, n int) []byte {
	for n > 0 {
		size := min(n, deltaMaxCopy)
		at := len(dst)
		dst = append(dst, 0x80)
		for i := 0; i < 4; i++ {
			if b := byte(off >> (8 * i)); b != 0 {
				dst[at] |= 1 << i
				dst = append(dst, b)
			}
		}
		if size != deltaMaxCopy {
			for i := 0; i < 3; i++ {
				if b := byte(size >> (8 * i)); b != 0 {
					dst[at] |= 0x10 << i
					dst = append(dst, b)
				}
			}
		}
		off += size
		n -= size
	}
	return dst
}

// appendInsert appends insert instructions for lit.
func appendInsert(dst, lit []byte) []byte {
	for len(lit) > 0 {
		n := min(len(lit), deltaMaxLit)
		dst = append(dst, byte(n))
		dst = append(dst, lit[:n]...)
		lit = lit[n:]
	}
	return dst
}

// errDelta wraps every error of applyDelta.
var errDelta = errors.New("bad delta")

// applyDelta returns the object that delta turns base into. Damaged or
// hostile input gives an error, never a panic; the output is never larger
// than the target size the delta declares, which may not exceed
// maxObjectSize, and memory grows only as the output does.
func applyDelta(base, delta []byte) ([]byte, error) {
	return applyDeltaTo(nil, base, delta)
}

// applyDeltaTo is applyDelta writing into dst's memory when it has room
// (the packed read's per-worker buffer); the result may alias dst.
func applyDeltaTo(dst, base, delta []byte) ([]byte, error) {
	bsize, n := binary.Uvarint(delta)
	if n <= 0 {
		return nil, fmt.Errorf("%w: truncated header", errDelta)
	}
	delta = delta[n:]
	if bsize != uint64(len(base)) {
		return nil, fmt.Errorf("%w: made for a base of %d bytes, the base has %d", errDelta, bsize, len(base))
	}
	tsize, n := binary.Uvarint(delta)
	if n <= 0 {
		return nil, fmt.Errorf("%w: truncated header", errDelta)
	}
	delta = delta[n:]
	if tsize > maxObjectSize {
		return nil, fmt.Errorf("%w: target of %d bytes is over the %d byte limit", errDelta, tsize, maxObjectSize)
	}
	out := dst[:0]
	if want := min(tsize, uint64(len(base))+4*uint64(len(delta))); uint64(cap(out)) < want {
		out = make([]byte, 0, want)
	}
	for len(delta) > 0 {
		op := delta[0]
		delta = delta[1:]
		switch {
		case op&0x80 != 0:
			var off, size uint64
			for i := 0; i < 4; i++ {
				if op&(1<<i) != 0 {
					if len(delta) == 0 {
						return nil, fmt.Errorf("%w: truncated copy", errDelta)
					}
					off |= uint64(delta[0]) << (8 * i)
					delta = delta[1:]
				}
			}
			for i := 0; i < 3; i++ {
				if op&(0x10<<i) != 0 {
					if len(delta) == 0 {
						return nil, fmt.Errorf("%w: truncated copy", errDelta)
					}
					size |= uint64(delta[0]) << (8 * i)
					delta = delta[1:]
				}
			}
			if size == 0 {
				size = deltaMaxCopy
			}
			if off+size > uint64(len(base)) {
				return nil, fmt.Errorf("%w: copy of %d bytes at %d outside the base of %d", errDelta, size, off, len(base))
			}
			if uint64(len(out))+size > tsize {
				return nil, fmt.Errorf("%w: longer than the %d bytes it declares", errDelta, tsize)
			}
			out = append(out, base[off:off+size]...)
		case op != 0:
			size := uint64(op)
			if size > uint64(len(delta)) {
				return nil, fmt.Errorf("%w: truncated insert", errDelta)
			}
			if uint64(len(out))+size > tsize {
				return nil, fmt.Errorf("%w: longer than the %d bytes it declares", errDelta, tsize)
			}
			out = append(out, delta[:size]...)
			delta = delta[size:]
		default:
			return nil, fmt.Errorf("%w: reserved instruction 0", errDelta)
		}
	}
	if uint64(len(out)) != tsize {
		return nil, fmt.Errorf("%w: gives %d bytes, declares %d", errDelta, len(out), tsize)
	}
	return out, nil
}
