package gitstore_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// A mirror receives every ref by push, incrementally; stock git finds it
// whole; it restores into a new data directory and repairs damaged
// objects like a bundle does.
func TestMirror_PushRestoreRepair(t *testing.T) {
	ctx := context.Background()
	dir, written := damagedStore(t, 20)
	s, err := gitstore.Open(dir, gitstore.Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendSide(ctx, "embeddings/m", map[string][]byte{"segment": []byte("vectors")}, "seg"); err != nil {
		t.Fatal(err)
	}
	mirror := filepath.Join(t.TempDir(), "mirror.git")
	m, err := s.PushMirror(ctx, mirror)
	if err != nil {
		t.Fatal(err)
	}
	if m.Head != s.Head().String() || m.Refs != 2 {
		t.Fatalf("mirror %+v, head %s", m, s.Head())
	}
	git(t, mirror, "fsck", "--full", "--strict", "--no-dangling")
	// Incremental: more writes, pushed again; refs follow exactly.
	c := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "after the first push"})
	written[c.ID] = c.Content
	if m, err = s.PushMirror(ctx, mirror); err != nil || m.Head != s.Head().String() {
		t.Fatalf("second push: %v %+v", err, m)
	}
	if got := strings.TrimSpace(git(t, mirror, "rev-parse", "refs/heads/main")); got != s.Head().String() {
		t.Fatalf("mirror main %s, store %s", got, s.Head())
	}
	if v, err := gitstore.VerifyMirror(ctx, mirror); err != nil || v.Head != s.Head().String() {
		t.Fatalf("verify: %v %+v", err, v)
	}
	// A path that is neither empty nor a repository is refused.
	junk := t.TempDir()
	os.WriteFile(filepath.Join(junk, "notes.txt"), []byte("mine"), 0o644)
	if _, err := s.PushMirror(ctx, junk); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("push into a non-repository: %v", err)
	}
	if _, err := s.PushMirror(ctx, s.GitDir()); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("push into itself: %v", err)
	}

	// Restore from the mirror into a new data directory.
	data := filepath.Join(t.TempDir(), "restored")
	if _, err := gitstore.RestoreBackup(ctx, mirror, data); err != nil {
		t.Fatal(err)
	}
	r := MustOpen(t, data, gitstore.Options{})
	for id, content := range written {
		if got, err := r.Get(ctx, id); err != nil || got.Content != content {
			t.Fatalf("restored store: %s: %v", id, err)
		}
	}
	r.Close()

	// Damage an object; the mirror repairs it in place.
	s.Close()
	ps := packs(t, dir)
	b := mustRead(t, ps[3])
	b[len(b)/2] ^= 0x10
	os.WriteFile(ps[3], b, 0o644)
	s = MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	did, err := s.RepairFrom(ctx, []string{filepath.Join(t.TempDir(), "missing.bundle"), mirror})
	if err != nil || !strings.Contains(did, "restored from "+mirror) || !strings.Contains(did, "deep check clean") {
		t.Fatalf("repair from the mirror: %q %v", did, err)
	}
	checkRepaired(t, s, dir, written)
	// A damaged mirror is refused by verify and restore.
	mp, _ := filepath.Glob(filepath.Join(mirror, "objects", "pack", "*.pack"))
	for _, p := range mp {
		b := mustRead(t, p)
		os.Chmod(p, 0o644)
		os.WriteFile(p, flip(b, len(b)/2), 0o644)
	}
	if _, err := gitstore.VerifyMirror(ctx, mirror); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("damaged mirror verified: %v", err)
	}
	if _, err := gitstore.RestoreBackup(ctx, mirror, filepath.Join(t.TempDir(), "again")); err == nil {
		t.Fatal("restored from a damaged mirror")
	}
}

// `git clone MIRROR` checks out main: the mirror's HEAD names
// refs/heads/main, whether the push creates the mirror or finds one whose
// HEAD names another branch. No git configuration may choose the branch
// for the test.
func TestStore_PushMirror_CloneChecksOutMain(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", empty)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	ctx := context.Background()
	dir, _ := damagedStore(t, 5)
	s := MustOpen(t, dir, gitstore.Options{})
	files := strings.Fields(git(t, s.GitDir(), "ls-tree", "-r", "--name-only", "main"))
	if len(files) != 5 {
		t.Fatalf("the store holds %d context files, want 5", len(files))
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, mirror string)
	}{
		{"new mirror", func(*testing.T, string) {}},
		{"existing mirror with HEAD at master", func(t *testing.T, mirror string) {
			if out, err := exec.Command("git", "init", "-q", "--bare", "--initial-branch=master", mirror).CombinedOutput(); err != nil {
				t.Fatalf("git init: %v\n%s", err, out)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mirror := filepath.Join(t.TempDir(), "mirror.git")
			tc.setup(t, mirror)
			if _, err := s.PushMirror(ctx, mirror); err != nil {
				t.Fatal(err)
			}
			if head := strings.TrimSpace(git(t, mirror, "symbolic-ref", "HEAD")); head != "refs/heads/main" {
				t.Fatalf("the mirror's HEAD names %s", head)
			}
			clone := filepath.Join(t.TempDir(), "clone")
			if out, err := exec.Command("git", "clone", "-q", mirror, clone).CombinedOutput(); err != nil {
				t.Fatalf("git clone: %v\n%s", err, out)
			}
			for _, f := range files {
				if _, err := os.Stat(filepath.Join(clone, f)); err != nil {
					t.Fatalf("the clone's working tree lacks %s: %v", f, err)
				}
			}
			if got := strings.TrimSpace(git(t, filepath.Join(clone, ".git"), "rev-parse", "HEAD")); got != s.Head().String() {
				t.Fatalf("the clone checked out %s, not main at %s", got, s.Head())
			}
		})
	}
}

