package gitstore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// A backup is a verified bundle; restoring it into a new data directory
// gives a store with every context, a clean fsck and the side refs; a
// truncated or damaged bundle is refused; retention keeps the newest.
func TestBackup_RoundTrip(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, "", gitstore.Options{})
	var ids []nexus.ID
	for i := range 30 {
		ids = append(ids, mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: strings.Repeat("backup me ", i+1)}).ID)
	}
	if _, err := s.AppendSide(ctx, "embeddings/m", map[string][]byte{"segment": []byte("vectors")}, "seg"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	info, err := s.Backup(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Head != s.Head().String() || info.Refs != 2 || info.Bytes == 0 {
		t.Fatalf("backup info %+v", info)
	}
	data := filepath.Join(t.TempDir(), "restored")
	if _, err := gitstore.RestoreBackup(ctx, info.Path, data); err != nil {
		t.Fatal(err)
	}
	r := MustOpen(t, data, gitstore.Options{})
	for _, id := range ids {
		if _, err := r.Get(ctx, id); err != nil {
			t.Fatalf("restored store lacks %s: %v", id, err)
		}
	}
	var segs int
	r.WalkSide(ctx, "embeddings/m", func(map[string][]byte) error { segs++; return nil })
	if rep, err := r.Fsck(ctx, true); err != nil || !rep.Clean() || segs != 1 || r.Head() != s.Head() {
		t.Fatalf("restored: %v %+v, %d segments, head %s", err, rep, segs, r.Head())
	}
	if _, err := gitstore.RestoreBackup(ctx, info.Path, data); nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("restore over a repository: %v", err)
	}
	b, _ := os.ReadFile(info.Path)
	for name, bad := range map[string][]byte{"truncated": b[:len(b)-100], "bit flip": flip(b, len(b)-200), "empty": nil} {
		p := filepath.Join(t.TempDir(), "bad.bundle")
		os.WriteFile(p, bad, 0o644)
		if _, err := gitstore.VerifyBackup(ctx, p); err == nil {
			t.Errorf("%s bundle verified", name)
		}
		if _, err := gitstore.RestoreBackup(ctx, p, filepath.Join(t.TempDir(), "x")); err == nil {
			t.Errorf("%s bundle restored", name)
		}
	}
	for range 3 {
		mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "more"})
		if _, err := s.Backup(ctx, dir); err != nil {
			t.Fatal(err)
		}
	}
	gone, err := gitstore.PruneBackups(dir, 2)
	list, _ := gitstore.ListBackups(dir)
	if err != nil || len(gone) != 2 || len(list) != 2 || list[0].Head != s.Head().String()[:12] {
		t.Fatalf("prune: %v, gone %v, left %+v", err, gone, list)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x20
	return c
}

// A backup taken while writes go on succeeds and holds at least every
// context acknowledged before it started.
func TestBackup_DuringWrites(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, "", gitstore.Options{})
	before := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "before"})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: strings.Repeat("w", i%50+1)})
		}
	}()
	dir := t.TempDir()
	var infos []*gitstore.BackupInfo
	for range 3 {
		info, err := s.Backup(ctx, dir)
		if err != nil {
			close(stop)
			<-done
			t.Fatalf("backup during writes: %v", err)
		}
		infos = append(infos, info)
		time.Sleep(1100 * time.Millisecond)
	}
	close(stop)
	<-done
	data := filepath.Join(t.TempDir(), "r")
	if _, err := gitstore.RestoreBackup(ctx, infos[0].Path, data); err != nil {
		t.Fatal(err)
	}
	r := MustOpen(t, data, gitstore.Options{})
	if _, err := r.Get(ctx, before.ID); err != nil || r.Head().String() != infos[0].Head {
		t.Fatalf("restored: %v, head %s vs %s", err, r.Head(), infos[0].Head)
	}
}

