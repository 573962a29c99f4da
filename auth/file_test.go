package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// create adds a principal to f and returns its token.
func create(t *testing.T, f *auth.File, name string, role nexus.Role, read, write []string) string {
	t.Helper()
	tok, err := f.Create(nexus.Principal{Name: name, Role: role, Read: read, Write: write}, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestFile_saveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "tokens.json")
	f := &auth.File{}
	tok := create(t, f, "ci", nexus.RoleRead, []string{"team-*"}, nil)
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), tok) || !strings.Contains(string(data), auth.HashToken(tok)) {
		t.Fatalf("the file must hold the hash and not the token:\n%s", data)
	}
	g, err := auth.LoadFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	e := g.Principals[0]
	if len(g.Principals) != 1 || e.Name != "ci" || e.Role != nexus.RoleRead || e.Read[0] != "team-*" || !e.Created.Equal(now) {
		t.Fatalf("loaded %+v", g.Principals)
	}
	if _, err := f.Create(nexus.Principal{Name: "ci", Role: nexus.RoleRead, Read: []string{"*"}}, now); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("creating ci twice: %v, want conflict", err)
	}
	if err := g.Revoke("ci"); err != nil || len(g.Principals) != 0 {
		t.Fatalf("revoke: %v, %d left", err, len(g.Principals))
	}
	if err := g.Revoke("ci"); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("revoking an unknown principal: %v, want not_found", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.json")
	if f, err := auth.LoadFile(missing, true); err != nil || len(f.Principals) != 0 {
		t.Fatalf("missing optional file: %v %v", f, err)
	}
	if _, err := auth.LoadFile(missing, false); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing named file: %v", err)
	}
	open := filepath.Join(dir, "open.json")
	os.WriteFile(open, []byte(`{"principals":[]}`), 0o600)
	os.Chmod(open, 0o666)
	if _, err := auth.LoadFile(open, false); err == nil || !strings.Contains(err.Error(), "writable by others (mode 0666)") {
		t.Fatalf("world-writable file: %v", err)
	}
}

func TestParseFile_errors(t *testing.T) {
	h1, h2 := auth.HashToken("one"), auth.HashToken("two")
	entry := func(name, role, read, write, hash string) string {
		return `{"name":"` + name + `","role":"` + role + `","read":` + read + `,"write":` + write + `,"token_sha256":"` + hash + `"}`
	}
	file := func(es ...string) string { return `{"principals":[` + strings.Join(es, ",") + `]}` }
	for _, tc := range []struct{ name, data, want string }{
		{"unknown field", `{"principals":[],"tokens":[]}`, `unknown field "tokens"`},
		{"two values", `{"principals":[]} {}`, "more than one JSON value"},
		{"not JSON", `principals: []`, "not a tokens file"},
		{"bad hash", file(entry("a", "read", `["*"]`, `[]`, "abc")), "principal a: token_sha256 must be the 64 hex digits"},
		{"hash of nothing", file(entry("a", "read", `["*"]`, `[]`, auth.HashToken(""))), "token_sha256 must be"},
		{"bad role", file(entry("a", "root", `["*"]`, `[]`, h1)), `principal a: role "root": must be read, write or admin`},
		{"read cannot write", file(entry("a", "read", `["*"]`, `["x"]`, h1)), "role read cannot write"},
		{"no namespaces", file(entry("a", "write", `[]`, `[]`, h1)), "principal a: no namespaces"},
		{"bad glob", file(entry("a", "read", `["team-["]`, `[]`, h1)), `namespace glob "team-[": syntax error in pattern`},
		{"bad name", file(entry("a b", "read", `["*"]`, `[]`, h1)), `name "a b": 1-64 of`},
		{"reserved name", file(entry("anonymous", "read", `["*"]`, `[]`, h1)), `name "anonymous" is reserved`},
		{"duplicate name", file(entry("a", "read", `["*"]`, `[]`, h1), entry("a", "read", `["*"]`, `[]`, h2)), "principal a is listed twice"},
		{"duplicate token", file(entry("a", "read", `["*"]`, `[]`, h1), entry("b", "read", `["*"]`, `[]`, h1)), "principal b has the token of another principal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.ParseFile([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
