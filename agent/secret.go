package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/secrets"
)

// Secret holds an API key. It prints, logs and marshals as "[redacted]"
// (or "" when empty), and its value sits behind a pointer, so that even a
// printer that looks inside structs sees an address rather than the key.
// The zero value is no key.
type Secret struct{ p *string }

// NewSecret returns a Secret holding s with surrounding white space
// removed; an empty s gives the zero Secret.
func NewSecret(s string) Secret {
	s = strings.TrimSpace(s)
	if s == "" {
		return Secret{}
	}
	return Secret{p: &s}
}

// Value returns the key itself. Only code that sends it to the provider
// should call it.
func (s Secret) Value() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether no key is held.
func (s Secret) IsZero() bool { return s.p == nil }

// String returns "[redacted]", or "" for no key.
func (s Secret) String() string {
	if s.p == nil {
		return ""
	}
	return "[redacted]"
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue keeps the key out of structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText keeps the key out of JSON, YAML and other encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// redact replaces every occurrence of the key in text.
func (s Secret) redact(text string) string {
	if s.p == nil || *s.p == "" {
		return text
	}
	return strings.ReplaceAll(text, *s.p, "[redacted]")
}

// KeySource says where an agent's API key is read: from the environment
// variable Env, or, when File is set, from that secrets file.
//
// A secrets file holds the key in one of three forms: the key alone (one
// line without '='); KEY=value lines ("export " before KEY, blank lines,
// '#' comments and quotes around the value are allowed), where the line
// whose KEY is Env is read; or a JSON object of strings, where the member
// named Env is read. The file must be owned by the user running Nexus and
// private to that user (mode 0600 or stricter).
type KeySource struct {
	Env  string // the variable's name, in the environment or in File
	File string // the path of a secrets file; empty: the environment
}

// IsZero reports whether no source is set.
func (k KeySource) IsZero() bool { return k.Env == "" && k.File == "" }

// String describes the source without reading it.
func (k KeySource) String() string {
	switch {
	case k.File != "":
		return "the secrets file " + k.File
	case k.Env != "":
		return "the environment variable " + k.Env
	}
	return "no key"
}

// Load reads the key. A zero KeySource gives the zero Secret. Errors have
// code invalid, say what is missing or wrong and where, and never quote
// the file's content.
func (k KeySource) Load() (Secret, error) {
	switch {
	case k.File != "":
		return k.loadFile()
	case k.Env != "":
		v := NewSecret(os.Getenv(k.Env))
		if v.IsZero() {
			return Secret{}, nexus.Errorf(nexus.EInvalid, "the environment variable %s that should hold the API key is not set", k.Env)
		}
		return v, nil
	}
	return Secret{}, nil
}

func (k KeySource) loadFile() (Secret, error) {
	data, err := secrets.ReadFile("the secrets file", k.File)
	if err != nil {
		return Secret{}, err
	}
	v, err := parseSecrets(data, k.Env)
	if err != nil {
		return Secret{}, nexus.Errorf(nexus.EInvalid, "the secrets file %s %s", k.File, err)
	}
	return v, nil
}

// parseSecrets finds the key named name in a secrets file's content. Its
// errors complete "the secrets file F ...".
func parseSecrets(data []byte, name string) (Secret, error) {
	text := strings.TrimSpace(string(data))
	switch {
	case text == "":
		return Secret{}, fmt.Errorf("is empty")
	case text[0] == '{':
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		if dec.Decode(&obj) != nil || dec.More() {
			return Secret{}, fmt.Errorf("starts with '{' but is not a JSON object")
		}
		return lookupSecret(name, func() (any, bool) { v, ok := obj[name]; return v, ok })
	case !strings.Contains(text, "=") && !strings.ContainsAny(text, "\r\n"):
		return NewSecret(text), nil
	}
	vars := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t\"'") {
			return Secret{}, fmt.Errorf("has a line %d that is not KEY=value", i+1)
		}
		vars[key] = unquote(strings.TrimSpace(value))
	}
	return lookupSecret(name, func() (any, bool) { v, ok := vars[name]; return v, ok })
}

// lookupSecret turns the value found for name into a Secret.
func lookupSecret(name string, find func() (any, bool)) (Secret, error) {
	if name == "" {
		return Secret{}, fmt.Errorf("holds named keys, but no name was given to pick one (set the key's variable name)")
	}
	v, ok := find()
	if !ok {
		return Secret{}, fmt.Errorf("has no %s", name)
	}
	s, isString := v.(string)
	if !isString {
		return Secret{}, fmt.Errorf("has a %s that is not a string", name)
	}
	if sec := NewSecret(s); !sec.IsZero() {
		return sec, nil
	}
	return Secret{}, fmt.Errorf("has an empty %s", name)
}

// unquote removes one pair of matching quotes around v.
func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}