// Damaged objects are repaired in place from a backup that holds them;
// those written after the backup are reported, not invented.
func TestRepairFromBackup(t *testing.T) {
	ctx := context.Background()
	dir, written := damagedStore(t, 20)
	s, err := gitstore.Open(dir, gitstore.Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Backup(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ps := packs(t, dir)
	b, _ := os.ReadFile(ps[5])
	b[len(b)/2] ^= 0x40
	os.WriteFile(ps[5], b, 0o644)
	s, err = gitstore.Open(dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.RepairFromBackup(ctx, info.Path)
	if err != nil || len(rep.Restored) == 0 || len(rep.Salvaged) == 0 || len(rep.Unrepaired) != 0 {
		t.Fatalf("repair: %v %+v", err, rep)
	}
	if fr, err := s.Fsck(ctx, true); err != nil || !fr.Clean() {
		t.Fatalf("after repair: %v %+v", err, fr)
	}
	checkRepaired(t, s, dir, written)
	// A context written after the backup, then its pack damaged.
	s = MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	late := mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "written after the backup"})
	s.Close()
	ps = packs(t, dir)
	b = mustRead(t, ps[len(ps)-1])
	b[len(b)/2] ^= 0x40
	os.WriteFile(ps[len(ps)-1], b, 0o644)
	s = MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	rep, err = s.RepairFromBackup(ctx, info.Path)
	if err == nil || len(rep.Unrepaired) == 0 {
		t.Fatalf("damage to %s (after the backup) repaired from nowhere: %v %+v", late.ID, err, rep)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An idle node writes no identical bundles: BackupIfChanged writes one
// only when a ref moved since the newest backup, main or any other, or
// when the newest backup fails its checksum.
func TestStore_BackupIfChanged(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, "", gitstore.Options{})
	mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "first"})
	dir := t.TempDir()
	step := func(what string, wantWritten bool, wantBundles int) *gitstore.BackupInfo {
		t.Helper()
		info, written, err := s.BackupIfChanged(ctx, dir)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		list, err := gitstore.ListBackups(dir)
		if err != nil {
			t.Fatal(err)
		}
		if written != wantWritten || len(list) != wantBundles || list[0].Path != info.Path {
			t.Fatalf("%s: written %v, %d bundles, newest %s, returned %+v; want written %v, %d bundles",
				what, written, len(list), list[0].Path, info, wantWritten, wantBundles)
		}
		return info
	}
	first := step("first backup", true, 1)
	if again := step("no write since", false, 1); *again != *first {
		t.Fatalf("the current backup is %+v, want %+v", again, first)
	}
	if first.Head != s.Head().String() || first.Refs != 1 {
		t.Fatalf("first backup: %+v", first)
	}

	mustPut(t, s, nexus.Draft{Type: nexus.TypeMemory, Content: "second"})
	if info := step("a write to main", true, 2); info.Head != s.Head().String() {
		t.Fatalf("after a write: %+v, head %s", info, s.Head())
	}
	step("no write since", false, 2)

	side, err := s.AppendSide(ctx, "embeddings/m", map[string][]byte{"segment": []byte("vectors")}, "seg")
	if err != nil {
		t.Fatal(err)
	}
	info := step("a side ref moved, main did not", true, 3)
	if info.Head != s.Head().String() || info.Refs != 2 {
		t.Fatalf("after the side ref: %+v", info)
	}
	heads := git(t, s.GitDir(), "bundle", "list-heads", info.Path)
	if !strings.Contains(heads, side.String()+" refs/nexus/embeddings/m\n") {
		t.Fatalf("the bundle lacks the side ref at %s:\n%s", side, heads)
	}
	step("no write since", false, 3)

	b := mustRead(t, info.Path)
	if err := os.WriteFile(info.Path, flip(b, len(b)-100), 0o644); err != nil {
		t.Fatal(err)
	}
	step("the newest backup is damaged", true, 4)
	step("no write since", false, 4)
}

// Two packs lost whose commits are apart on main: the deep check stops at
// the newer missing commit and cannot see the older one below it, and a
// repair restores a lost commit's history only down to the first commit
// the repository has. RepairFrom goes round again with the same backup
// while each round restores something, and ends clean; with one round
// (maxRepairRounds 1) the older commit stays missing.
func TestRepairFrom_LostCommitsApartOnMain(t *testing.T) {
	ctx := context.Background()
	dir, written, backup := lostApartOnMain(t)
	s := MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	defer s.Close()
	did, err := s.RepairFrom(ctx, []string{backup})
	if err != nil {
		t.Fatalf("repair: %v (did: %s)", err, did)
	}
	if fr, err := s.Fsck(ctx, true); err != nil || !fr.Clean() {
		t.Fatalf("after the repair (%s): %v %+v", did, err, fr)
	}
	checkRepaired(t, s, dir, written)
}

