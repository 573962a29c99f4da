package gitstore

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// mergeAll runs merges of fan-in fanIn until no tier is full, as the
// background merger does when it keeps up, and returns the number of
// packs and bytes each merge took.
func mergeAll(t *testing.T, s *Store, fanIn int) (packs []int, bytes []int64) {
	t.Helper()
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	for {
		cands := s.repo.mergeCandidates(fanIn)
		if len(cands) == 0 {
			return packs, bytes
		}
		var total int64
		for _, p := range cands {
			total += p.size
		}
		if err := s.merge(cands); err != nil {
			t.Fatal(err)
		}
		packs, bytes = append(packs, len(cands)), append(bytes, total)
	}
}

// tierCounts returns the packs of s by merge tier, and the lowest and
// highest tier that holds one.
func tierCounts(s *Store) (map[int]int, int, int) {
	s.repo.mu.RLock()
	defer s.repo.mu.RUnlock()
	counts := map[int]int{}
	lo, hi := 1<<30, -1
	for _, p := range s.repo.packs {
		tr := packTier(p.size)
		counts[tr]++
		lo, hi = min(lo, tr), max(hi, tr)
	}
	return counts, lo, hi
}

// A long fill, with a merger that keeps up and one that falls behind:
// no merge ever takes more than one tier's fan-in of packs of one tier,
// the bytes a merge takes are bounded by its tier, the pack count stays
// under (fanIn-1) per tier between the smallest pack's tier and the
// largest's, every context reads back from the tiers with the cache off,
// and stock git accepts the repository.
func TestMerge_BoundedTiers(t *testing.T) {
	const fanIn = 4
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 1 << 20}) // the test runs the merges itself
	if err != nil {
		t.Fatal(err)
	}
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	check := func(what string, packs []int, bytes []int64) {
		t.Helper()
		for i, n := range packs {
			if n != fanIn {
				t.Fatalf("%s: merge %d took %d packs, want exactly %d", what, i, n, fanIn)
			}
		}
		counts, lo, hi := tierCounts(s)
		for tr, n := range counts {
			if n >= fanIn {
				t.Fatalf("%s: tier %d holds %d packs after the merges (fan-in %d): %v", what, tr, n, fanIn, counts)
			}
		}
		if n, bound := s.packCount(), (fanIn-1)*(hi-lo+1); n > bound {
			t.Fatalf("%s: %d packs, bound (fanIn-1)*(tiers %d..%d) = %d", what, n, lo, hi, bound)
		}
		for i, b := range bytes {
			// fanIn packs of one tier: each under 8^(tier+1) bytes.
			if tr := packTier(b / fanIn); b >= int64(fanIn)<<(3*(tr+1)) {
				t.Fatalf("%s: merge %d took %d bytes, over %d packs of tier %d", what, i, b, fanIn, tr)
			}
		}
	}
	// A merger that keeps up: it runs after every group commit.
	var merges int
	for i := 0; i < 150; i++ {
		fill(t, s, &gen, &at, 40, 40)
		p, b := mergeAll(t, s, fanIn)
		merges += len(p)
		check("keeping up", p, b)
	}
	if merges < 40 {
		t.Fatalf("%d merges for 150 group commits", merges)
	}
	// A merger that fell behind: 120 group commits wait, then it
	// catches up tier by tier, fanIn packs at a time.
	fill(t, s, &gen, &at, 120*40, 40)
	if n := s.packCount(); n < 120 {
		t.Fatalf("%d packs after 120 group commits unmerged", n)
	}
	p, b := mergeAll(t, s, fanIn)
	if len(p) < 120/fanIn {
		t.Fatalf("caught up in %d merges; 120 packs need at least %d of fan-in %d", len(p), 120/fanIn, fanIn)
	}
	check("falling behind", p, b)
	_, lo, hi := tierCounts(s)
	if hi-lo < 2 {
		t.Fatalf("packs span tiers %d..%d: the fill does not reach several tiers", lo, hi)
	}
	live := liveCatalog(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{CacheBytes: 1, MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(live.ordered) != 150*40+120*40 {
		t.Fatalf("%d contexts", len(live.ordered))
	}
	for _, e := range live.ordered {
		raw, err := s.GetRaw(context.Background(), e.id)
		if err != nil {
			t.Fatalf("read %s across tiers: %v", e.id, err)
		}
		if h := hashObject(objBlob, raw); h != e.blob {
			t.Fatalf("read %s: blob %s, want %s", e.id, h, e.blob)
		}
	}
	out, err := exec.Command("git", "--git-dir", s.GitDir(), "fsck", "--full", "--strict", "--no-dangling").CombinedOutput()
	if err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}

// An index damaged inside (one object id flipped, its structure intact)
// is not hashed at open, so the store opens; the deep fsck reports it as
// pack damage, a merge refuses to copy the pack, no read returns wrong
// content, and stock git sees the damage too. The repair rebuilds the
// index, after which the deep fsck and stock git are clean.
func TestOpen_IndexDamageFoundByFsckAndMerge(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	fill(t, s, &gen, &at, 400, 50)
	live := liveCatalog(s)
	backup, err := s.Backup(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.repo.mu.RLock()
	victim := s.repo.packs[3]
	s.repo.mu.RUnlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	idxPath := filepath.Join(dir, "repo.git", "objects", "pack", victim.name+".idx")
	b, err := os.ReadFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	b[idxHeadLen+20*5+19] ^= 0x01 // the last byte of an id: order and fan-out stay right
	if err := os.WriteFile(idxPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := parseIndex(b); err == nil {
		t.Fatal("the damage is not visible to a full check: the test injects nothing")
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(dir, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err == nil {
		t.Fatalf("git fsck does not see the damage:\n%s", out)
	}
	s, err = Open(dir, Options{MergePacks: 1 << 20, CacheBytes: 1})
	if err != nil {
		t.Fatalf("open with an index damaged inside: %v", err)
	}
	defer s.Close()
	rep, err := s.Fsck(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		if p.Kind == ProblemPack && p.Object == victim.name+".idx" && strings.Contains(p.Message, "checksum mismatch") {
			found = true
		}
	}
	if !found {
		t.Fatalf("deep fsck does not report the damaged index: %+v", rep.Problems)
	}
	s.repo.mu.RLock()
	var cands []*pack
	for _, p := range s.repo.packs {
		if p.name == victim.name || len(cands) < 2 {
			cands = append(cands, p)
		}
	}
	s.repo.mu.RUnlock()
	s.mergeMu.Lock()
	err = s.merge(cands)
	s.mergeMu.Unlock()
	if err == nil || !strings.Contains(err.Error(), victim.name+".idx") {
		t.Fatalf("merge of a pack with a damaged index: %v", err)
	}
	for _, e := range live.ordered {
		raw, err := s.GetRaw(context.Background(), e.id)
		if err == nil && hashObject(objBlob, raw) != e.blob {
			t.Fatalf("silently wrong read of %s", e.id)
		}
	}
	// The repair rebuilds the index from its pack (git index-pack) and
	// restores what the damaged id hid; then every check is clean.
	rrep, err := s.RepairFromBackup(context.Background(), backup.Path)
	if err != nil || !slices.Contains(rrep.Salvaged, victim.name+".idx") || len(rrep.Unrepaired) != 0 {
		t.Fatalf("repair: %v %+v", err, rrep)
	}
	if rep, err := s.Fsck(context.Background(), true); err != nil || !rep.Clean() {
		t.Fatalf("deep fsck after the repair: %v %+v", err, rep)
	}
	for _, e := range live.ordered {
		raw, err := s.GetRaw(context.Background(), e.id)
		if err != nil || hashObject(objBlob, raw) != e.blob {
			t.Fatalf("read %s after the repair: %v", e.id, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(dir, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck after the repair: %v\n%s", err, out)
	}
}
