package gitstore_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// A real full disk (a 4 MiB tmpfs): writes fail with insufficient_storage,
// and every acknowledged write is there after reopening.
func TestStore_DiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	data := filepath.Join(dir, "data")
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("fill the disk ", 700)
	var acked []nexus.ID
	var full error
	for i := 0; i < 10000 && full == nil; i++ {
		c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: content})
		if err != nil {
			full = err
			break
		}
		acked = append(acked, c.ID)
	}
	if nexus.ErrorCode(full) != nexus.EInsufficientStorage || !strings.Contains(nexus.ErrorMessage(full), "disk is full") {
		t.Fatalf("after %d writes: %v, want insufficient_storage", len(acked), full)
	}
	if len(acked) < 10 {
		t.Fatalf("only %d writes before the disk filled", len(acked))
	}
	if h := s.HealthCheckers()[nexus.ComponentGit].CheckHealth(context.Background()); h.Status != nexus.StatusDegraded || h.Details["read_only"] != true {
		t.Fatalf("health with the disk full: %+v", h)
	}
	// Space comes back: writes resume on the same open store, by themselves.
	if out, err := exec.Command("mount", "-o", "remount,size=16m", dir).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v %s", err, out)
	}
	c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: content})
	if err != nil {
		t.Fatalf("write after space came back: %v", err)
	}
	acked = append(acked, c.ID)
	if h := s.HealthCheckers()[nexus.ComponentGit].CheckHealth(context.Background()); h.Status != nexus.StatusHealthy {
		t.Fatalf("health after space came back: %+v", h)
	}
	s.Close()
	// No temp file is left behind once the store is closed.
	for _, d := range []string{filepath.Join(data, "repo.git", "objects", "pack"), filepath.Join(data, "repo.git", "refs", "heads")} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "tmp_") {
				t.Errorf("temp file %s left in %s", e.Name(), d)
			}
		}
	}
	s, err = gitstore.Open(data, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range acked {
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.GitDir(), "objects", "pack"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".pack") {
			if _, err := os.Stat(filepath.Join(s.GitDir(), "objects", "pack", strings.TrimSuffix(e.Name(), ".pack")+".idx")); err != nil {
				t.Fatalf("pack %s has no index", e.Name())
			}
		}
	}
	if out, err := exec.Command("git", "--git-dir", s.GitDir(), "fsck", "--full").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}
