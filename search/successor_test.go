package search_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/search"
)

// A running engine hands over to the engine of another model: the old
// one answers searches, and keeps following the store, until the new one
// has every context; then it is closed and its saved index deleted.
func TestEngine_Successor(t *testing.T) {
	c := mustCorpus(t)
	dir := t.TempDir()
	old, err := search.Open(c.store, embed.NewHashing(128), search.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustSearch(t, old, nexus.SearchRequest{Query: "zebra"})
	if _, err := old.Successor(embed.NewHashing(128)); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("successor of the same model: %v", err)
	}
	gate := &gatedEmbedder{Hashing: embed.NewHashing(96), open: make(chan struct{})}
	e, err := old.Successor(gate)
	if err != nil {
		old.Close()
		t.Fatal(err)
	}
	defer e.Close()
	if m := e.Migration(); m != "nexus-hash-v1-128" {
		t.Fatalf("migration from %q", m)
	}
	if _, err := e.Successor(embed.NewHashing(64)); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("successor during a migration: %v", err)
	}
	if h := e.CheckHealth(context.Background()); h.Status != nexus.StatusDegraded || h.Details["migrating_from"] != "nexus-hash-v1-128" || h.Details["model"] != "nexus-hash-v1-96" {
		t.Fatalf("health during the migration: %+v", h)
	}
	// A write made during the migration is found through the old model:
	// it keeps following the store.
	late, err := c.store.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, AgentID: "chef", Content: "A platypus joined the quokka in the data center."})
	if err != nil {
		t.Fatal(err)
	}
	e.Notify()
	res := mustSearch(t, e, nexus.SearchRequest{Query: "platypus", Mode: nexus.Semantic})
	if len(res.Hits) == 0 || res.Hits[0].Context.ID != late.ID || !strings.Contains(res.Degraded, "previous model nexus-hash-v1-128") {
		t.Fatalf("during the migration: %+v", res)
	}
	close(gate.open)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.WaitMigration(ctx); err != nil {
		t.Fatal(err)
	}
	if m := e.Migration(); m != "" {
		t.Fatalf("still migrating from %q", m)
	}
	res = mustSearch(t, e, nexus.SearchRequest{Query: "platypus", Mode: nexus.Semantic})
	if res.Degraded != "" || res.Hits[0].Context.ID != late.ID {
		t.Fatalf("after the migration: %+v", res)
	}
	if st := e.Stats(); st.Model != "nexus-hash-v1-96" || st.Indexed != c.store.Len() {
		t.Fatalf("stats after the migration: %+v", st)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	dirs, _ := os.ReadDir(dir)
	if len(dirs) != 1 || !strings.HasPrefix(dirs[0].Name(), "nexus-hash-v1-96-") {
		t.Fatalf("index dirs after the migration: %v", dirs)
	}
}
