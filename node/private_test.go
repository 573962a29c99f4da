package node_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A running node's data directory stays private under a umask of 0022:
// after writes, a backup and the search index saved at close, every
// directory is 0700 and every file 0600 (0400 for git's read-only ones).
func TestNode_PrivateFiles(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	cfg := nodetest.Config(t)
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	n := nodetest.Open(t, cfg)
	for i := range 5 {
		if _, err := n.Store().Put(context.Background(), nexus.Draft{Type: nexus.TypeObservation, Content: strings.Repeat("memory ", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Backup(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Close()
	if m, _ := filepath.Glob(filepath.Join(node.IndexDir(cfg.Dir), "*", "manifest.json")); len(m) == 0 {
		t.Fatal("no search index saved at close")
	}
	err := filepath.WalkDir(cfg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := info.Mode().Perm()
		switch {
		case d.IsDir() && perm != 0o700:
			t.Errorf("directory %s has mode %04o, want 0700", path, perm)
		case !d.IsDir() && perm != 0o600 && perm != 0o400:
			t.Errorf("file %s has mode %04o, want 0600", path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
