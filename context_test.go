package nexus_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
)

func TestDraft_Normalize(t *testing.T) {
	cases := []struct {
		name string
		d    nexus.Draft
		code nexus.Code
		msg  string
	}{
		{"ok", nexus.Draft{Type: nexus.TypeMemory, Content: "x"}, "", ""},
		{"no type", nexus.Draft{Content: "x"}, nexus.EInvalid, "type is required"},
		{"bad type", nexus.Draft{Type: "bogus", Content: "x"}, nexus.EInvalid, `unknown type "bogus"`},
		{"empty", nexus.Draft{Type: nexus.TypeMemory}, nexus.EInvalid, "content is empty"},
		{"too large", nexus.Draft{Type: nexus.TypeMemory, Content: strings.Repeat("x", 11)}, nexus.ETooLarge, "over the limit of 10"},
		{"bad utf8", nexus.Draft{Type: nexus.TypeMemory, Content: "a\xffb"}, nexus.EInvalid, "not valid UTF-8"},
		{"ns traversal", nexus.Draft{Namespace: "../x", Type: nexus.TypeMemory, Content: "x"}, nexus.EInvalid, "invalid namespace"},
		{"ns upper", nexus.Draft{Namespace: "Proj", Type: nexus.TypeMemory, Content: "x"}, nexus.EInvalid, "invalid namespace"},
		{"agent angle", nexus.Draft{AgentID: "a<b>", Type: nexus.TypeMemory, Content: "x"}, nexus.EInvalid, "invalid agent_id"},
		{"meta array", nexus.Draft{Type: nexus.TypeMemory, Content: "x", Metadata: []byte(`[1]`)}, nexus.EInvalid, "must be a JSON object, got an array"},
		{"meta broken", nexus.Draft{Type: nexus.TypeMemory, Content: "x", Metadata: []byte(`{"a":`)}, nexus.EInvalid, "not valid JSON"},
		{"meta trailing", nexus.Draft{Type: nexus.TypeMemory, Content: "x", Metadata: []byte(`{} {}`)}, nexus.EInvalid, "data after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.d.Normalize(10)
			if nexus.ErrorCode(err) != c.code || !strings.Contains(nexus.ErrorMessage(err), c.msg) {
				t.Fatalf("Normalize = %v, want %s containing %q", err, c.code, c.msg)
			}
			if err == nil && (c.d.Namespace != nexus.DefaultNamespace || c.d.AgentID != nexus.DefaultAgent || string(c.d.Metadata) != "{}") {
				t.Fatalf("defaults not filled: %+v", c.d)
			}
		})
	}
}

func TestCanonicalMetadata(t *testing.T) {
	got, err := nexus.CanonicalMetadata([]byte(` {"b": 1.50, "a": {"z": [1, "<x>"], "y": null}} `))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":{"y":null,"z":[1,"<x>"]},"b":1.50}`; string(got) != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestSemanticHash(t *testing.T) {
	a := nexus.SemanticHash(nexus.TypeMemory, "ab", []byte("{}"))
	if a != nexus.SemanticHash(nexus.TypeMemory, "ab", []byte("{}")) || len(a) != 64 {
		t.Fatal("hash not stable")
	}
	// Field boundaries are unambiguous.
	if a == nexus.SemanticHash(nexus.TypeMemory, "a", []byte("b{}")) || a == nexus.SemanticHash(nexus.TypeCode, "ab", []byte("{}")) {
		t.Fatal("different contexts share a hash")
	}
}

func FuzzCanonicalMetadata(f *testing.F) {
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"\u00e9"}]}}`))
	f.Add([]byte("{\"a\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := nexus.CanonicalMetadata(raw)
		if err != nil {
			if code := nexus.ErrorCode(err); code != nexus.EInvalid && code != nexus.ETooLarge {
				t.Fatalf("code %s", code)
			}
			return
		}
		// Canonical form is a valid JSON object, UTF-8, and a fixed point.
		var m map[string]any
		if !utf8.Valid(c) || json.Unmarshal(c, &m) != nil {
			t.Fatalf("canonical form %q is not a JSON object", c)
		}
		again, err := nexus.CanonicalMetadata(c)
		if err != nil || string(again) != string(c) {
			t.Fatalf("not a fixed point: %q -> %q (%v)", c, again, err)
		}
	})
}

// Summary cuts the first line to n runes, the last of them "…", as a
// conversion to runes would, without making one.
func TestContext_Summary(t *testing.T) {
	byRunes := func(content string, n int) string {
		s := content
		if i := strings.IndexAny(s, "\r\n"); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if r := []rune(s); len(r) > n {
			return string(r[:n-1]) + "…"
		}
		return s
	}
	for _, content := range []string{
		"", "short", "  padded line  \nsecond", strings.Repeat("abc ", 40), strings.Repeat("é€𝄞", 30),
		"first\r\nsecond", strings.Repeat("x", 72), strings.Repeat("x", 73), strings.Repeat("ü", 71) + "\xff\xfe" + strings.Repeat("y", 10),
	} {
		for _, n := range []int{1, 2, 10, 72} {
			c := nexus.Context{Content: content}
			if got, want := c.Summary(n), byRunes(content, n); got != want {
				t.Errorf("Summary(%d) of %q = %q, want %q", n, content, got, want)
			}
		}
	}
}
