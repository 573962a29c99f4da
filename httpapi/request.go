package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
)

// readJSONBody checks the content type and returns the body, bounded by the
// server's limit.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	if r.ContentLength > s.maxBody {
		return nil, tooLarge(s.maxBody)
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, s.maxBody), r.ContentLength)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge(s.maxBody)
	case err != nil:
		return nil, nexus.WrapError(nexus.EInvalid, err, "reading the request body failed")
	}
	return body, nil
}

// readBody reads r to its end into a buffer sized for the declared
// length n (unknown: -1), which it does not trust beyond that.
func readBody(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 || n > 1<<20 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, n+1) // one more byte: reading to EOF needs no growth
	for {
		m, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = slices.Grow(b, 512)
		}
	}
}

func tooLarge(limit int64) error {
	return nexus.Errorf(nexus.ETooLarge, "request body is over the limit of %d bytes", limit)
}

// checkContentType accepts application/json with, at most, a UTF-8 charset.
func checkContentType(ct string) error {
	if ct == "application/json" {
		return nil // what every client of the API sends
	}
	if ct == "" {
		return nexus.Errorf(nexus.EUnsupportedMedia, "Content-Type is missing: want application/json")
	}
	media, params, err := mime.ParseMediaType(ct)
	if err != nil || media != "application/json" {
		return nexus.Errorf(nexus.EUnsupportedMedia, "Content-Type %q is not supported: want application/json", clip(ct, 80))
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return nexus.Errorf(nexus.EUnsupportedMedia, "Content-Type parameter %s=%q is not supported: only charset=utf-8", clip(k, 40), clip(v, 40))
		}
	}
	return nil
}

// decodeDraft decodes a request body into a draft. Every failure is an
// EInvalid error whose message names the field or the byte offset.
func decodeDraft(body []byte) (nexus.Draft, error) {
	// The common case, the drafts clients send, in one pass (scanDraft).
	if d, ok := scanDraft(body); ok {
		return d, nil
	}
	// A well-formed draft scanDraft declines (escaped keys, surrogate
	// pairs, numbers in unusual forms) in two passes over the body: one
	// for its keys, one for json.Unmarshal. A draft has no field of
	// interface type, where UseNumber would matter, and its keys were
	// checked, so the result is the strict decoder's. Anything else takes
	// the strict decoder, which says what is wrong.
	var d nexus.Draft
	if utf8.Valid(body) && knownKeys(body, draftFields) && json.Unmarshal(body, &d) == nil {
		return d, nil
	}
	return decodeDraftStrict(body)
}

// scanDraft decodes the drafts clients send, in one pass over the body
// without reflection: one object with nothing but white space around it,
// each key one of a draft's, in its exact case, at most once and without
// escapes; the string fields strings whose escapes are not surrogates,
// parent_id a valid id, metadata any valid JSON value (kept as its bytes,
// as json.RawMessage keeps it). Anything else returns false, for the
// decoders that say what is wrong; what it accepts, they decode the same
// (FuzzDecodeDraft_FastIsStrict).
func scanDraft(body []byte) (nexus.Draft, bool) {
	var d nexus.Draft
	if !utf8.Valid(body) {
		return d, false
	}
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return d, false
	}
	i = skipSpace(body, i+1)
	var seen uint8
	if i < len(body) && body[i] == '}' {
		return d, skipSpace(body, i+1) == len(body)
	}
	for {
		if i == len(body) || body[i] != '"' {
			return d, false
		}
		end := bytes.IndexByte(body[i+1:], '"')
		if end < 0 {
			return d, false
		}
		key := body[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return d, false
		}
		i = skipSpace(body, i+2+end)
		if i == len(body) || body[i] != ':' {
			return d, false
		}
		i = skipSpace(body, i+1)
		var bit uint8
		var v string
		switch string(key) { // compared, not converted: no allocation
		case "namespace":
			bit = 1
			d.Namespace, i = scanString(body, i)
		case "type":
			bit = 2
			v, i = scanString(body, i)
			d.Type = nexus.Type(v)
		case "content":
			bit = 4
			d.Content, i = scanString(body, i)
		case "agent_id":
			bit = 8
			d.AgentID, i = scanString(body, i)
		case "parent_id":
			bit = 16
			if v, i = scanString(body, i); i >= 0 {
				id, err := nexus.ParseID(v)
				if err != nil {
					return d, false
				}
				d.ParentID = id
			}
		case "metadata":
			bit = 32
			start := i
			if i = valueEnd(body, i); i >= 0 {
				raw := body[start:i]
				if !json.Valid(raw) {
					return d, false
				}
				d.Metadata = append(json.RawMessage(nil), raw...)
			}
		default:
			return d, false
		}
		if i < 0 || seen&bit != 0 {
			return d, false
		}
		seen |= bit
		i = skipSpace(body, i)
		if i == len(body) {
			return d, false
		}
		if body[i] == '}' {
			return d, skipSpace(body, i+1) == len(body)
		}
		if body[i] != ',' {
			return d, false
		}
		i = skipSpace(body, i+1)
	}
}

