package auth_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
)

// wantPrincipal asserts that cred authenticates as name with role.
func wantPrincipal(t *testing.T, s *auth.Set, cred, name string, role nexus.Role) {
	t.Helper()
	p, err := s.Authenticate(cred)
	if err != nil || p.Name != name || p.Role != role {
		t.Fatalf("authenticate: %+v %v, want %s with role %s", p, err, name, role)
	}
}

// wantRefused asserts that cred is refused as unauthorized, saying reason.
func wantRefused(t *testing.T, s *auth.Set, cred, reason string) {
	t.Helper()
	p, err := s.Authenticate(cred)
	if p != nil || nexus.ErrorCode(err) != nexus.EUnauthorized || nexus.ErrorMessage(err) != reason {
		t.Fatalf("authenticate: %+v %v, want unauthorized %q", p, err, reason)
	}
}

func TestSet_sources(t *testing.T) {
	admin, _ := auth.NewToken()
	path := filepath.Join(t.TempDir(), "tokens.json")
	f := &auth.File{}
	reader := create(t, f, "reader", nexus.RoleRead, []string{"docs"}, nil)
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	listed := &auth.File{}
	writer := create(t, listed, "writer", nexus.RoleWrite, nil, []string{"team-*"})
	s, err := auth.New(func() (auth.Sources, error) {
		return auth.Sources{Token: admin, TokensFile: path, Principals: listed.Principals}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Enabled() || len(s.Principals()) != 3 {
		t.Fatalf("enabled %v, %d principals", s.Enabled(), len(s.Principals()))
	}
	wantPrincipal(t, s, admin, auth.TokenName, nexus.RoleAdmin)
	wantPrincipal(t, s, reader, "reader", nexus.RoleRead)
	wantPrincipal(t, s, writer, "writer", nexus.RoleWrite)
	wrong, _ := auth.NewToken()
	wantRefused(t, s, wrong, "unknown token")
	wantRefused(t, s, "short", "unknown token")
	wantRefused(t, s, "", "no credential")
	if p, _ := s.Authenticate(admin); !p.CanWrite("anything") {
		t.Fatalf("NEXUS_TOKEN's principal must write everywhere: %+v", p)
	}
}

func TestSet_none(t *testing.T) {
	s, err := auth.New(func() (auth.Sources, error) {
		return auth.Sources{TokensFile: filepath.Join(t.TempDir(), "tokens.json"), TokensFileOptional: true}, nil
	}, nil)
	if err != nil || s.Enabled() {
		t.Fatalf("no principals: enabled %v, %v", s != nil && s.Enabled(), err)
	}
}

func TestSet_weakToken(t *testing.T) {
	_, err := auth.New(func() (auth.Sources, error) { return auth.Sources{Token: "s3cret"}, nil }, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "NEXUS_TOKEN: invalid: the token is too weak: it has 6 characters") {
		t.Fatalf("weak NEXUS_TOKEN: %v", err)
	}
}

// Reload swaps the table: a revoked token is refused and a new one
// accepted without a new Set; a file that does not load keeps the old
// table.
func TestSet_Reload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	f := &auth.File{}
	old := create(t, f, "old", nexus.RoleWrite, []string{"*"}, []string{"*"})
	f.Save(path)
	s, err := auth.New(func() (auth.Sources, error) { return auth.Sources{TokensFile: path}, nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantPrincipal(t, s, old, "old", nexus.RoleWrite)
	f.Revoke("old")
	fresh := create(t, f, "new", nexus.RoleAdmin, []string{"*"}, []string{"*"})
	f.Save(path)
	wantPrincipal(t, s, old, "old", nexus.RoleWrite) // not yet reloaded
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, s, old, "unknown token")
	wantPrincipal(t, s, fresh, "new", nexus.RoleAdmin)

	os.WriteFile(path, []byte(`{"principals":[{"name":"x"}]}`), 0o600)
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "tokens file "+path+": principal x: role") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	wantPrincipal(t, s, fresh, "new", nexus.RoleAdmin)
}
