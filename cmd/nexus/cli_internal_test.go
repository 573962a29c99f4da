package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/search"
)

// runIn runs one CLI invocation in this process.
func runIn(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// testNode is a real store with its search engine behind a real HTTP
// server.
type testNode struct {
	store  *gitstore.Store
	engine *search.Engine
	url    string
}

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	data := t.TempDir()
	store, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := search.Open(store, embed.NewHashing(embed.DefaultDimension), search.Options{Dir: indexDir(data)})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.NewServer(store, httpapi.Options{Searcher: engine}))
	t.Cleanup(func() {
		srv.Close()
		engine.Close()
		store.Close()
	})
	return &testNode{store: store, engine: engine, url: srv.URL}
}

// mustID parses the id a command printed.
func mustID(t *testing.T, out string) nexus.ID {
	t.Helper()
	id, err := nexus.ParseID(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("printed %q, want an id: %v", out, err)
	}
	return id
}

// closedURL is the URL of a local port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// Flags after a positional argument are flags, not words of the content
// or the query; "--" ends the flags.
func TestRun_FlagsAfterArguments(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	out, errs, code := runIn(t, "put", "hello", "--type", "decision", "--agent", "bob", "--meta", "k=v", "--server", n.url)
	if code != 0 {
		t.Fatalf("put: exit %d: %s", code, errs)
	}
	id := mustID(t, out)
	c, err := n.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != nexus.TypeDecision || c.AgentID != "bob" || c.Content != "hello" || string(c.Metadata) != `{"k":"v"}` {
		t.Errorf("put hello --type decision --agent bob --meta k=v stored type %q, agent %q, content %q, metadata %s",
			c.Type, c.AgentID, c.Content, c.Metadata)
	}

	out, errs, code = runIn(t, "put", "--server", n.url, "--", "--type", "-")
	if code != 0 {
		t.Fatalf("put -- ...: exit %d: %s", code, errs)
	}
	if c, err := n.store.Get(ctx, mustID(t, out)); err != nil || c.Content != "--type -" || c.Type != nexus.TypeMemory {
		t.Errorf("put -- --type -: %+v, %v; want content %q of type memory", c, err, "--type -")
	}

	if _, err := n.store.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: "login bug seen again"}); err != nil {
		t.Fatal(err)
	}
	if err := n.engine.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runIn(t, "search", "login bug", "--type", "decision", "--mode", "keyword", "--json", "--server", n.url)
	if code != 0 {
		t.Fatalf("search: exit %d: %s", code, errs)
	}
	var res nexus.SearchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("search --json printed %q: %v", out, err)
	}
	if len(res.Hits) != 0 {
		t.Errorf("search \"login bug\" --type decision: %d hits, want none (the one match is an observation): %s", len(res.Hits), out)
	}
	out, _, code = runIn(t, "search", "login", "bug", "--type", "observation", "--mode", "keyword", "--server", n.url)
	if code != 0 || !strings.Contains(out, "observation") || !strings.Contains(out, "-- 1 hits") {
		t.Errorf("search login bug --type observation: exit %d, want its one hit:\n%s", code, out)
	}

	out, errs, code = runIn(t, "get", id.String(), "--json", "--server", n.url)
	var got nexus.Context
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.ID != id {
		t.Errorf("get ID --json: exit %d, want the context as JSON:\n%s%s", code, out, errs)
	}
}

// A flag missing its value, or an unknown one, is a usage error wherever
// it stands; -h prints the verb's flags and exits 0.
func TestRun_FlagErrors(t *testing.T) {
	server := closedURL(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"put", "hello", "--type"}, "flag needs an argument: -type"},
		{[]string{"put", "hello", "--no-such-flag", "x"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"search", "q", "--limit", "many"}, `invalid value "many" for flag -limit`},
	} {
		args := append([]string{tc.args[0], "--server", server}, tc.args[1:]...)
		_, errs, code := runIn(t, args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, errs)
		}
	}
	out, errs, code := runIn(t, "fsck", "-h")
	if code != 0 || out != "" || !strings.Contains(errs, "-data string") || strings.Contains(errs, "help requested") {
		t.Errorf("fsck -h: exit %d, want 0 and the flags on stderr:\n%s%s", code, out, errs)
	}
}

