package gitstore_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// damagedStore writes n contexts, one group commit (one pack) each, and
// closes the store; it returns the directory and what was written.
func damagedStore(t *testing.T, n int) (string, map[nexus.ID]string) {
	t.Helper()
	dir := t.TempDir()
	s, err := gitstore.Open(dir, gitstore.Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	written := map[nexus.ID]string{}
	var parent nexus.ID
	for i := range n {
		c := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprintf("context number %d with some text", i), ParentID: parent})
		written[c.ID] = c.Content
		if i%3 == 0 {
			parent = c.ID
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, written
}

// packs lists the pack files, oldest first.
func packs(t *testing.T, dir string) []string {
	t.Helper()
	found, _ := filepath.Glob(filepath.Join(dir, "repo.git", "objects", "pack", "pack-*.pack"))
	// A merge running meanwhile may retire a pack: list those still there.
	type packFile struct {
		path string
		mod  time.Time
	}
	var ps []packFile
	for _, p := range found {
		if st, err := os.Stat(p); err == nil {
			ps = append(ps, packFile{p, st.ModTime()})
		}
	}
	slices.SortFunc(ps, func(a, b packFile) int { return a.mod.Compare(b.mod) })
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.path
	}
	return out
}

func gitFsckFails(t *testing.T, dir string) bool {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", filepath.Join(dir, "repo.git"), "fsck", "--full", "--strict").CombinedOutput()
	if err != nil {
		t.Logf("git fsck: %v\n%s", err, out)
	}
	return err != nil
}

func TestFsck_Clean(t *testing.T) {
	dir, _ := damagedStore(t, 20)
	// No merging: git fsck below runs beside the open store, and a merge
	// retiring packs under it would make it report vanished files.
	s := MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20})
	for _, deep := range []bool{false, true} {
		rep, err := s.Fsck(context.Background(), deep)
		if err != nil || !rep.Clean() {
			t.Fatalf("deep=%v: %v %+v", deep, err, rep)
		}
		if deep && (rep.Commits != 20 || rep.Contexts != 20 || rep.Objects == 0) {
			t.Fatalf("deep report counts: %+v", rep)
		}
	}
	if gitFsckFails(t, dir) {
		t.Fatal("git fsck fails on a clean store")
	}
}

// The corruption matrix of git data (node stopped): each fault is
// detected — by a refusal to open that names the damage, or by fsck —
// git fsck agrees that something is wrong, and no read returns wrong
// content.
func TestFsck_CorruptionMatrix(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		refuse string // substring of the open error, or "" if it opens
	}{
		{"bit flip in an object", func(t *testing.T, dir string) {
			p := packs(t, dir)[5]
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x40
			os.WriteFile(p, b, 0o644)
		}, ""},
		{"zeroed object bytes", func(t *testing.T, dir string) {
			p := packs(t, dir)[7]
			b, _ := os.ReadFile(p)
			for i := 20; i < 60 && i < len(b)-20; i++ {
				b[i] = 0
			}
			os.WriteFile(p, b, 0o644)
		}, ""},
		{"object deleted but referenced", func(t *testing.T, dir string) {
			p := packs(t, dir)[3]
			os.Remove(p)
			os.Remove(strings.TrimSuffix(p, ".pack") + ".idx")
		}, ""},
		{"truncated pack", func(t *testing.T, dir string) {
			p := packs(t, dir)[2]
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-7)
		}, "trailer does not match"},
		{"truncated index", func(t *testing.T, dir string) {
			idx := strings.TrimSuffix(packs(t, dir)[4], ".pack") + ".idx"
			st, _ := os.Stat(idx)
			os.Truncate(idx, st.Size()-30)
		}, "pack index"},
		{"empty ref file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "repo.git", "refs", "heads", "main"), nil, 0o644)
		}, "refs/heads/main is damaged"},
		{"ref to a missing commit", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "repo.git", "refs", "heads", "main"), []byte(strings.Repeat("ab", 20)+"\n"), 0o644)
		}, "abababab"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, written := damagedStore(t, 20)
			tc.damage(t, dir)
			if !gitFsckFails(t, dir) {
				t.Fatal("git fsck does not see the damage: the case injects nothing")
			}
			s, err := gitstore.Open(dir, gitstore.Options{CacheBytes: 1})
			if tc.refuse != "" {
				if err == nil {
					s.Close()
					t.Fatalf("opened a store with %s", tc.name)
				}
				if !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("refusal does not name the damage: %v", err)
				}
				return
			}
			if err != nil {
				t.Logf("refused to open: %v", err)
				return
			}
			defer s.Close()
			rep, err := s.Fsck(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Clean() {
				t.Fatalf("deep fsck found nothing: %+v", rep)
			}
			t.Logf("fsck: %d problems, first: %s", len(rep.Problems), rep.Problems[0])
			for id, content := range written {
				c, err := s.Get(context.Background(), id)
				if err == nil && c.Content != content {
					t.Fatalf("silently wrong read of %s: %q", id, c.Content)
				}
			}
		})
	}
}