// scanString decodes the JSON string at b[i:] and returns it with the
// offset after it, or -1 if there is none there, it holds a raw control
// character, or an escape it leaves to encoding/json (a \u escape of a
// surrogate, which may be half of a pair).
func scanString(b []byte, i int) (string, int) {
	if i >= len(b) || b[i] != '"' {
		return "", -1
	}
	i++
	start := i
	for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
		i++
	}
	if i == len(b) || b[i] < 0x20 {
		return "", -1
	}
	if b[i] == '"' {
		return string(b[start:i]), i + 1
	}
	out := make([]byte, 0, len(b)-start)
	out = append(out, b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return string(out), i + 1
		case c < 0x20:
			return "", -1
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 == len(b) {
			return "", -1
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+6 > len(b) {
				return "", -1
			}
			var r rune
			for _, h := range b[i+2 : i+6] {
				switch {
				case '0' <= h && h <= '9':
					h -= '0'
				case 'a' <= h && h <= 'f':
					h -= 'a' - 10
				case 'A' <= h && h <= 'F':
					h -= 'A' - 10
				default:
					return "", -1
				}
				r = r<<4 | rune(h)
			}
			if utf16.IsSurrogate(r) {
				return "", -1
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			return "", -1
		}
		i += 2
	}
	return "", -1
}

// valueEnd returns the offset after the JSON value that starts at b[i]
// (no white space before it), or -1 if b ends inside it. It follows
// strings and nesting only; the value is checked after.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return -1
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = valueEnd(b, i); i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ { // a number or a literal: up to the next delimiter
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
	}
	return i
}

// decodeDraftStrict is decodeDraft through [decodeObject] only.
func decodeDraftStrict(body []byte) (nexus.Draft, error) {
	var d nexus.Draft
	if err := decodeObject(body, &d, draftFields); err != nil {
		var e *nexus.Error
		if errors.As(err, &e) && strings.HasPrefix(e.Message, idErrorPrefix) {
			// parent_id is the one id of a draft
			return nexus.Draft{}, nexus.Errorf(nexus.EInvalid, "field \"parent_id\": %s", strings.TrimPrefix(e.Message, idErrorPrefix))
		}
		return nexus.Draft{}, err
	}
	return d, nil
}

