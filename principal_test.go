package nexus_test

import (
	"context"
	"testing"

	"github.com/nexus-mem/nexus"
)

func TestPrincipal_Access(t *testing.T) {
	p := &nexus.Principal{Name: "ci", Role: nexus.RoleWrite, Read: []string{"team-*"}, Write: []string{"team-a"}}
	for _, c := range []struct {
		ns          string
		read, write bool
	}{
		{"team-a", true, true}, {"team-b", true, false}, {"default", false, false}, {"team-a/x", false, false},
	} {
		if got := p.CanRead(c.ns); got != c.read {
			t.Errorf("CanRead(%q) = %v, want %v", c.ns, got, c.read)
		}
		if got := p.CanWrite(c.ns); got != c.write {
			t.Errorf("CanWrite(%q) = %v, want %v", c.ns, got, c.write)
		}
	}
	reader := &nexus.Principal{Name: "r", Role: nexus.RoleRead, Read: []string{"*"}, Write: []string{"*"}}
	if reader.CanWrite("default") || !reader.CanRead("default") || reader.Can(nexus.RoleWrite) {
		t.Error("a read principal may write")
	}
	if !nexus.Anonymous.Can(nexus.RoleAdmin) || !nexus.Anonymous.CanWrite("any") {
		t.Error("the anonymous principal of a node without authentication may not do everything")
	}
	if (&nexus.Principal{Role: "root"}).Can(nexus.RoleRead) || nexus.RoleAdmin.Includes("root") {
		t.Error("an unknown role grants something")
	}
	ctx := nexus.WithPrincipal(context.Background(), p)
	if got, ok := nexus.PrincipalFrom(ctx); !ok || got != p {
		t.Error("PrincipalFrom does not return the principal WithPrincipal stored")
	}
	if _, ok := nexus.PrincipalFrom(context.Background()); ok {
		t.Error("a bare context carries a principal")
	}
}