// orphanStore writes 4 contexts (the 2nd, 3rd and 4th children of the
// 1st), closes the store, then removes the parent's file from main with
// stock git: its children are orphans. The store cannot produce one; a
// hand-made commit on main does. It returns the directory and the parent.
func orphanStore(t *testing.T) (string, nexus.ID) {
	t.Helper()
	dir, _ := damagedStore(t, 4)
	gitDir := filepath.Join(dir, "repo.git")
	s := MustOpen(t, dir, gitstore.Options{})
	page, _ := s.List(context.Background(), nexus.Filter{Order: nexus.Oldest})
	parent := page.Contexts[0].ID
	s.Close()
	ls := git(t, gitDir, "ls-tree", "-r", "--name-only", "main")
	var path string
	for _, l := range strings.Split(ls, "\n") {
		if strings.Contains(l, parent.String()) {
			path = l
		}
	}
	idx := filepath.Join(t.TempDir(), "index")
	env := append(os.Environ(), "GIT_INDEX_FILE="+idx)
	run := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("read-tree", "main")
	run("rm", "--cached", "-q", path)
	tree := run("write-tree")
	commit := run("commit-tree", tree, "-p", "main", "-m", "remove a parent")
	run("update-ref", "refs/heads/main", commit)
	run("repack", "-d") // the store reads packs only: pack git's loose objects
	return dir, parent
}

// Orphans (a context whose parent is gone from the snapshot) are reported
// as chain problems, not relinked.
func TestFsck_OrphanReported(t *testing.T) {
	dir, parent := orphanStore(t)
	gitDir := filepath.Join(dir, "repo.git")
	s := MustOpen(t, dir, gitstore.Options{})
	rep, err := s.Fsck(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var chain []gitstore.Problem
	for _, p := range rep.Problems {
		if p.Kind == gitstore.ProblemChain {
			chain = append(chain, p)
		}
	}
	if len(chain) == 0 || !strings.Contains(chain[0].Message, parent.String()) {
		t.Fatalf("orphans not reported: %+v", rep.Problems)
	}
	// Marked durably on refs/nexus/orphans, once; the chain is not relinked.
	ctx := context.Background()
	if due, err := s.OrphansToMark(ctx); err != nil || due == "" {
		t.Fatalf("orphans to mark: %q %v", due, err)
	}
	list, changed, err := s.MarkOrphans(ctx)
	if err != nil || !changed || len(list) != len(chain) || list[0].Parent != parent {
		t.Fatalf("mark: %+v %v %v", list, changed, err)
	}
	if due, _ := s.OrphansToMark(ctx); due != "" {
		t.Fatalf("still due after marking: %q", due)
	}
	if _, changed, _ := s.MarkOrphans(ctx); changed {
		t.Fatal("the same orphans marked twice")
	}
	if h := s.HealthCheckers()[nexus.ComponentStore].CheckHealth(ctx); h.Details["orphans"] != len(chain) {
		t.Fatalf("health: %+v", h)
	}
	if _, err := s.Chain(ctx, list[0].ID, 0); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("chain of an orphan: %v", err)
	}
	s.Close()
	if n := strings.Count(git(t, gitDir, "log", "--format=%s", "refs/nexus/orphans"), "\n"); n != 1 {
		t.Fatalf("%d commits on refs/nexus/orphans", n)
	}
	if marked := git(t, gitDir, "show", "refs/nexus/orphans:orphans.json"); !strings.Contains(marked, list[0].ID.String()) || !strings.Contains(marked, parent.String()) {
		t.Fatalf("orphans.json: %s", marked)
	}
	s = MustOpen(t, dir, gitstore.Options{})
	if got, err := s.Orphans(ctx); err != nil || len(got) != len(list) || !got[0].Found.Equal(list[0].Found) {
		t.Fatalf("orphans after reopen: %+v %v", got, err)
	}
	if rep, err := s.Fsck(ctx, true); err != nil || len(rep.Problems) != len(chain) {
		t.Fatalf("deep check with the mark: %v %+v", err, rep)
	}
}
