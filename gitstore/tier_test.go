package gitstore

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
)

// mergeAll runs merges of fan-in fanIn and byte budget budget until no
// tier is full, as the background merger does, and returns the number of
// packs and bytes each merge took.
func mergeAll(t *testing.T, s *Store, fanIn int, budget int64) (packs []int, bytes []int64) {
	t.Helper()
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	for {
		cands := s.repo.mergeCandidates(fanIn, budget)
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

// tierCounts returns the packs of s under limit bytes (the ones a merge
// may take) by merge tier, and the lowest and highest tier that holds
// one.
func tierCounts(s *Store, limit int64) (map[int]int, int, int) {
	s.repo.mu.RLock()
	defer s.repo.mu.RUnlock()
	counts := map[int]int{}
	lo, hi := 1<<30, -1
	for _, p := range s.repo.packs {
		if p.size >= limit {
			continue
		}
		tr := packTier(p.size)
		counts[tr]++
		lo, hi = min(lo, tr), max(hi, tr)
	}
	return counts, lo, hi
}

// A long fill, with a merger that keeps up and one that falls behind:
// a merger that keeps up merges exactly fan-in packs of one tier; one
// that fell behind takes the waiting packs of a tier together, as many as
// its byte budget holds (so each is rewritten once at that tier), and
// never more bytes than the budget; after the merges no tier holds
// fan-in packs, the pack count stays under (fanIn-1) per tier between the
// smallest pack's tier and the largest's, every context reads back from
// the tiers with the cache off, and stock git accepts the repository.
func TestMerge_BoundedTiers(t *testing.T) {
	const fanIn = 4
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 1 << 20}) // the test runs the merges itself
	if err != nil {
		t.Fatal(err)
	}
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	// settled checks the packs a merge of that budget may take (under
	// budget/fanIn; the larger are left alone).
	settled := func(what string, budget int64) {
		t.Helper()
		counts, lo, hi := tierCounts(s, budget/fanIn)
		total := 0
		for tr, n := range counts {
			if n >= fanIn {
				t.Fatalf("%s: tier %d holds %d packs after the merges (fan-in %d): %v", what, tr, n, fanIn, counts)
			}
			total += n
		}
		if bound := (fanIn - 1) * (hi - lo + 1); total > bound {
			t.Fatalf("%s: %d packs, bound (fanIn-1)*(tiers %d..%d) = %d", what, total, lo, hi, bound)
		}
	}
	// A merger that keeps up: it runs after every group commit.
	var merges int
	for i := 0; i < 150; i++ {
		fill(t, s, &gen, &at, 40, 40)
		p, _ := mergeAll(t, s, fanIn, maxMergeBytes)
		merges += len(p)
		for k, n := range p {
			if n != fanIn {
				t.Fatalf("keeping up: merge %d took %d packs, want exactly %d", k, n, fanIn)
			}
		}
		settled("keeping up", maxMergeBytes)
	}
	if merges < 40 {
		t.Fatalf("%d merges for 150 group commits", merges)
	}
	if _, lo, hi := tierCounts(s, maxMergeBytes); hi-lo < 2 {
		t.Fatalf("packs span tiers %d..%d: the fill does not reach several tiers", lo, hi)
	}

	// A merger that fell behind by 120 group commits, with a budget of
	// about 30 of their packs: merges of as many waiting packs as fit.
	s.repo.mu.RLock()
	one := s.repo.packs[0].size // the last group commit's
	s.repo.mu.RUnlock()
	budget := 30 * one
	fill(t, s, &gen, &at, 120*40, 40)
	if n := s.packCount(); n < 120 {
		t.Fatalf("%d packs after 120 group commits unmerged", n)
	}
	p, b := mergeAll(t, s, fanIn, budget)
	if len(p) == 0 || p[0] < 20 {
		t.Fatalf("falling behind, budget %d bytes (≈ 30 packs of %d): merges took %v packs; want the first to take 20 or more", budget, one, p)
	}
	for k := range p {
		if p[k] < fanIn || b[k] > budget {
			t.Fatalf("falling behind: merge %d took %d packs, %d bytes (fan-in %d, budget %d)", k, p[k], b[k], fanIn, budget)
		}
	}
	settled("falling behind, small budget", budget)

	// Behind again, with the store's budget: the waiting packs of the
	// tier go in one merge, each rewritten once there.
	fill(t, s, &gen, &at, 120*40, 40)
	p, _ = mergeAll(t, s, fanIn, maxMergeBytes)
	if len(p) == 0 || p[0] < 120 {
		t.Fatalf("falling behind, budget %d: merges took %v packs; want the first to take the 120 waiting", maxMergeBytes, p)
	}
	settled("falling behind", maxMergeBytes)
	live := liveCatalog(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{CacheBytes: 1, MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(live.ordered) != 150*40+2*120*40 {
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

// MergeAll leaves no size tier full.
func TestMergeAll_Settles(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MergePacks: 1 << 20}) // no background merging
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 40 {
		if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("ctx ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.mergeMu.Lock() // the merger reads it under the lock
	s.opts.MergePacks = 4
	s.mergeMu.Unlock()
	n, err := s.MergeAll()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("MergeAll ran no merge on 40 packs of one tier")
	}
	if c := s.repo.mergeCandidates(4, maxMergeBytes); c != nil {
		t.Fatalf("a tier is still full after %d merges: %d candidates", n, len(c))
	}
}