// A damaged main ref is rewritten from the acknowledged head while the
// store runs; a valid but different one is first kept under
// refs/recovery/.
func TestRepairRef(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, "", gitstore.Options{})
	for i := range 5 {
		mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: strings.Repeat("ref ", i+1)})
	}
	head := s.Head()
	if did, err := s.RepairRef(ctx); err != nil || did != "" {
		t.Fatalf("healthy ref repaired: %q %v", did, err)
	}
	refFile := filepath.Join(s.GitDir(), "refs", "heads", "main")
	gitHealth := s.HealthCheckers()[nexus.ComponentGit]
	for name, content := range map[string]string{
		"emptied": "",
		"garbage": "not a hash at all\n",
		"missing": "0123456789abcdef0123456789abcdef01234567\n",
	} {
		os.WriteFile(refFile, []byte(content), 0o644)
		if name != "missing" {
			if h := gitHealth.CheckHealth(ctx); h.Status != nexus.StatusUnhealthy {
				t.Fatalf("%s ref: health %+v", name, h)
			}
		}
		did, err := s.RepairRef(ctx)
		if err != nil || !strings.Contains(did, "rewritten at the acknowledged head") {
			t.Fatalf("%s ref: %q %v", name, did, err)
		}
		if got := strings.TrimSpace(string(mustRead(t, refFile))); got != head.String() {
			t.Fatalf("%s ref: main is %q, want %s", name, got, head)
		}
	}
	// Moved back behind the store's back: kept, then rewritten.
	older := strings.TrimSpace(git(t, s.GitDir(), "rev-parse", "refs/heads/main~2"))
	os.WriteFile(refFile, []byte(older+"\n"), 0o644)
	if h := s.HealthCheckers()[nexus.ComponentStore].CheckHealth(ctx); h.Status == nexus.StatusHealthy {
		t.Fatalf("catalog health with main moved: %+v", h)
	}
	did, err := s.RepairRef(ctx)
	if err != nil || !strings.Contains(did, "now kept as refs/recovery/") {
		t.Fatalf("moved ref: %q %v", did, err)
	}
	if refs := git(t, s.GitDir(), "for-each-ref", "--format=%(objectname)", "refs/recovery/"); !strings.Contains(refs, older) {
		t.Fatalf("the moved value is not kept: %q", refs)
	}
	c := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "after the repairs"})
	if got := strings.TrimSpace(git(t, s.GitDir(), "log", "-1", "--format=%P", "refs/heads/main")); got != head.String() {
		t.Fatalf("write %s after repair has parent %s, want %s", c.ID, got, head)
	}
	git(t, s.GitDir(), "fsck", "--full", "--strict")
}

// A read that finds an object damaged makes the repository unhealthy
// until a deep check accounts for it; RepairFrom repairs and confirms.
func TestCorruptRead_HealthAndRepair(t *testing.T) {
	ctx := context.Background()
	dir, written, bundle, _ := backedUpStore(t, 10)
	damageBlob(t, packs(t, dir)[2])
	s := MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	gitHealth := s.HealthCheckers()[nexus.ComponentGit]
	if h := gitHealth.CheckHealth(ctx); h.Status != nexus.StatusHealthy {
		t.Fatalf("health before any read: %+v", h)
	}
	bad := 0
	for id := range written {
		if _, err := s.Get(ctx, id); err != nil {
			bad++
		}
	}
	if bad == 0 {
		t.Fatal("no read hit the damaged object")
	}
	h := gitHealth.CheckHealth(ctx)
	if h.Status != nexus.StatusUnhealthy || !strings.Contains(h.Error, "reads found damaged objects") {
		t.Fatalf("health after a damaged read: %+v", h)
	}
	if _, err := s.RepairFrom(ctx, nil); err == nil {
		t.Fatal("repair with no sources succeeded")
	}
	did, err := s.RepairFrom(ctx, []string{bundle.Path})
	if err != nil || !strings.Contains(did, "objects restored") {
		t.Fatalf("repair: %q %v", did, err)
	}
	if h := gitHealth.CheckHealth(ctx); h.Status != nexus.StatusHealthy {
		t.Fatalf("health after repair: %+v", h)
	}
	for id, content := range written {
		if c, err := s.Get(ctx, id); err != nil || c.Content != content {
			t.Fatalf("%s after repair: %v", id, err)
		}
	}
}