// Every verb refuses a positional argument it does not take (exit 2,
// before it touches a data directory or a server). The other flags keep
// a verb that took the argument from doing much: no server started from
// this test binary, no long run. (bench report and serve start servers:
// TestCLI_UnexpectedArguments runs them on the binary.)
func TestRun_UnexpectedArguments(t *testing.T) {
	server := closedURL(t)
	none := filepath.Join(t.TempDir(), "none")
	var ids nexus.IDGenerator
	id := ids.New(time.Now()).String()
	for _, args := range [][]string{
		{"ls", "--server", server, "extra"},
		{"log", "extra", "--server", server},
		{"agents", "extra", "--server", server},
		{"tasks", "extra", "--server", server},
		{"incidents", "extra", "--server", server},
		{"incidents", "list", "extra", "--server", server},
		{"incidents", "show", id, "extra", "--server", server},
		{"bench", "extra", "--server", server, "--duration", "1ms"},
		{"bench", "events", "extra", "--server", server},
		{"bench", "mcp", "extra", "--server", server, "--transport", "http"},
		{"bench", "search", "extra", "--dir", none, "--n", "0"},
		{"reindex", "extra", "--data", none},
		{"reindex", "--embedder", "bert", "--data", none},
		{"bench", "quality", "--embedder", "hash,bert", "--dir", none},
		{"fsck", "extra", "--data", none},
		{"recover", "extra", "--data", none},
		{"restore", "extra", "--data", none, "--at", "2026-01-02T15:04:05Z"},
		{"backup", "extra", "--data", none},
		{"audit", "extra", "--data", none},
		{"backup", "list", "extra", "--data", none},
		{"mcp", "extra", "--data", none, "--server", server, "--no-start"},
		{"systemd-unit", "extra", "--data", none},
		{"get", id, "extra", "--server", server},
		{"chain", id, id, "--server", server},
		{"related", id, "extra", "--server", server},
		{"agents", "process", id, "extra", "--agent", "a", "--server", server},
		{"backup", "verify", "a", "b"},
		{"backup", "restore", "a", "b", "--data", none},
	} {
		_, errs, code := runIn(t, args...)
		if code != 2 || !(strings.Contains(errs, `unexpected argument "extra"`) || strings.Contains(errs, ": want ")) {
			t.Errorf("%q: exit %d, want 2 and a usage error:\n%s", args, code, errs)
		}
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("a refused command made %s: %v", none, err)
	}
}

// Verbs that work on an existing store refuse a data directory without
// one instead of making an empty store and reporting success.
func TestRun_MissingStore(t *testing.T) {
	dir := t.TempDir()
	none := filepath.Join(dir, "none")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{none, empty} {
		for _, args := range [][]string{
			{"fsck"}, {"fsck", "--repair=false"}, {"recover"}, {"reindex"},
			{"restore", "--at", "2026-01-02T15:04:05Z"}, {"restore", "--at", "2026-01-02T15:04:05Z", "--dry-run"},
			{"backup"}, {"backup", "--mirror", filepath.Join(dir, "mirror.git")}, {"backup", "list"}, {"audit"},
		} {
			out, errs, code := runIn(t, append(args, "--data", data)...)
			want := fmt.Sprintf("nexus %s: no store in %s (no %s)\n", args[0], data, filepath.Join(data, "repo.git"))
			if code != 2 || out != "" || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "`nexus serve --data DIR` creates a store") {
				t.Errorf("%q on %s: exit %d, want 2 and %q:\n%s%s", args, data, code, want, out, errs)
			}
		}
	}
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Errorf("the empty directory now holds %v (%v)", ents, err)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("%s was made: %v", none, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "mirror.git")); !os.IsNotExist(err) {
		t.Errorf("the mirror was made: %v", err)
	}
	if _, errs, code := runIn(t, "backup", "list", "--dir", none); code != 2 || errs != "nexus backup: no backup directory "+none+"\n" {
		t.Errorf("backup list --dir %s: exit %d:\n%s", none, code, errs)
	}

	// A store without backups yet: nothing listed, and said so.
	store := filepath.Join(dir, "store")
	s, err := gitstore.Open(store, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out, errs, code := runIn(t, "backup", "list", "--data", store)
	if code != 0 || out != "" || errs != "no backups in "+backupDir(store)+" (`nexus backup --data DIR` writes one)\n" {
		t.Errorf("backup list of a store without backups: exit %d:\n%s%s", code, out, errs)
	}
}
