package nexus

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// Redacted replaces a secret in text that a [Redactor] cleaned.
const Redacted = "[redacted]"

// MinSecretLen is the length below which a [Redactor] ignores a secret:
// replacing every occurrence of a two-letter string would garble every
// message, and such a short secret protects nothing anyway.
const MinSecretLen = 4

// Redactor replaces known secrets (the node's token, the agents' API
// keys, the tokens of the tokens file) in text that leaves the node:
// error messages returned to clients, health and agent status, events and
// the server log. Every such exit of a node goes through the one Redactor
// of the node, which its parts register their secrets with.
//
// A secret is also replaced in its JSON-escaped form, so that JSON
// documents can be cleaned whole. The methods are safe for concurrent use;
// a nil *Redactor redacts nothing.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first, so that a secret inside another goes with it
	repl    *strings.Replacer
}

// NewRedactor returns a Redactor that knows secrets.
func NewRedactor(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add registers more secrets. Surrounding white space is trimmed; empty
// secrets and those shorter than [MinSecretLen] are ignored.
func (r *Redactor) Add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		if len(s) < MinSecretLen {
			continue
		}
		r.secrets = appendNew(r.secrets, s)
		if esc := jsonEscaped(s); esc != s {
			r.secrets = appendNew(r.secrets, esc)
		}
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(r.secrets))
	for _, s := range r.secrets {
		pairs = append(pairs, s, Redacted)
	}
	r.repl = strings.NewReplacer(pairs...)
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// jsonEscaped is s as it appears inside a JSON string.
func jsonEscaped(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b[1 : len(b)-1])
}

// Len returns how many secrets r knows (a secret with a JSON-escaped form
// of its own counts twice).
func (r *Redactor) Len() int {
	if r == nil {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.secrets)
}

// Redact returns text with every known secret replaced by [Redacted].
func (r *Redactor) Redact(text string) string {
	if r == nil {
		return text
	}
	r.mu.RLock()
	repl := r.repl
	r.mu.RUnlock()
	if repl == nil {
		return text
	}
	return repl.Replace(text)
}

// RedactBytes is Redact for bytes; it returns b itself when nothing
// needed replacing.
func (r *Redactor) RedactBytes(b []byte) []byte {
	if r.Len() == 0 {
		return b
	}
	s := r.Redact(string(b))
	if s == string(b) {
		return b
	}
	return []byte(s)
}

// Handler returns a slog.Handler that passes every record to h with the
// secrets replaced in its message and in every attribute.
func (r *Redactor) Handler(h slog.Handler) slog.Handler {
	if r == nil {
		return h
	}
	if rh, ok := h.(*redactHandler); ok && rh.r == r {
		return h
	}
	return &redactHandler{r: r, next: h}
}

// redactHandler is the slog.Handler of [Redactor.Handler].
type redactHandler struct {
	r    *Redactor
	next slog.Handler
}

func (h *redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = h.attr(a)
	}
	return &redactHandler{r: h.r, next: h.next.WithAttrs(clean)}
}

func (h *redactHandler) WithGroup(name string) slog.Handler {
	return &redactHandler{r: h.r, next: h.next.WithGroup(name)}
}

// attr returns a with its value's text redacted. Values other than
// strings, groups and errors (numbers, times, durations) hold no secret
// and pass as they are; anything else is formatted and redacted.
func (h *redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = h.attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		return slog.String(a.Key, h.r.Redact(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}