// checkRepaired fails unless every context of written reads back from s
// with its content, and stock git fsck passes on the repository once s is
// closed.
func checkRepaired(t *testing.T, s *gitstore.Store, dir string, written map[nexus.ID]string) {
	t.Helper()
	for id, content := range written {
		if c, err := s.Get(context.Background(), id); err != nil || c.Content != content {
			t.Fatalf("%s after the repair: %v", id, err)
		}
	}
	s.Close()
	if gitFsckFails(t, dir) {
		t.Fatal("git fsck fails after the repair")
	}
}

// The rounds of one repair stop at maxRepairRounds: with one, the repair
// of the two packs lost apart on main restores the newer commit's
// objects and fails on the older one, which the check before the round
// could not see; the next repair, one round again, restores it.
func TestRepairFrom_RoundsBounded(t *testing.T) {
	ctx := context.Background()
	gitstore.SetMaxRepairRounds(t, 1)
	dir, _, backup := lostApartOnMain(t)
	s := MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	defer s.Close()
	did, err := s.RepairFrom(ctx, []string{backup})
	if err == nil || !strings.Contains(err.Error(), "still damaged") {
		t.Fatalf("first repair: %v (did: %s), want the older commit still damaged", err, did)
	}
	if fr, err := s.Fsck(ctx, true); err != nil || fr.Clean() {
		t.Fatalf("after the first repair: %v, clean %v", err, fr.Clean())
	}
	if did, err := s.RepairFrom(ctx, []string{backup}); err != nil {
		t.Fatalf("second repair: %v (did: %s)", err, did)
	}
	if fr, err := s.Fsck(ctx, true); err != nil || !fr.Clean() {
		t.Fatalf("after the second repair: %v %+v", err, fr)
	}
}

// A deep check that fails to run after a round of repair leaves the
// repair unable to say where it stands: RepairFrom returns that error at
// once, saying what the round restored, and tries no other source.
// Without the stop the second source is tried and the error is another.
func TestRepairFrom_CheckFailsAfterRound(t *testing.T) {
	ctx := context.Background()
	dir, _, backup := lostApartOnMain(t)
	s := MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20, CacheBytes: 1})
	defer s.Close()
	broken := errors.New("deep check cannot read the repository")
	gitstore.FailRepairCheck(t, broken)
	did, err := s.RepairFrom(ctx, []string{backup, backup})
	if !errors.Is(err, broken) {
		t.Fatalf("repair: %v, want the failed check's error", err)
	}
	if n := strings.Count(did, "restored from"); n != 1 {
		t.Fatalf("repair did %q: %d sources restored from, want the first only", did, n)
	}
}

// lostApartOnMain returns a store of 12 group commits, each its own pack,
// backed up and then missing the packs of two commits apart on main, the
// contexts written to it, and the backup's path.
func lostApartOnMain(t *testing.T) (string, map[nexus.ID]string, string) {
	ctx := context.Background()
	dir, written := damagedStore(t, 12)
	s := MustOpen(t, dir, gitstore.Options{MergePacks: 1 << 20})
	info, err := s.Backup(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	gitDir := filepath.Join(dir, "repo.git")
	commits := strings.Fields(git(t, gitDir, "rev-list", "refs/heads/main"))
	for _, lost := range []string{commits[3], commits[8]} {
		held := 0
		for _, p := range packs(t, dir) {
			idx := strings.TrimSuffix(p, ".pack") + ".idx"
			cmd := exec.Command("git", "show-index")
			cmd.Stdin = bytes.NewReader(mustRead(t, idx))
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), lost) {
				held++
				os.Remove(p)
				os.Remove(idx)
			}
		}
		if held != 1 {
			t.Fatalf("commit %s is in %d packs, want 1 (each group commit its own pack)", lost, held)
		}
	}
	return dir, written, info.Path
}
