package nexus

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Type is the kind of a context.
type Type string

// The context types. The set is closed: anything else is invalid.
const (
	TypeInstruction  Type = "instruction"
	TypeConversation Type = "conversation"
	TypeCode         Type = "code"
	TypeDocument     Type = "document"
	TypeAnalysis     Type = "analysis"
	TypeDecision     Type = "decision"
	TypeMemory       Type = "memory"
	TypeObservation  Type = "observation"
	TypeResult       Type = "result"
	TypeSummary      Type = "summary"
	TypeAgentState   Type = "agent_state"
	TypeError        Type = "error"
	// TypeIncident is the node's record of a failure it detected and of
	// what it did about it (namespace incidents).
	TypeIncident Type = "incident"
)

// Types lists every valid type in a stable order.
var Types = []Type{
	TypeInstruction, TypeConversation, TypeCode, TypeDocument, TypeAnalysis, TypeDecision,
	TypeMemory, TypeObservation, TypeResult, TypeSummary, TypeAgentState, TypeError, TypeIncident,
}

// Valid reports whether t is one of [Types].
func (t Type) Valid() bool {
	for _, v := range Types {
		if t == v {
			return true
		}
	}
	return false
}

// Defaults and limits of the data model.
const (
	DefaultNamespace  = "default"
	DefaultAgent      = "anonymous"
	DefaultMaxContent = 1 << 20 // bytes of content
	MaxMetadata       = 64 << 10
	maxNameLen        = 64
	maxAgentLen       = 128
)

// Context is one immutable record of the memory.
type Context struct {
	ID           ID              `json:"id"`
	Namespace    string          `json:"namespace"`
	Type         Type            `json:"type"`
	AgentID      string          `json:"agent_id"`
	ParentID     ID              `json:"parent_id,omitzero"`
	Timestamp    time.Time       `json:"timestamp"`
	SemanticHash string          `json:"semantic_hash"`
	Metadata     json.RawMessage `json:"metadata"`
	Content      string          `json:"content"`
	// Principal is the authenticated caller that wrote the context; empty
	// when the node wrote it itself (its agents, its task queue) or it was
	// written in process.
	Principal string `json:"principal,omitempty"`
}

