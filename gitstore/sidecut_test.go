package gitstore_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// newPacks runs f and returns the packs it added.
func newPacks(t *testing.T, dir string, f func()) []string {
	t.Helper()
	before, _ := filepath.Glob(filepath.Join(dir, "repo.git", "objects", "pack", "pack-*.pack"))
	f()
	after, _ := filepath.Glob(filepath.Join(dir, "repo.git", "objects", "pack", "pack-*.pack"))
	var added []string
	for _, p := range after {
		if !slices.Contains(before, p) {
			added = append(added, p)
		}
	}
	if len(added) == 0 {
		t.Fatal("no pack was added")
	}
	return added
}

func removePacks(t *testing.T, ps []string) {
	t.Helper()
	for _, p := range ps {
		for _, f := range []string{p, strings.TrimSuffix(p, ".pack") + ".idx"} {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func segments(t *testing.T, s *gitstore.Store, name string) []string {
	t.Helper()
	var out []string
	if err := s.SideLog().Walk(context.Background(), name, func(seg []byte) error {
		out = append(out, string(seg))
		return nil
	}); err != nil {
		t.Fatalf("walk %s: %v", name, err)
	}
	return out
}

// A side log's commits written after the newest backup, then lost with
// their pack, cannot be repaired from anywhere: the repair cuts the log
// back to the backup's version (or starts it again when the backup has
// none), says so, and the store is whole again: a deep check and git fsck
// are clean and the log takes appends. Damage elsewhere is still refused.
// The source is a backup bundle or a mirror: both are read for the ref.
func TestRepairFrom_CutsLostSideLog(t *testing.T) {
	t.Run("bundle", func(t *testing.T) {
		testCutsLostSideLog(t, func(t *testing.T, s *gitstore.Store) string {
			info, err := s.Backup(context.Background(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return info.Path
		})
	})
	t.Run("mirror", func(t *testing.T) {
		testCutsLostSideLog(t, func(t *testing.T, s *gitstore.Store) string {
			mirror := filepath.Join(t.TempDir(), "mirror.git")
			if _, err := s.PushMirror(context.Background(), mirror); err != nil {
				t.Fatal(err)
			}
			return mirror
		})
	})
}

func testCutsLostSideLog(t *testing.T, backup func(*testing.T, *gitstore.Store) string) {
	ctx := context.Background()
	opts := gitstore.Options{MergePacks: 1 << 20}
	dir := t.TempDir()
	s := MustOpen(t, dir, opts)
	log := s.SideLog()
	c := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "kept"})
	for _, seg := range []string{"one", "two"} {
		if err := log.Append(ctx, "embeddings/m", []byte(seg)); err != nil {
			t.Fatal(err)
		}
	}
	source := backup(t, s)
	atBackup := strings.TrimSpace(git(t, filepath.Join(dir, "repo.git"), "rev-parse", "refs/nexus/embeddings/m"))
	lost := newPacks(t, dir, func() {
		for _, seg := range []string{"three", "four"} {
			if err := log.Append(ctx, "embeddings/m", []byte(seg)); err != nil {
				t.Fatal(err)
			}
		}
		if err := log.Append(ctx, "embeddings/late", []byte("only after the backup")); err != nil {
			t.Fatal(err)
		}
	})
	s.Close()
	removePacks(t, lost)

	s = MustOpen(t, dir, opts)
	if rep, err := s.Fsck(ctx, true); err != nil || rep.Clean() {
		t.Fatalf("deep check with the side logs' packs lost: %v, clean %v", err, rep.Clean())
	}
	did, err := s.RepairFrom(ctx, []string{source})
	if err != nil {
		t.Fatalf("repair: %v (did %s)", err, did)
	}
	for _, want := range []string{
		"refs/nexus/embeddings/late named ", "started again",
		"refs/nexus/embeddings/m named ", "cut back to " + atBackup + ", as " + source + " holds it",
		"deep check clean",
	} {
		if !strings.Contains(did, want) {
			t.Fatalf("repair said %q, want it to say %q", did, want)
		}
	}
	if got := segments(t, s, "embeddings/m"); !slices.Equal(got, []string{"two", "one"}) {
		t.Fatalf("embeddings/m after the cut: %q, want the backup's [two one]", got)
	}
	if got := segments(t, s, "embeddings/late"); len(got) != 0 {
		t.Fatalf("embeddings/late after the cut: %q, want none", got)
	}
	if err := s.SideLog().Append(ctx, "embeddings/m", []byte("five")); err != nil {
		t.Fatal(err)
	}
	if got := segments(t, s, "embeddings/m"); !slices.Equal(got, []string{"five", "two", "one"}) {
		t.Fatalf("embeddings/m after an append: %q", got)
	}
	if rep, err := s.Fsck(ctx, true); err != nil || !rep.Clean() {
		t.Fatalf("deep check after the repair: %v %+v", err, rep)
	}
	if g, err := s.Get(ctx, c.ID); err != nil || g.Content != "kept" {
		t.Fatalf("context after the repair: %v", err)
	}
	s.Close()
	if gitFsckFails(t, dir) {
		t.Fatal("git fsck fails after the cut")
	}

	// A commit of main lost as well (in the middle of its history, so the
	// store opens): nothing is cut, the repair is refused.
	s = MustOpen(t, dir, opts)
	lost = newPacks(t, dir, func() {
		mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "after the backup"})
		if err := s.SideLog().Append(ctx, "embeddings/m", []byte("six")); err != nil {
			t.Fatal(err)
		}
	})
	mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "the head"})
	tip := strings.TrimSpace(git(t, filepath.Join(dir, "repo.git"), "rev-parse", "refs/nexus/embeddings/m"))
	s.Close()
	removePacks(t, lost)
	s = MustOpen(t, dir, opts)
	if _, err := s.Fsck(ctx, true); err != nil {
		t.Fatal(err)
	}
	did, err = s.RepairFrom(ctx, []string{source})
	if err == nil || !strings.Contains(err.Error(), "not in the backup") || strings.Contains(did, "cut back") || strings.Contains(did, "started again") {
		t.Fatalf("damage on main and a side log: repair said %q, %v; want refused, nothing cut", did, err)
	}
	if now := strings.TrimSpace(git(t, filepath.Join(dir, "repo.git"), "rev-parse", "refs/nexus/embeddings/m")); now != tip {
		t.Fatalf("the side ref moved from %s to %s though the repair was refused", tip, now)
	}
}
