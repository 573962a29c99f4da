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
