package gitstore_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// umask022 sets the umask most systems use, under which files are
// created readable by everyone unless their mode says otherwise, for the
// rest of the test.
func umask022(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
}

// assertPrivate walks root: every directory must be 0700 and every file
// 0600 (0400 for git's read-only objects, 0700 for the sample hooks
// stock git copies into a clone): nothing for the group or others.
func assertPrivate(t *testing.T, after, root string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a temporary file of the background merger, gone meanwhile
		}
		if err != nil {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n++
		perm := info.Mode().Perm()
		switch {
		case d.IsDir() && perm != 0o700:
			t.Errorf("after %s: directory %s has mode %04o, want 0700", after, path, perm)
		case !d.IsDir() && perm != 0o600 && perm != 0o400 && !(perm == 0o700 && strings.HasSuffix(path, ".sample")):
			t.Errorf("after %s: file %s has mode %04o, want 0600", after, path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("after %s: %s holds nothing to check", after, root)
	}
}

// Every kind of write leaves the data directory, the backups, the mirror
// and a restored store private (directories 0700, files 0600) under a
// umask of 0022; a data directory found 0755 is made 0700.
func TestStore_PrivateFiles(t *testing.T) {
	umask022(t)
	ctx := context.Background()
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := MustOpen(t, data, gitstore.Options{MergePacks: 2})
	assertPrivate(t, "open", data)

	var first *nexus.Context
	for i := range 8 {
		c := mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: strings.Repeat("x", i+1)})
		if first == nil {
			first = c
		}
	}
	assertPrivate(t, "put", data)
	deadline := time.Now().Add(20 * time.Second)
	for len(packs(t, data)) >= 8 { // the merger runs in the background
		if time.Now().After(deadline) {
			t.Fatalf("%d packs after 8 commits with MergePacks 2: nothing merged", len(packs(t, data)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertPrivate(t, "merge of packs", data)

	backups := filepath.Join(root, "backups")
	info, err := s.Backup(ctx, backups)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(ctx, filepath.Join(data, "backups")); err != nil {
		t.Fatal(err)
	}
	assertPrivate(t, "backup", backups)
	assertPrivate(t, "backup", data)

	mirror := filepath.Join(root, "mirror.git")
	if _, err := s.PushMirror(ctx, mirror); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, nexus.Draft{Type: nexus.TypeObservation, Content: "after the first push"})
	if _, err := s.PushMirror(ctx, mirror); err != nil {
		t.Fatal(err)
	}
	assertPrivate(t, "mirror push", mirror)

	if _, err := s.RestoreTo(ctx, first.Timestamp, false); err != nil {
		t.Fatal(err)
	}
	assertPrivate(t, "restore to a time", data)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	restored := filepath.Join(root, "restored")
	if _, err := gitstore.RestoreBackup(ctx, info.Path, restored); err != nil {
		t.Fatal(err)
	}
	assertPrivate(t, "restore of a backup", restored)
	fromMirror := filepath.Join(root, "from-mirror")
	if _, err := gitstore.RestoreBackup(ctx, mirror, fromMirror); err != nil {
		t.Fatal(err)
	}
	assertPrivate(t, "restore of a mirror", fromMirror)
	r := MustOpen(t, restored, gitstore.Options{})
	if r.Len() != 8 {
		t.Fatalf("restored store holds %d contexts, want 8", r.Len())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	assertPrivate(t, "opening a restored store (catalog rebuilt)", restored)

	idx, err := filepath.Glob(filepath.Join(restored, "repo.git", "objects", "pack", "*.idx"))
	if err != nil || len(idx) == 0 {
		t.Fatalf("no pack index in the restored store: %v", err)
	}
	if err := os.Remove(idx[0]); err != nil {
		t.Fatal(err)
	}
	did, err := gitstore.RepairOffline(ctx, restored, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(idx[0]); err != nil {
		t.Fatalf("the index was not rebuilt (%v): %v", did, err)
	}
	assertPrivate(t, "index-pack of an offline repair", restored)
}
