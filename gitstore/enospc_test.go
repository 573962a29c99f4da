package gitstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/internal/crashfs"
)

// A real full disk (a 4 MiB tmpfs): writes fail with insufficient_storage,
// and every acknowledged write is there after reopening.
func TestStore_DiskFull(t *testing.T) {
	dir := crashfs.Tmpfs(t, "4m")
	testSpaceFault(t, spaceFault{
		dir:   filepath.Join(dir, "data"),
		errno: syscall.ENOSPC,
		relieve: func() error {
			_, err := run("mount", "-o", "remount,size=16m", dir)
			return err
		},
	})
}

// A real exceeded quota: a btrfs qgroup limit of 2 MiB on the store's
// subvolume of a 256 MiB file system (a loop-mounted image). The kernel CI
// runs on has no tmpfs or ext4 quotas (CONFIG_TMPFS_QUOTA, CONFIG_QFMT_V2
// unset); a qgroup limit binds root too, so the store runs in the test
// process.
func TestStore_QuotaExceeded(t *testing.T) {
	if _, err := exec.LookPath("mkfs.btrfs"); err != nil {
		crashfs.Unavailable(t, "no mkfs.btrfs (apt-get install btrfs-progs)")
	}
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "btrfs.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(img)
	if err == nil {
		err = errors.Join(f.Truncate(256<<20), f.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run("mkfs.btrfs", "-q", img); err != nil {
		t.Fatal(err)
	}
	if _, err := run("mount", "-o", "loop", img, mnt); err != nil {
		crashfs.Unavailable(t, "cannot loop-mount a btrfs image (needs root): %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	sub := filepath.Join(mnt, "nexus")
	for _, args := range [][]string{{"quota", "enable", mnt}, {"subvolume", "create", sub}, {"qgroup", "limit", "2m", sub}} {
		if _, err := run("btrfs", args...); err != nil {
			t.Fatal(err)
		}
	}
	id, err := run("btrfs", "inspect-internal", "rootid", sub)
	if err != nil {
		t.Fatal(err)
	}
	testSpaceFault(t, spaceFault{
		dir:      filepath.Join(sub, "data"),
		errno:    syscall.EDQUOT,
		wantFree: 128 << 20,
		relieve: func() error {
			// Named by id through the top-level subvolume: changing the
			// limit through the full subvolume is itself refused with EDQUOT.
			_, err := run("btrfs", "qgroup", "limit", "64m", "0/"+strings.TrimSpace(id), mnt)
			return err
		},
	})
}

// spaceFault is a file system that runs out of room for the store.
type spaceFault struct {
	dir      string        // the store's data dir, on the file system
	errno    syscall.Errno // what the failing writes must wrap
	wantFree uint64        // bytes the file system must still have free while writes fail (0: not checked)
	relieve  func() error  // gives room back
}

// testSpaceFault writes until the file system refuses, then checks the
// error, the health, that writes resume on the same open store once room
// is given back, that no temp file outlives the store, and that every
// acknowledged write is there after reopening, with git fsck clean.
func testSpaceFault(t *testing.T, f spaceFault) {
	s, err := gitstore.Open(f.dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close() // on failure, before the file system is unmounted
	var acked []nexus.ID
	var full error
	for i := 0; i < 10000 && full == nil; i++ {
		c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: noise()})
		if err != nil {
			full = err
			break
		}
		acked = append(acked, c.ID)
	}
	want := "the disk is full"
	if f.errno == syscall.EDQUOT {
		want = "the disk quota is exceeded"
	}
	if nexus.ErrorCode(full) != nexus.EInsufficientStorage || !strings.Contains(nexus.ErrorMessage(full), want) {
		t.Fatalf("after %d writes: %v, want insufficient_storage", len(acked), full)
	}
	if !errors.Is(full, f.errno) {
		t.Fatalf("after %d writes: %v, want it caused by %v", len(acked), full, f.errno)
	}
	t.Logf("after %d writes: %s (%v)", len(acked), nexus.ErrorMessage(full), full)
	if len(acked) < 10 {
		t.Fatalf("only %d writes before the disk filled", len(acked))
	}
	if f.wantFree > 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(f.dir, &st); err != nil {
			t.Fatal(err)
		}
		if free := uint64(st.Bavail) * uint64(st.Bsize); free < f.wantFree {
			t.Fatalf("%d bytes free while writes fail, want at least %d", free, f.wantFree)
		}
	}
	if h := s.HealthCheckers()[nexus.ComponentGit].CheckHealth(context.Background()); h.Status != nexus.StatusDegraded || h.Details["read_only"] != true {
		t.Fatalf("health with the disk full: %+v", h)
	}
	// Room comes back: writes resume on the same open store, by themselves.
	if err := f.relieve(); err != nil {
		t.Fatalf("give room back: %v", err)
	}
	c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: noise()})
	if err != nil {
		t.Fatalf("write after room came back: %v", err)
	}
	acked = append(acked, c.ID)
	if h := s.HealthCheckers()[nexus.ComponentGit].CheckHealth(context.Background()); h.Status != nexus.StatusHealthy {
		t.Fatalf("health after room came back: %+v", h)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// No temp file is left behind once the store is closed.
	err = filepath.WalkDir(f.dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(filepath.Base(p), "tmp_") {
			t.Errorf("temp file %s left behind", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err = gitstore.Open(f.dir, gitstore.Options{})
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

// noise returns 8 KiB of text that compresses to about 4 KiB, so the
// file system fills after a few hundred writes.
func noise() string {
	b := make([]byte, 4096)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a command and returns its output, which is also in the error
// if it fails.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
