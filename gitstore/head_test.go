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

func gitRevParse(t *testing.T, gitDir string) (string, error) {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", gitDir, "rev-parse", "HEAD").CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// A garbage HEAD (git cannot open the repository through it) is repaired
// at open, and found and repaired under a running store.
func TestStore_GarbageHEAD(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, dir, gitstore.Options{})
	if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "kept"}); err != nil {
		t.Fatal(err)
	}
	head := s.Head().String()
	headFile := filepath.Join(s.GitDir(), "HEAD")

	// Under a running store: unhealthy, then RepairRef rewrites it.
	if err := os.WriteFile(headFile, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := s.HealthCheckers()[nexus.ComponentGit].CheckHealth(context.Background())
	if h.Status != nexus.StatusUnhealthy || !strings.Contains(h.Error, "HEAD") {
		t.Fatalf("git health with a garbage HEAD: %s %q, want unhealthy naming HEAD", h.Status, h.Error)
	}
	did, err := s.RepairRef(context.Background())
	if err != nil || !strings.Contains(did, "HEAD rewritten") {
		t.Fatalf("RepairRef: %q, %v", did, err)
	}
	if got, err := gitRevParse(t, s.GitDir()); err != nil || got != head {
		t.Fatalf("git rev-parse HEAD after the repair: %q %v, want %s", got, err, head)
	}
	s.Close()

	// At open.
	if err := os.WriteFile(headFile, []byte("ref: refs/heads/mast"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = MustOpen(t, dir, gitstore.Options{})
	defer s.Close()
	if got, err := gitRevParse(t, s.GitDir()); err != nil || got != head {
		t.Fatalf("git rev-parse HEAD after open: %q %v, want %s", got, err, head)
	}
	if h := s.HealthCheckers()[nexus.ComponentGit].CheckHealth(context.Background()); h.Status != nexus.StatusHealthy {
		t.Fatalf("git health after open: %s %q", h.Status, h.Error)
	}
}

// A data directory whose repository was deleted is not opened as a new,
// empty store: what it acknowledged would be gone without a word.
func TestStore_RepositoryDeleted(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, dir, gitstore.Options{})
	if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "kept"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.RemoveAll(filepath.Join(dir, "repo.git")); err != nil {
		t.Fatal(err)
	}
	_, err := gitstore.Open(dir, gitstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "repo.git is missing") || !strings.Contains(err.Error(), "backup restore") {
		t.Fatalf("open after the repository was deleted: %v, want a refusal naming the missing repository", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, "repo.git")); serr == nil {
		t.Fatal("a new repository was created in place of the deleted one")
	}
}

// A bundle names main as its HEAD: `git clone BUNDLE` checks the memory
// out (it checked out nothing when HEAD named a branch the bundle lacks).
func TestBackup_CloneChecksOutMain(t *testing.T) {
	dir := t.TempDir()
	s := MustOpen(t, dir, gitstore.Options{})
	defer s.Close()
	c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "kept in the bundle"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Backup(context.Background(), filepath.Join(dir, "backups"))
	if err != nil {
		t.Fatal(err)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "-q", info.Path, clone).CombinedOutput(); err != nil || strings.Contains(string(out), "unable to checkout") {
		t.Fatalf("git clone of the bundle: %v %s", err, out)
	}
	out, err := exec.Command("git", "-C", clone, "ls-files").Output()
	if err != nil || !strings.Contains(string(out), c.ID.String()+".json") {
		t.Fatalf("the clone's files: %q %v, want %s.json", out, err, c.ID)
	}
	if _, written, err := s.BackupIfChanged(context.Background(), filepath.Join(dir, "backups")); err != nil || written {
		t.Fatalf("BackupIfChanged with nothing new: written %v, %v (HEAD in the bundle must not count as a change)", written, err)
	}
}

// What a deep check says of main is looked at again before it is acted
// on: a commit rewrites main, so a check that read main damaged just
// before one must not leave the repository unhealthy (a running node
// would try to repair it from a backup, and stop without one). A main
// that is still damaged stays unhealthy.
func TestStore_MainRewrittenAfterDeepCheck(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, "", gitstore.Options{})
	if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "first"}); err != nil {
		t.Fatal(err)
	}
	mainFile := filepath.Join(s.GitDir(), "refs", "heads", "main")
	gitHealth := s.HealthCheckers()[nexus.ComponentGit]
	missing := strings.Repeat("ab", 20)

	// Main names a commit that is not there: the finding holds.
	if err := os.WriteFile(mainFile, []byte(missing+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Fsck(ctx, true); err != nil || !hasProblem(rep, gitstore.ProblemRef, "refs/heads/main") {
		t.Fatalf("deep check of a main naming a missing commit: %+v, %v", rep, err)
	}
	if h := gitHealth.CheckHealth(ctx); h.Status != nexus.StatusUnhealthy || !strings.Contains(h.Error, missing) {
		t.Fatalf("git health with main naming a missing commit: %s %q, want unhealthy naming %s", h.Status, h.Error, missing)
	}

	// Main is garbage when the check reads it, then a commit rewrites it.
	if err := os.WriteFile(mainFile, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Fsck(ctx, true); err != nil || !hasProblem(rep, gitstore.ProblemRef, "refs/heads/main") {
		t.Fatalf("deep check of a garbage main: %+v, %v", rep, err)
	}
	if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "second"}); err != nil {
		t.Fatal(err)
	}
	if h := gitHealth.CheckHealth(ctx); h.Status != nexus.StatusHealthy {
		t.Fatalf("git health once a commit rewrote main: %s %q, want healthy", h.Status, h.Error)
	}
}

func hasProblem(rep *gitstore.FsckReport, kind gitstore.ProblemKind, object string) bool {
	if rep == nil {
		return false
	}
	for _, p := range rep.Problems {
		if p.Kind == kind && p.Object == object {
			return true
		}
	}
	return false
}
