package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/recovery"
)

// statuses lists the status of each step, by component.
func statuses(steps []recovery.Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Component+"="+string(s.Status))
	}
	return out
}

// The offline cascade visits every component in order, rebuilds a missing
// or damaged index, and stops at a repository it cannot repair.
func TestRecoverOffline(t *testing.T) {
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprintf("fact %d about sessions", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	run := func(want ...string) []recovery.Step {
		t.Helper()
		steps, err := node.RecoverOffline(context.Background(), node.OfflineConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(steps); !slices.Equal(got, want) {
			t.Fatalf("steps %v, want %v\n%v", got, want, steps)
		}
		return steps
	}
	run("git_repository=ok", "context_manager=ok", "memory_cache=ok", "semantic_index=recovered", "agents=disabled")
	run("git_repository=ok", "context_manager=ok", "memory_cache=ok", "semantic_index=ok", "agents=disabled")

	files, _ := filepath.Glob(filepath.Join(node.IndexDir(dir), "*", "*"))
	if len(files) == 0 {
		t.Fatal("no saved index files")
	}
	for _, f := range files {
		if err := os.Truncate(f, 10); err != nil {
			t.Fatal(err)
		}
	}
	run("git_repository=ok", "context_manager=ok", "memory_cache=ok", "semantic_index=recovered", "agents=disabled")
	run("git_repository=ok", "context_manager=ok", "memory_cache=ok", "semantic_index=ok", "agents=disabled")

	packs, _ := filepath.Glob(filepath.Join(dir, "repo.git", "objects", "pack", "*.pack"))
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x10
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	steps := run("git_repository=failed", "context_manager=skipped", "memory_cache=skipped", "semantic_index=skipped", "agents=skipped")
	t.Logf("refused: %s", steps[0].Reason)
}

// An empty store's index is built and then verifies: its saved manifest
// names no last context.
func TestRecoverOffline_EmptyStore(t *testing.T) {
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, want := range []string{"semantic_index=recovered", "semantic_index=ok"} {
		steps, err := node.RecoverOffline(context.Background(), node.OfflineConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if got := statuses(steps); !slices.Contains(got, want) || slices.Contains(got, "semantic_index=failed") {
			t.Fatalf("steps %v, want %s\n%v", got, want, steps)
		}
	}
}
