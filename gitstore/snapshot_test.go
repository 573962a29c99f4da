package gitstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
)

// packFileSums returns the SHA-256 of every file in dir.
func packFileSums(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][32]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// A snapshot does not hold merges while git reads it, and the packs it
// links keep their bytes when a merge retires them and later group
// commits reuse retired files (they must not reuse these).
func TestSnapshot_MergesGoOnAndItsPacksKeepTheirBytes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20}) // the test merges, not the background merger
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(n int, tag string) {
		for i := 0; i < n; i++ {
			if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprintf("%s %d", tag, i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(20, "before")
	head := s.Head()
	sn, err := s.snapshotRepo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer sn.close()
	if sn.release != nil {
		t.Fatal("the snapshot fell back to holding merges on a file system with hard links")
	}
	if !s.mergeMu.TryLock() {
		t.Fatal("merges wait while a snapshot is open")
	}
	s.mergeMu.Unlock()
	packDir := filepath.Join(sn.dir, "objects", "pack")
	before := packFileSums(t, packDir)
	if len(before) != 2*20 {
		t.Fatalf("the snapshot links %d files, want the 40 files of 20 packs", len(before))
	}
	merged, _ := mergeAll(t, s, 2, 1<<40)
	if len(merged) == 0 {
		t.Fatal("nothing merged")
	}
	put(40, "after") // group commits take the spares that merges left
	if after := packFileSums(t, packDir); len(after) != len(before) {
		t.Fatalf("the snapshot holds %d files after the merges, want %d", len(after), len(before))
	} else {
		for name, sum := range before {
			if after[name] != sum {
				t.Fatalf("%s changed under the snapshot: a retired pack that it links was reused", name)
			}
		}
	}
	if out, err := exec.Command("git", "--git-dir", sn.dir, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck of the snapshot: %v\n%s", err, out)
	}
	out, err := exec.Command("git", "--git-dir", sn.dir, "rev-list", "--count", mainRef).CombinedOutput()
	if err != nil {
		t.Fatalf("git rev-list: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "20" {
		t.Fatalf("the snapshot's main has %s commits, want the 20 of head %s", got, head)
	}
	sn.close()
	if ents, err := os.ReadDir(filepath.Join(s.dir, scratchDir)); err != nil || len(ents) != 0 {
		t.Fatalf("scratch directory after close: %v, %v", ents, err)
	}
}

// A deep check reads links to the packs, leaves none behind, and an open
// removes what a stopped process left in the scratch directory.
func TestSnapshot_DeepCheckAndOpenLeaveNoScratch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("ctx ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.Objects == 0 || rep.Packs == 0 {
		t.Fatalf("deep check: clean %v, %d objects in %d packs: %+v", rep.Clean(), rep.Objects, rep.Packs, rep.Problems)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, scratchDir)); err != nil || len(ents) != 0 {
		t.Fatalf("scratch directory after a deep check: %v, %v", ents, err)
	}
	// A snapshot left by a process that stopped.
	if _, err := s.snapshotRepo(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, scratchDir)); !os.IsNotExist(err) {
		t.Fatalf("the scratch directory survived an open: %v", err)
	}
}

// On a file system without hard links a snapshot borrows the objects and
// holds merges until it is closed, and a deep check reads the packs in
// place with merges held; both still give the whole store.
func TestSnapshot_WithoutHardLinksHoldsMerges(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("ctx ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	defer func(f func(string, string) error) { linkFile = f }(linkFile)
	linkFile = func(string, string) error { return &os.LinkError{Op: "link", Err: os.ErrPermission} }

	sn, err := s.snapshotRepo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sn.release == nil || s.mergeMu.TryLock() {
		t.Fatal("a snapshot without hard links does not hold merges")
	}
	if ents, _ := os.ReadDir(filepath.Join(sn.dir, "objects", "pack")); len(ents) != 0 {
		t.Fatalf("a failed link left %d files in the snapshot", len(ents))
	}
	out, err := exec.Command("git", "--git-dir", sn.dir, "rev-list", "--count", mainRef).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "5" {
		t.Fatalf("the snapshot's main through alternates: %v %s", err, out)
	}
	sn.close()
	if !s.mergeMu.TryLock() {
		t.Fatal("closing the snapshot did not let merges go on")
	}
	s.mergeMu.Unlock()

	rep, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.Packs == 0 || rep.Objects == 0 {
		t.Fatalf("deep check in place: clean %v, %d objects in %d packs: %v", rep.Clean(), rep.Objects, rep.Packs, rep.Problems)
	}
}