// backedUpStore is damagedStore with a bundle backup of it taken; it
// returns the store's head too.
func backedUpStore(t *testing.T, n int) (string, map[nexus.ID]string, *gitstore.BackupInfo, gitstore.Hash) {
	t.Helper()
	dir, written := damagedStore(t, n)
	s, err := gitstore.Open(dir, gitstore.Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bundle, err := s.Backup(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir, written, bundle, s.Head()
}

// damageBlob flips a bit inside the compressed data of the first blob of
// a pack (found with git verify-pack), so that reading it fails.
func damageBlob(t *testing.T, pack string) {
	t.Helper()
	out := git(t, filepath.Dir(filepath.Dir(filepath.Dir(pack))), "verify-pack", "-v", strings.TrimSuffix(pack, ".pack")+".idx")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[1] == "blob" {
			off, _ := strconv.Atoi(f[4])
			size, _ := strconv.Atoi(f[3])
			b := mustRead(t, pack)
			b[off+size/2+1] ^= 0x08
			if err := os.WriteFile(pack, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no blob in %s:\n%s", pack, out)
}

// A repository that cannot be opened is repaired offline: a truncated
// index is rebuilt from its whole pack (no backup needed), a truncated
// pack is quarantined and its objects copied back from a backup, an
// emptied main ref is set to the one journal tip.
func TestRepairOffline(t *testing.T) {
	ctx := context.Background()
	dir, written, bundle, head := backedUpStore(t, 12)
	reopen := func(what string) {
		t.Helper()
		s, err := gitstore.Open(dir, gitstore.Options{MergePacks: 1 << 20})
		if err != nil {
			t.Fatalf("%s: open after repair: %v", what, err)
		}
		defer s.Close()
		for id, content := range written {
			if c, err := s.Get(ctx, id); err != nil || c.Content != content {
				t.Fatalf("%s: %s: %v", what, id, err)
			}
		}
		if s.Head() != head {
			t.Fatalf("%s: head %s, want %s", what, s.Head(), head)
		}
		if rep, err := s.Fsck(ctx, true); err != nil || !rep.Clean() {
			t.Fatalf("%s: deep check: %v %+v", what, err, rep)
		}
	}
	ps := packs(t, dir)
	idx := strings.TrimSuffix(ps[4], ".pack") + ".idx"
	if err := os.Truncate(idx, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := gitstore.Open(dir, gitstore.Options{}); err == nil {
		t.Fatal("opened with a truncated index")
	}
	did, err := gitstore.RepairOffline(ctx, dir, nil)
	if err != nil || len(did) != 1 || !strings.Contains(did[0], "index was rebuilt from the pack") {
		t.Fatalf("truncated index: %q %v", did, err)
	}
	reopen("truncated index")

	ps = packs(t, dir)
	if err := os.Truncate(ps[6], 40); err != nil {
		t.Fatal(err)
	}
	if did, err := gitstore.RepairOffline(ctx, dir, []string{bundle.Path}); err != nil || len(did) != 2 ||
		!strings.Contains(did[0], "moved to "+filepath.Join(dir, "quarantine")) || !strings.Contains(did[1], "copied from") {
		t.Fatalf("truncated pack: %q %v", did, err)
	}
	reopen("truncated pack")

	os.WriteFile(filepath.Join(dir, "repo.git", "refs", "heads", "main"), nil, 0o644)
	if did, err := gitstore.RepairOffline(ctx, dir, nil); err != nil || len(did) != 1 || !strings.Contains(did[0], "set to "+head.String()) {
		t.Fatalf("emptied ref: %q %v", did, err)
	}
	reopen("emptied ref")
	if gitFsckFails(t, dir) {
		t.Fatal("git fsck fails after the offline repairs")
	}
	// The newest pack lost too: the remaining tips are older than the head
	// the catalog saved (or several), so main is not set back silently.
	ps = packs(t, dir)
	newest := strings.TrimSuffix(ps[len(ps)-1], ".pack")
	os.Remove(newest + ".pack")
	os.Remove(newest + ".idx")
	os.WriteFile(filepath.Join(dir, "repo.git", "refs", "heads", "main"), nil, 0o644)
	did, err = gitstore.RepairOffline(ctx, dir, nil)
	if err == nil || !(strings.Contains(err.Error(), "does not descend from "+head.String()) || strings.Contains(err.Error(), "could be main's head")) {
		t.Fatalf("lost newest pack: %q %v", did, err)
	}
}