// Draft is what a writer supplies; the store assigns the rest.
type Draft struct {
	Namespace string          `json:"namespace,omitempty"`
	Type      Type            `json:"type"`
	Content   string          `json:"content"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	AgentID   string          `json:"agent_id,omitempty"`
	ParentID  ID              `json:"parent_id,omitzero"`
	// Principal is set by the node from the authenticated caller, never
	// by a client: it is not part of the wire form.
	Principal string `json:"-"`
}

// Normalize validates d against the data model, fills defaults and puts the
// metadata in canonical form. maxContent bounds the content in bytes (0 means
// [DefaultMaxContent]). Errors are EInvalid or ETooLarge and name the field.
func (d *Draft) Normalize(maxContent int) error {
	if maxContent <= 0 {
		maxContent = DefaultMaxContent
	}
	if d.Namespace == "" {
		d.Namespace = DefaultNamespace
	}
	if err := ValidateNamespace(d.Namespace); err != nil {
		return err
	}
	if d.AgentID == "" {
		d.AgentID = DefaultAgent
	}
	if err := ValidateAgentID(d.AgentID); err != nil {
		return err
	}
	if d.Principal != "" && !validName(d.Principal, maxAgentLen, true) {
		return Errorf(EInvalid, "invalid principal %q: want 1-%d of A-Z a-z 0-9 . _ - : @ / +, starting with a letter or digit", clip(d.Principal, 80), maxAgentLen)
	}
	if d.Type == "" {
		return Errorf(EInvalid, "type is required: one of %s", typeList())
	}
	if !d.Type.Valid() {
		return Errorf(EInvalid, "unknown type %q: want one of %s", clip(string(d.Type), 40), typeList())
	}
	if d.Content == "" {
		return Errorf(EInvalid, "content is empty")
	}
	if len(d.Content) > maxContent {
		return Errorf(ETooLarge, "content is %d bytes, over the limit of %d", len(d.Content), maxContent)
	}
	if !utf8.ValidString(d.Content) {
		return Errorf(EInvalid, "content is not valid UTF-8")
	}
	meta, err := CanonicalMetadata(d.Metadata)
	if err != nil {
		return err
	}
	d.Metadata = meta
	return nil
}

func typeList() string {
	s := make([]string, len(Types))
	for i, t := range Types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// ValidateNamespace checks a namespace name: 1 to 64 characters of lowercase
// letters, digits, '.', '_' and '-', starting with a letter or digit. The
// namespace is a directory of the git tree, so the rule keeps it portable.
func ValidateNamespace(ns string) error {
	if !validName(ns, maxNameLen, false) {
		return Errorf(EInvalid, "invalid namespace %q: want 1-%d of a-z 0-9 . _ -, starting with a letter or digit", clip(ns, 80), maxNameLen)
	}
	return nil
}

// ValidateAgentID checks an agent id: 1 to 128 characters of letters,
// digits and . _ - : @ / +, starting with a letter or digit.
func ValidateAgentID(a string) error {
	if !validName(a, maxAgentLen, true) {
		return Errorf(EInvalid, "invalid agent_id %q: want 1-%d of A-Z a-z 0-9 . _ - : @ / +, starting with a letter or digit", clip(a, 80), maxAgentLen)
	}
	return nil
}

func validName(s string, max int, agent bool) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case i == 0:
			if !(agent && c >= 'A' && c <= 'Z') {
				return false
			}
		case c == '.' || c == '_' || c == '-':
		case agent && (c >= 'A' && c <= 'Z' || c == ':' || c == '@' || c == '/' || c == '+'):
		default:
			return false
		}
	}
	return true
}

// CanonicalMetadata validates raw as a JSON object and returns its canonical
// form: compact, keys sorted, numbers as written, no HTML escaping. Empty
// input yields "{}".
func CanonicalMetadata(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return json.RawMessage("{}"), nil
	}
	if len(raw) > MaxMetadata {
		return nil, Errorf(ETooLarge, "metadata is %d bytes, over the limit of %d", len(raw), MaxMetadata)
	}
	if !utf8.Valid(raw) {
		return nil, Errorf(EInvalid, "metadata is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, Errorf(EInvalid, "metadata is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, Errorf(EInvalid, "metadata has data after the JSON object")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, Errorf(EInvalid, "metadata must be a JSON object, got %s", jsonKind(v))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, Errorf(EInvalid, "metadata cannot be encoded: %v", err)
	}
	return json.RawMessage(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "a value"
}

// SemanticHash returns the hex sha256 of the canonical form of (type,
// content, metadata). Metadata must already be canonical (see
// [CanonicalMetadata]). Two contexts with the same hash say the same thing.
func SemanticHash(t Type, content string, canonicalMeta []byte) string {
	h := sha256.New()
	var n [20]byte
	h.Write([]byte("nexus-context-v1\x00"))
	h.Write([]byte(t))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(n[:0], int64(len(content)), 10))
	h.Write([]byte{0})
	h.Write([]byte(content))
	h.Write([]byte{0})
	h.Write(canonicalMeta)
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], h.Sum(sum[:0]))
	return string(out[:])
}

// Verify checks a stored context's structure and that its semantic hash
// matches its type, content and metadata.
func (c *Context) Verify() error {
	if c.ID.IsZero() {
		return Errorf(EInvalid, "context has no id")
	}
	d := Draft{Namespace: c.Namespace, Type: c.Type, Content: c.Content, Metadata: c.Metadata, AgentID: c.AgentID, ParentID: c.ParentID, Principal: c.Principal}
	if err := d.Normalize(len(c.Content) + 1); err != nil {
		return WrapError(EInvalid, err, "context %s is malformed", c.ID)
	}
	if !bytes.Equal(d.Metadata, c.Metadata) {
		return Errorf(EInvalid, "context %s: metadata is not canonical", c.ID)
	}
	if c.ParentID == c.ID {
		return Errorf(EInvalid, "context %s is its own parent", c.ID)
	}
	if got := SemanticHash(c.Type, c.Content, c.Metadata); got != c.SemanticHash {
		return Errorf(EInvalid, "context %s: semantic hash mismatch (stored %s, computed %s)", c.ID, clip(c.SemanticHash, 64), got)
	}
	return nil
}

// Summary returns the first line of the content, cut to n runes, for logs
// and commit messages.
func (c *Context) Summary(n int) string {
	s := c.Content
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if !utf8.ValidString(s) {
		r := []rune(s) // each invalid byte becomes U+FFFD
		return string(r[:n-1]) + "…"
	}
	i := 0 // the byte offset of rune n-1, without a copy of the runes
	for k := 0; k < n-1; k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i] + "…"
}
