package node_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// backupRuns is the number of rounds the backup schedule has run.
func backupRuns(n *nodetest.Node) (runs, failures uint64) {
	for _, s := range n.Services() {
		if s.Name == "backup" {
			return s.Runs, s.Failures
		}
	}
	return 0, 0
}

func put(t *testing.T, n *nodetest.Node, content string) {
	t.Helper()
	if _, err := n.Store().Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: content}); err != nil {
		t.Fatal(err)
	}
}

// A failing backup schedule degrades /health (backups) and the backup
// age keeps being reported; once backups work again, health is back.
func TestNode_BackupFailureDegradesHealth(t *testing.T) {
	cfg := nodetest.Config(t)
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.BackupDir = filepath.Join(blocker, "backups") // under a file: cannot be created
	cfg.BackupInterval = 10 * time.Millisecond
	n := nodetest.Open(t, cfg)
	put(t, n, "worth keeping")

	nodetest.Wait(t, time.Minute, "a failed backup round", func() bool { _, f := backupRuns(n); return f > 0 })
	h := n.Health(context.Background())
	b := h.Components[nexus.ComponentBackups]
	if b.Status != nexus.StatusDegraded || !strings.Contains(b.Error, blocker) {
		t.Fatalf("backups %s (%q), want degraded naming %s", b.Status, b.Error, blocker)
	}
	if h.Status != nexus.StatusDegraded {
		t.Fatalf("node %s, want degraded", h.Status)
	}
	if got := metricsText(t, n); !strings.Contains(got, "\nnexus_backup_age_seconds ") {
		t.Fatalf("no nexus_backup_age_seconds while backups fail:\n%s", got)
	}

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	runs, _ := backupRuns(n)
	nodetest.Wait(t, time.Minute, "a backup round after the fix", func() bool {
		r, _ := backupRuns(n)
		return r > runs+1
	})
	if b := n.Health(context.Background()).Components[nexus.ComponentBackups]; b.Status != nexus.StatusHealthy {
		t.Fatalf("backups %s (%q) after the fix, want healthy", b.Status, b.Error)
	}
}

// An idle node writes one bundle, not one per round: identical bundles
// would evict distinct ones.
func TestNode_IdleBackupsWriteOneBundle(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.BackupInterval = 10 * time.Millisecond
	cfg.BackupKeep = 3
	cfg.NoSearch = true // the index's vector log moves a ref of its own after each write
	n := nodetest.Open(t, cfg)
	put(t, n, "first")
	waitRounds := func(more uint64) {
		runs, _ := backupRuns(n)
		nodetest.Wait(t, time.Minute, "backup rounds", func() bool { r, _ := backupRuns(n); return r >= runs+more })
	}
	waitRounds(5)
	if got := bundles(t, node.BackupDir(cfg.Dir)); got != 1 {
		t.Fatalf("%d bundles after 5 idle rounds, want 1", got)
	}
	put(t, n, "second")
	waitRounds(5)
	if got := bundles(t, node.BackupDir(cfg.Dir)); got != 2 {
		t.Fatalf("%d bundles after one write and 5 rounds, want 2", got)
	}
}

func bundles(t *testing.T, dir string) int {
	t.Helper()
	list, err := gitstore.ListBackups(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

func metricsText(t *testing.T, n *nodetest.Node) string {
	t.Helper()
	resp, err := n.HTTP.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