// decodeObject decodes a JSON object into v, a pointer to a struct whose
// JSON field names are fields, strictly: valid UTF-8, one object and
// nothing after it, only known field names in their exact case, each once.
func decodeObject(body []byte, v any, fields []string) error {
	// encoding/json would replace invalid UTF-8 with U+FFFD without a word.
	if !utf8.Valid(body) {
		return nexus.Errorf(nexus.EInvalid, "request body is not valid UTF-8 (first bad byte at offset %d)", invalidUTF8At(body))
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nexus.Errorf(nexus.EInvalid, "request body is empty: want a JSON object")
	}
	if trimmed[0] != '{' {
		return nexus.Errorf(nexus.EInvalid, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber() // numbers in free-form fields keep their exact text
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	off := int(dec.InputOffset())
	if rest := bytes.TrimLeft(body[off:], " \t\r\n"); len(rest) > 0 {
		return nexus.Errorf(nexus.EInvalid, "unexpected data after the JSON object at offset %d", len(body)-len(rest))
	}
	return checkKeys(body, fields)
}

// jsonError describes a decoding error of a draft for the client.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var nerr *nexus.Error
	switch {
	case errors.As(err, &syn):
		return nexus.Errorf(nexus.EInvalid, "malformed JSON at offset %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field != "":
		return nexus.Errorf(nexus.EInvalid, "field %q: want %s, got JSON %s (offset %d)", typ.Field, jsonKind(typ.Type), typ.Value, typ.Offset)
	case errors.As(err, &nerr):
		// Only ids validate while decoding.
		return nexus.Errorf(nexus.EInvalid, "%s%s", idErrorPrefix, nerr.Message)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nexus.Errorf(nexus.EInvalid, "request body ends inside the JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return nexus.Errorf(nexus.EInvalid, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return nexus.Errorf(nexus.EInvalid, "invalid request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// idErrorPrefix starts the message of an id that failed to decode; the
// decoder does not say which field held it.
const idErrorPrefix = "invalid id: "

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "another type"
}

// jsonFields lists the JSON names of T's fields.
func jsonFields[T any]() []string {
	t := reflect.TypeFor[T]()
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); n != "-" {
			names = append(names, n) // "-": not part of the wire form
		}
	}
	return names
}

// draftFields are the JSON names of a draft's fields.
var draftFields = jsonFields[nexus.Draft]()

// knownKeys reports whether body, taken to be valid JSON, is one object,
// with nothing but white space around it, whose keys are each one of
// fields, in their exact case, at most once. It returns false on
// anything else (escapes in keys included), so that the caller takes the
// strict path. It looks at the bytes once and allocates nothing; fields
// are at most 64.
func knownKeys(body []byte, fields []string) bool {
	i := skipSpace(body, 0)
	if i == len(body) || body[i] != '{' || len(fields) > 64 {
		return false
	}
	i++
	var seen uint64
	for {
		i = skipSpace(body, i)
		if i == len(body) {
			return false
		}
		if body[i] == '}' && seen == 0 {
			i++
			break
		}
		if body[i] != '"' {
			return false
		}
		end := bytes.IndexByte(body[i+1:], '"')
		if end < 0 {
			return false
		}
		key := body[i+1 : i+1+end]
		if bytes.IndexByte(key, '\\') >= 0 {
			return false
		}
		k := -1
		for j, f := range fields {
			if string(key) == f { // compared, not converted: no allocation
				k = j
				break
			}
		}
		if k < 0 || seen&(1<<k) != 0 {
			return false
		}
		seen |= 1 << k
		i = skipSpace(body, i+2+end)
		if i == len(body) || body[i] != ':' {
			return false
		}
		if i = skipValue(body, i+1); i < 0 {
			return false
		}
		i = skipSpace(body, i)
		if i == len(body) {
			return false
		}
		if body[i] == '}' {
			i++
			break
		}
		if body[i] != ',' {
			return false
		}
		i++
	}
	return skipSpace(body, i) == len(body)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the offset after the JSON value at b[i:] (white space
// first allowed), or -1 if b ends inside it. Only strings and nesting are
// followed: the value is checked by the decoder that runs next.
func skipValue(b []byte, i int) int {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return -1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing object: the value was empty
			}
			depth--
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
		if depth == 0 && i < len(b) && (b[i] == ',' || b[i] == '}') {
			return i
		}
	}
	return -1
}

// checkKeys rejects what encoding/json lets through in a syntactically
// valid body: a field name in other letter case, or a field given twice.
func checkKeys(body []byte, fields []string) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // the opening brace
		return jsonError(err)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return jsonError(err)
		}
		key, _ := tok.(string)
		switch {
		case !slices.Contains(fields, key):
			return nexus.Errorf(nexus.EInvalid, "unknown field %q (field names are lower case: %s)", clip(key, 40), strings.Join(fields, ", "))
		case seen[key]:
			return nexus.Errorf(nexus.EInvalid, "field %q is given twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return jsonError(err)
		}
	}
	return nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// query holds the parameters of a request, each given at most once.
type query map[string]string

// parseQuery parses r's query string, accepting only the allowed names.
func parseQuery(r *http.Request, allowed ...string) (query, error) {
	if r.URL.RawQuery == "" {
		return nil, nil // no parameters: nothing to parse (a nil query reads as empty)
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nexus.Errorf(nexus.EInvalid, "malformed query string: %v", err)
	}
	var unknown []string
	q := make(query, len(vals))
	for name, vs := range vals {
		switch {
		case name == "consistency" && clusterClass[r.Pattern] == classRead:
			// A read's consistency: the router serves it in a cluster; a
			// single node is its own leader, at every level.
			if len(vs) > 1 {
				return nil, nexus.Errorf(nexus.EInvalid, "query parameter %q is given %d times", name, len(vs))
			}
			if _, err := cluster.ParseConsistency(vs[0], DefaultConsistency); err != nil {
				return nil, err
			}
		case !slices.Contains(allowed, name):
			unknown = append(unknown, strconv.Quote(clip(name, 40)))
		case len(vs) > 1:
			return nil, nexus.Errorf(nexus.EInvalid, "query parameter %q is given %d times", name, len(vs))
		default:
			q[name] = vs[0]
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		noun := "parameter"
		if len(unknown) > 1 {
			noun = "parameters"
		}
		if clusterClass[r.Pattern] == classRead {
			allowed = append(slices.Clip(allowed), "consistency")
		}
		return nil, nexus.Errorf(nexus.EInvalid, "unknown query %s %s; %s", noun, strings.Join(unknown, ", "), allowedList(allowed))
	}
	return q, nil
}

func allowedList(allowed []string) string {
	if len(allowed) == 0 {
		return "this endpoint takes none"
	}
	return "allowed: " + strings.Join(allowed, ", ")
}

// int returns the named parameter as an integer, 0 if absent.
func (q query) int(name string) (int, error) {
	v, ok := q[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, nexus.Errorf(nexus.EInvalid, "%s %q is not an integer", name, clip(v, 40))
	}
	return n, nil
}

// id returns the named parameter as an id, the zero id if absent.
func (q query) id(name string) (nexus.ID, error) {
	v, ok := q[name]
	if !ok {
		return nexus.ZeroID, nil
	}
	id, err := nexus.ParseID(v)
	if err != nil {
		return id, nexus.Errorf(nexus.EInvalid, "%s: %s", name, nexus.ErrorMessage(err))
	}
	return id, nil
}

// time returns the named parameter as an RFC 3339 time, zero if absent.
func (q query) time(name string) (time.Time, error) {
	v, ok := q[name]
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, nexus.Errorf(nexus.EInvalid, "%s %q is not an RFC 3339 time such as 2006-01-02T15:04:05Z", name, clip(v, 60))
	}
	return t, nil
}

// pathID parses the {id} path segment.
func pathID(r *http.Request) (nexus.ID, error) {
	return nexus.ParseID(r.PathValue("id"))
}
