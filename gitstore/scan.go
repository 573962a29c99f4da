package gitstore

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"time"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
)

// ctxFields are the fields of a context blob the catalog keeps. The
// strings are slices of the blob.
type ctxFields struct {
	id, parent     nexus.ID
	ts             int64
	ns, typ, agent []byte
}

// The fields of a context blob, as encodeContext writes them. A bit per
// field marks it seen.
const (
	fID = 1 << iota
	fNamespace
	fType
	fAgent
	fParent
	fTimestamp
	fSemanticHash
	fMetadata
	fContent
	fPrincipal

	fRequired = fID | fNamespace | fType | fAgent | fTimestamp
)

// ctxKey returns the bit of a key spelled as encodeContext spells it, or 0.
func ctxKey(k []byte) int {
	switch string(k) {
	case "id":
		return fID
	case "namespace":
		return fNamespace
	case "type":
		return fType
	case "agent_id":
		return fAgent
	case "parent_id":
		return fParent
	case "timestamp":
		return fTimestamp
	case "semantic_hash":
		return fSemanticHash
	case "metadata":
		return fMetadata
	case "content":
		return fContent
	case "principal":
		return fPrincipal
	}
	return 0
}

// scanContext reads the catalog's fields from a context blob without a full
// JSON decode. It is exact where it answers: when ok, decodeContext accepts
// b and gives the same fields. It declines (ok false) whatever it does not
// fully understand — a key not spelled as encodeContext spells it, a key
// twice, an escape or invalid UTF-8 in a kept string, a null, trailing data
// — and the caller then decodes b in full, which gives the verdict.
func scanContext(b []byte) (f ctxFields, ok bool) {
	sc := jsonScan{b: b}
	sc.ws()
	if !sc.eat('{') {
		return f, false
	}
	seen := 0
	sc.ws()
	if sc.eat('}') {
		return f, false // no id
	}
	for {
		sc.ws()
		key, plain := sc.str()
		if !plain {
			return f, false
		}
		bit := ctxKey(key)
		if bit == 0 || seen&bit != 0 {
			return f, false
		}
		seen |= bit
		sc.ws()
		if !sc.eat(':') {
			return f, false
		}
		sc.ws()
		switch bit {
		case fID, fParent:
			s, plain := sc.str()
			var id nexus.ID
			if !plain || id.UnmarshalText(s) != nil {
				return f, false
			}
			if bit == fID {
				f.id = id
			} else {
				f.parent = id
			}
		case fTimestamp:
			start := sc.i
			if _, plain := sc.str(); !plain {
				return f, false
			}
			var t time.Time
			if t.UnmarshalJSON(b[start:sc.i]) != nil {
				return f, false
			}
			f.ts = t.UnixNano()
		case fNamespace, fType, fAgent:
			s, plain := sc.str()
			if !plain {
				return f, false
			}
			switch bit {
			case fNamespace:
				f.ns = s
			case fType:
				f.typ = s
			default:
				f.agent = s
			}
		case fMetadata:
			if sc.peek() == 'n' || !sc.value(0) {
				return f, false
			}
		default: // semantic_hash, content, principal: any string
			if sc.peek() != '"' || !sc.value(0) {
				return f, false
			}
		}
		sc.ws()
		if sc.eat('}') {
			break
		}
		if !sc.eat(',') {
			return f, false
		}
	}
	sc.ws()
	if sc.i != len(b) || seen&fRequired != fRequired {
		return f, false
	}
	return f, true
}

// jsonScan walks JSON text strictly (RFC 8259).
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScan) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str reads a string and returns its contents when it is plain: no escape,
// no control character, valid UTF-8 — then its bytes are its value. A
// string that is not plain is not read.
func (s *jsonScan) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	j := bytes.IndexByte(s.b[start:], '"')
	if j < 0 {
		return nil, false
	}
	v := s.b[start : start+j]
	for _, c := range v {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(v) {
		return nil, false
	}
	s.i = start + j + 1
	return v, true
}

// maxScanDepth bounds the nesting value accepts; deeper values are left to
// the full decoder.
const maxScanDepth = 64

// value skips one valid JSON value, reporting whether it was one.
func (s *jsonScan) value(depth int) bool {
	if depth > maxScanDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '"':
		return s.anyStr()
	case c == '{':
		s.i++
		s.ws()
		if s.eat('}') {
			return true
		}
		for {
			s.ws()
			if s.peek() != '"' || !s.anyStr() {
				return false
			}
			s.ws()
			if !s.eat(':') {
				return false
			}
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.eat('}') {
				return true
			}
			if !s.eat(',') {
				return false
			}
		}
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return true
		}
		for {
			s.ws()
			if !s.value(depth + 1) {
				return false
			}
			s.ws()
			if s.eat(']') {
				return true
			}
			if !s.eat(',') {
				return false
			}
		}
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

func (s *jsonScan) lit(w string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(w)) {
		s.i += len(w)
		return true
	}
	return false
}

func (s *jsonScan) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScan) number() bool {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.peek() >= '1' && s.peek() <= '9':
		s.digits()
	default:
		return false
	}
	if s.eat('.') && s.digits() == 0 {
		return false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

// strSpecial marks the bytes a string scan stops at: the quote, the
// backslash and the control characters.
var strSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// special8 marks with its high bit each byte of x (eight bytes, the
// first lowest) that is a quote, a backslash or below 0x20, as strSpecial
// does. Above the first marked byte, a byte may be marked wrongly (a
// borrow carries up); the lowest mark is exact.
func special8(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	return (x-ones*0x20)&^x&highs | zero(x^ones*'"') | zero(x^ones*'\\')
}

// anyStr skips a valid string, escapes included. Invalid UTF-8 is accepted,
// as encoding/json accepts it (replacing it).
func (s *jsonScan) anyStr() bool {
	if !s.eat('"') {
		return false
	}
	b := s.b
	for i := s.i; i < len(b); {
		if i+8 <= len(b) {
			// Eight bytes at a time to the first special one.
			m := special8(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		c := b[i]
		if !strSpecial[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			s.i = i + 1
			return true
		case c < 0x20:
			return false
		}
		// A backslash.
		i++
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i++
		case 'u':
			if i+5 > len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
				return false
			}
			i += 5
		default:
			return false
		}
	}
	return false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
