package authz_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/gitstore"
)

var (
	// reader reads the namespaces team-*, by a pattern: listings scan.
	reader = &nexus.Principal{Name: "reader", Role: nexus.RoleRead, Read: []string{"team-*"}}
	// writer writes team-a only: listings go straight to it.
	writer = &nexus.Principal{Name: "writer", Role: nexus.RoleWrite, Write: []string{"team-a"}}
)

func as(p *nexus.Principal) context.Context {
	return nexus.WithPrincipal(context.Background(), p)
}

func openStore(t *testing.T) *gitstore.Store {
	t.Helper()
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fill stores n contexts alternating between team-a and secret, written
// by the node, and returns the ids of each namespace, oldest first.
func fill(t *testing.T, s nexus.Store, n int) (team, secret []nexus.ID) {
	t.Helper()
	for i := range n {
		ns := "team-a"
		if i%3 != 0 {
			ns = "secret"
		}
		c, err := s.Put(context.Background(), nexus.Draft{Namespace: ns, Type: nexus.TypeMemory, Content: fmt.Sprintf("note %d of %s", i, ns)})
		if err != nil {
			t.Fatal(err)
		}
		if ns == "secret" {
			secret = append(secret, c.ID)
		} else {
			team = append(team, c.ID)
		}
	}
	return team, secret
}

func wantCode(t *testing.T, what string, err error, code nexus.Code) {
	t.Helper()
	if got := nexus.ErrorCode(err); got != code {
		t.Errorf("%s: %v, want code %s", what, err, code)
	}
}

// A principal's write records its name on the context and as a
// Principal trailer of the commit, which git shows; the node's own writes
// carry none, and a draft cannot name a principal itself.
func TestStore_Put_recordsThePrincipal(t *testing.T) {
	s := openStore(t)
	st := authz.NewStore(s)
	c, err := st.Put(as(writer), nexus.Draft{Namespace: "team-a", Type: nexus.TypeDecision, AgentID: "someone-else", Content: "Ship on Friday.", Principal: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Principal != "writer" || c.AgentID != "someone-else" {
		t.Fatalf("stored principal %q agent %q, want writer and the agent given", c.Principal, c.AgentID)
	}
	node, err := st.Put(context.Background(), nexus.Draft{Namespace: "team-a", Type: nexus.TypeMemory, Content: "Written by the node.", Principal: "writer"})
	if err != nil || node.Principal != "" {
		t.Fatalf("node write: principal %q, %v; want none", node.Principal, err)
	}
	if got, _ := s.Get(context.Background(), c.ID); got.Principal != "writer" {
		t.Fatalf("read back: principal %q", got.Principal)
	}
	out, err := exec.Command("git", "--git-dir", s.GitDir(), "log", "--format=%(trailers:key=Principal,valueonly,separator=)|%(trailers:key=Context-Id,valueonly,separator=)", "main").CombinedOutput()
	if err != nil {
		t.Fatalf("git log: %v: %s", err, out)
	}
	if want := "|" + node.ID.String() + "\nwriter|" + c.ID.String() + "\n"; string(out) != want {
		t.Fatalf("git log trailers:\n%s\nwant\n%s", out, want)
	}
	page, err := st.Log(as(writer), nexus.LogFilter{})
	if err != nil || len(page.Entries) != 2 || page.Entries[1].Principal != "writer" || page.Entries[0].Principal != "" {
		t.Fatalf("journal: %+v %v", page, err)
	}
}

// Writes outside the principal's namespaces, by a read-only principal,
// and of the node's own types and namespaces are forbidden, whoever asks;
// nothing is stored.
func TestStore_Put_forbidden(t *testing.T) {
	s := openStore(t)
	st := authz.NewStore(s)
	for _, c := range []struct {
		what string
		p    *nexus.Principal
		d    nexus.Draft
		msg  string
	}{
		{"another namespace", writer, nexus.Draft{Namespace: "team-b", Type: nexus.TypeMemory, Content: "x"}, `may not write namespace "team-b"`},
		{"the default namespace", writer, nexus.Draft{Type: nexus.TypeMemory, Content: "x"}, `may not write namespace "default"`},
		{"role read", reader, nexus.Draft{Namespace: "team-a", Type: nexus.TypeMemory, Content: "x"}, "writing needs role write"},
		{"an agent_state checkpoint", nexus.Anonymous, nexus.Draft{Namespace: "agents", Type: nexus.TypeAgentState, AgentID: "coder", Content: "{}"}, "type agent_state is written by the node only"},
		{"agent_state elsewhere", nexus.Anonymous, nexus.Draft{Namespace: "team-a", Type: nexus.TypeAgentState, Content: "{}"}, "type agent_state is written by the node only"},
		{"the agents namespace", nexus.Anonymous, nexus.Draft{Namespace: "agents", Type: nexus.TypeMemory, Content: "x"}, `namespace "agents" is written by the node only`},
		{"incidents", nexus.Anonymous, nexus.Draft{Namespace: authz.IncidentsNamespace, Type: nexus.TypeObservation, Content: "x"}, `namespace "incidents" is written by the node only`},
		{"audit", nexus.Anonymous, nexus.Draft{Namespace: authz.AuditNamespace, Type: nexus.TypeObservation, Content: "x"}, `namespace "audit" is written by the node only`},
	} {
		_, err := st.Put(as(c.p), c.d)
		if nexus.ErrorCode(err) != nexus.EForbidden || !strings.Contains(nexus.ErrorMessage(err), c.msg) {
			t.Errorf("%s: %v, want forbidden saying %q", c.what, err, c.msg)
		}
	}
	if s.Len() != 0 {
		t.Fatalf("%d contexts stored by refused writes", s.Len())
	}
	// The node writes its own.
	if _, err := st.Put(context.Background(), nexus.Draft{Namespace: "agents", Type: nexus.TypeAgentState, AgentID: "coder", Content: "{}"}); err != nil {
		t.Fatalf("the node's checkpoint: %v", err)
	}
}

// A context of a namespace the principal may not read answers as one
// that does not exist, alone, as a chain, with its children.
func TestStore_Get_unreadableIsNotFound(t *testing.T) {
	s := openStore(t)
	st := authz.NewStore(s)
	team, secret := fill(t, s, 3)
	reply, err := s.Put(context.Background(), nexus.Draft{Namespace: "secret", Type: nexus.TypeMemory, Content: "reply", ParentID: secret[0]})
	if err != nil {
		t.Fatal(err)
	}
	absent, _ := nexus.ParseID("01KB2W3G6T0Q5A9QYQ7M3N8C2D")
	_, missing := st.Get(as(reader), absent)
	for _, p := range []*nexus.Principal{reader, writer} {
		for _, id := range []nexus.ID{secret[0], reply.ID} {
			_, err := st.Get(as(p), id)
			if nexus.ErrorCode(err) != nexus.ENotFound || nexus.ErrorMessage(err) != strings.Replace(nexus.ErrorMessage(missing), absent.String(), id.String(), 1) {
				t.Errorf("%s gets %s: %v, want the not_found of a missing context (%v)", p.Name, id, err, missing)
			}
			if _, err := st.GetRaw(as(p), id); nexus.ErrorCode(err) != nexus.ENotFound {
				t.Errorf("%s gets %s raw: %v", p.Name, id, err)
			}
			_, err = st.Chain(as(p), id, 0)
			wantCode(t, p.Name+" chain", err, nexus.ENotFound)
		}
		_, err := st.Children(as(p), secret[0])
		wantCode(t, p.Name+" children", err, nexus.ENotFound)
		if c, err := st.Get(as(p), team[0]); err != nil || c.ID != team[0] {
			t.Errorf("%s gets a readable context: %v", p.Name, err)
		}
		if b, err := st.GetRaw(as(p), team[0]); err != nil || !strings.Contains(string(b), team[0].String()) {
			t.Errorf("%s gets a readable context raw: %s %v", p.Name, b, err)
		}
	}
	// The node reads everything.
	if cs, err := st.Chain(context.Background(), reply.ID, 0); err != nil || len(cs) != 2 {
		t.Fatalf("node chain: %d %v", len(cs), err)
	}
}

// Listings and the journal hold only what the principal may read, page
// after page, however the namespaces interleave; naming an unreadable
// namespace is forbidden.
func TestStore_List_onlyReadable(t *testing.T) {
	s := openStore(t)
	st := authz.NewStore(s)
	team, secret := fill(t, s, 60) // 20 readable among 40 not
	for _, p := range []*nexus.Principal{reader, writer} {
		for _, order := range []nexus.Order{nexus.Oldest, nexus.Newest} {
			var got []nexus.ID
			f := nexus.Filter{Limit: 3, Order: order}
			for pages := 0; ; pages++ {
				if pages > 40 {
					t.Fatalf("%s: listing does not end", p.Name)
				}
				page, err := st.List(as(p), f)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range page.Contexts {
					got = append(got, c.ID)
				}
				if page.NextCursor == "" {
					break
				}
				f.Cursor = page.NextCursor
			}
			want := slices.Clone(team)
			if order == nexus.Newest {
				slices.Reverse(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s lists %s: %v, want %v", p.Name, order, got, want)
			}
		}
		_, err := st.List(as(p), nexus.Filter{Namespace: "secret"})
		wantCode(t, p.Name+" lists secret", err, nexus.EForbidden)
		page, err := st.List(as(p), nexus.Filter{ParentID: secret[0]})
		if err != nil || len(page.Contexts) != 0 {
			t.Errorf("%s lists the children of a secret context: %+v %v", p.Name, page, err)
		}
	}
	var entries []nexus.ID
	f := nexus.LogFilter{Limit: 4}
	for {
		page, err := st.Log(as(reader), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			if e.Namespace != "team-a" {
				t.Fatalf("journal entry of namespace %q", e.Namespace)
			}
			entries = append(entries, e.ContextID)
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	want := slices.Clone(team)
	slices.Reverse(want)
	if !slices.Equal(entries, want) {
		t.Errorf("journal: %v, want %v", entries, want)
	}
	// The node lists everything.
	if page, _ := st.List(context.Background(), nexus.Filter{Limit: nexus.MaxLimit}); len(page.Contexts) != len(team)+len(secret) {
		t.Errorf("node lists %d", len(page.Contexts))
	}
}

// A principal without a valid role reads nothing at all.
func TestStore_noRole(t *testing.T) {
	s := openStore(t)
	st := authz.NewStore(s)
	team, _ := fill(t, s, 1)
	nobody := &nexus.Principal{Name: "nobody", Read: []string{"*"}}
	_, err := st.Get(as(nobody), team[0])
	wantCode(t, "get", err, nexus.ENotFound)
	page, err := st.List(as(nobody), nexus.Filter{})
	if err != nil || len(page.Contexts) != 0 {
		t.Errorf("list: %+v %v", page, err)
	}
	_, err = st.Log(as(nobody), nexus.LogFilter{})
	wantCode(t, "log", err, nexus.EForbidden)
}
