package nexus

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// ID identifies a context. It is a ULID: 48 bits of Unix milliseconds
// followed by 80 bits that are random for the first id of a millisecond and
// incremented for the next ones, so ids sort by creation time both as bytes
// and as their 26-character Crockford base32 text.
type ID [16]byte

// ZeroID is the invalid, all-zero id.
var ZeroID ID

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// decodeTable maps an ASCII byte to its Crockford value, or 0xFF.
var decodeTable = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = 0xFF
	}
	for i := 0; i < len(crockford); i++ {
		c := crockford[i]
		t[c] = byte(i)
		if c >= 'A' && c <= 'Z' {
			t[c+'a'-'A'] = byte(i)
		}
	}
	return t
}()

// IDLen is the length of an id's text form.
const IDLen = 26

// ParseID parses the 26-character text form of an id. Lowercase letters are
// accepted; anything else that is not canonical Crockford base32 is an
// EInvalid error, so an id can be used safely as a file name.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != IDLen {
		return id, Errorf(EInvalid, "invalid id %q: want %d characters of Crockford base32, got %d", clip(s, 40), IDLen, len(s))
	}
	var v [IDLen]byte
	for i := 0; i < IDLen; i++ {
		d := decodeTable[s[i]]
		if d == 0xFF {
			return id, Errorf(EInvalid, "invalid id %q: character %d is not Crockford base32", clip(s, 40), i+1)
		}
		v[i] = d
	}
	if v[0] > 7 {
		return id, Errorf(EInvalid, "invalid id %q: out of range (first character must be 0-7)", s)
	}
	// 26 characters × 5 bits = 130 bits; the top 2 bits are zero.
	id[0] = v[0]<<5 | v[1]
	id[1] = v[2]<<3 | v[3]>>2
	id[2] = v[3]<<6 | v[4]<<1 | v[5]>>4
	id[3] = v[5]<<4 | v[6]>>1
	id[4] = v[6]<<7 | v[7]<<2 | v[8]>>3
	id[5] = v[8]<<5 | v[9]
	id[6] = v[10]<<3 | v[11]>>2
	id[7] = v[11]<<6 | v[12]<<1 | v[13]>>4
	id[8] = v[13]<<4 | v[14]>>1
	id[9] = v[14]<<7 | v[15]<<2 | v[16]>>3
	id[10] = v[16]<<5 | v[17]
	id[11] = v[18]<<3 | v[19]>>2
	id[12] = v[19]<<6 | v[20]<<1 | v[21]>>4
	id[13] = v[21]<<4 | v[22]>>1
	id[14] = v[22]<<7 | v[23]<<2 | v[24]>>3
	id[15] = v[24]<<5 | v[25]
	if id == ZeroID {
		return id, Errorf(EInvalid, "invalid id %q: the zero id is never assigned", s)
	}
	return id, nil
}

// String returns the canonical 26-character text form.
func (id ID) String() string {
	var b [IDLen]byte
	id.appendTo(b[:0])
	return string(b[:])
}

func (id ID) appendTo(dst []byte) []byte {
	c := crockford
	return append(dst,
		c[(id[0]&224)>>5], c[id[0]&31],
		c[(id[1]&248)>>3], c[((id[1]&7)<<2)|((id[2]&192)>>6)],
		c[(id[2]&62)>>1], c[((id[2]&1)<<4)|((id[3]&240)>>4)],
		c[((id[3]&15)<<1)|((id[4]&128)>>7)], c[(id[4]&124)>>2],
		c[((id[4]&3)<<3)|((id[5]&224)>>5)], c[id[5]&31],
		c[(id[6]&248)>>3], c[((id[6]&7)<<2)|((id[7]&192)>>6)],
		c[(id[7]&62)>>1], c[((id[7]&1)<<4)|((id[8]&240)>>4)],
		c[((id[8]&15)<<1)|((id[9]&128)>>7)], c[(id[9]&124)>>2],
		c[((id[9]&3)<<3)|((id[10]&224)>>5)], c[id[10]&31],
		c[(id[11]&248)>>3], c[((id[11]&7)<<2)|((id[12]&192)>>6)],
		c[(id[12]&62)>>1], c[((id[12]&1)<<4)|((id[13]&240)>>4)],
		c[((id[13]&15)<<1)|((id[14]&128)>>7)], c[(id[14]&124)>>2],
		c[((id[14]&3)<<3)|((id[15]&224)>>5)], c[id[15]&31],
	)
}

// IsZero reports whether id is the zero id.
func (id ID) IsZero() bool { return id == ZeroID }

// Time returns the millisecond timestamp embedded in id.
func (id ID) Time() time.Time {
	return time.UnixMilli(int64(id.ms())).UTC()
}

func (id ID) ms() uint64 {
	return uint64(id[0])<<40 | uint64(id[1])<<32 | uint64(binary.BigEndian.Uint32(id[2:6]))
}

// Compare returns -1, 0 or 1 as id sorts before, equal to or after other.
func (id ID) Compare(other ID) int {
	for i := range id {
		if id[i] != other[i] {
			if id[i] < other[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// AppendText implements encoding.TextAppender: it appends the canonical
// text form to b.
func (id ID) AppendText(b []byte) ([]byte, error) { return id.appendTo(b), nil }

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return id.appendTo(make([]byte, 0, IDLen)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// IDGenerator hands out strictly increasing ids. The zero value is ready to
// use and safe for concurrent use.
type IDGenerator struct {
	mu   sync.Mutex
	last ID
}

// Observe makes every later id sort after id; a store calls it on start with
// the newest id it holds, so ids stay increasing across restarts and clock
// steps backwards.
func (g *IDGenerator) Observe(id ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id.Compare(g.last) > 0 {
		g.last = id
	}
}

// New returns an id for a context created at t, greater than any id
// returned or observed before.
func (g *IDGenerator) New(t time.Time) ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := uint64(t.UnixMilli())
	var id ID
	if ms <= g.last.ms() {
		id = g.last
		incrementRandom(&id)
	} else {
		id[0], id[1] = byte(ms>>40), byte(ms>>32)
		binary.BigEndian.PutUint32(id[2:6], uint32(ms))
		rand.Read(id[6:]) // never fails (crypto/rand panics if the source is broken)
		id[6] &= 0x7F     // leave room to increment within the millisecond
	}
	g.last = id
	return id
}

// incrementRandom adds one to the 80 random bits, carrying into the time
// part if they overflow (after 2^79 ids in one millisecond).
func incrementRandom(id *ID) {
	for i := 15; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return
		}
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
