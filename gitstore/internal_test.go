package gitstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// A tree cache smaller than one batch must not lose trees that the batch
// created and that are in no pack yet.
func TestTrees_SmallCacheAcrossBatches(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.trees.max = 10
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint(w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.VerifyCatalog(); err != nil {
		t.Fatal(err)
	}
}

// A cache entry whose bytes changed is detected by its checksum, dropped,
// counted, and the read is served from git.
func TestCache_CorruptEntryReloaded(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "cached"})
	if err != nil {
		t.Fatal(err)
	}
	b := s.cache.get(c.ID)
	if b == nil {
		t.Fatal("a new context is not in the cache")
	}
	b[len(b)-3] ^= 0x20 // flip a bit inside the cached copy
	got, err := s.Get(context.Background(), c.ID)
	if err != nil || got.Content != "cached" {
		t.Fatalf("get after cache damage: %+v %v", got, err)
	}
	if st := s.CacheStats(); st.CorruptDrops != 1 {
		t.Fatalf("corrupt drops = %d, want 1", st.CorruptDrops)
	}
	// The cache is degraded until a recovery re-verifies and empties it.
	if h := s.cacheHealth(context.Background()); h.Status != nexus.StatusDegraded || !strings.Contains(h.Error, "1 cache entries failed") {
		t.Fatalf("cache health after damage: %+v", h)
	}
	if n := s.RecoverCache(); n != 0 {
		t.Fatalf("recovery found %d more bad entries", n)
	}
	if st := s.CacheStats(); st.Entries != 0 || st.ClearedDrops != 1 {
		t.Fatalf("after recovery: %+v", st)
	}
	if h := s.cacheHealth(context.Background()); h.Status != nexus.StatusHealthy {
		t.Fatalf("cache health after recovery: %+v", h)
	}
}

// Many small group commits are merged in the background; every context
// stays readable and stock git accepts the result.
func TestMerge_ManySmallPacks(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 4})
	if err != nil {
		t.Fatal(err)
	}
	var ids []nexus.ID
	for i := 0; i < 200; i++ {
		c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("ctx ", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.packCount() < 50 {
			break
		}
	}
	if n := s.packCount(); n >= 50 {
		t.Fatalf("%d packs after 200 commits: nothing merged", n)
	}
	s.Close()
	s, err = Open(dir, Options{CacheBytes: 1, MergePacks: 1 << 20}) // no cache: reads come from the packs; no merging
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.repo.mu.RLock()
	all := append([]*pack(nil), s.repo.packs...)
	s.repo.mu.RUnlock()
	if n := deltaCount(t, all); n == 0 {
		t.Fatal("no merged pack holds a delta")
	}
	for _, id := range ids {
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("git", "--git-dir", s.GitDir(), "fsck", "--full", "--strict").CombinedOutput()
	if err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}

// deltaCount returns how many entries of packs are deltas.
func deltaCount(t *testing.T, packs []*pack) int {
	n := 0
	for _, p := range packs {
		for _, e := range p.idx.entries() {
			var b [1]byte
			if _, err := p.f.ReadAt(b[:], int64(e.offset)); err != nil {
				t.Fatal(err)
			}
			if ty := objType(b[0] >> 4 & 7); ty == objOfsDelta || ty == objRefDelta {
				n++
			}
		}
	}
	return n
}

func (s *Store) packCount() int {
	s.repo.mu.RLock()
	defer s.repo.mu.RUnlock()
	return len(s.repo.packs)
}

// Packs written by stock git (with deltas, or repeating objects of other
// packs) take the object-by-object merge path; the result is complete and
// stock git accepts it.
func TestMerge_PacksFromStockGit(t *testing.T) {
	for name, repack := range map[string][]string{
		"deltas":     {"repack", "-a", "-d", "-f", "--window=250", "--depth=50"},
		"duplicates": {"repack", "-a", "--window=0"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{MergePacks: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			var ids []nexus.ID
			put := func(i int) {
				c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("a context that looks much like the others, number ", i)})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, c.ID)
			}
			for i := 0; i < 40; i++ {
				put(i)
			}
			gitDir := s.GitDir()
			s.Close()
			if out, err := exec.Command("git", append([]string{"--git-dir", gitDir}, repack...)...).CombinedOutput(); err != nil {
				t.Fatalf("git repack: %v\n%s", err, out)
			}
			if s, err = Open(dir, Options{MergePacks: 1 << 20, CacheBytes: 1}); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := 40; i < 45; i++ {
				put(i)
			}
			s.repo.mu.RLock()
			all := append([]*pack(nil), s.repo.packs...)
			s.repo.mu.RUnlock()
			if n := deltaCount(t, all); name == "deltas" && n == 0 {
				t.Fatal("git repack wrote no delta")
			}
			if err := s.merge(all); err != nil {
				t.Fatal(err)
			}
			if n := s.packCount(); n != 1 {
				t.Fatalf("%d packs after merging all", n)
			}
			for _, id := range ids {
				if _, err := s.Get(context.Background(), id); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := exec.Command("git", "--git-dir", gitDir, "fsck", "--full", "--strict").CombinedOutput(); err != nil {
				t.Fatalf("git fsck: %v\n%s", err, out)
			}
		})
	}
}

func TestCache_Resize(t *testing.T) {
	c := newCache(1 << 20)
	var ids []nexus.ID
	var gen nexus.IDGenerator
	for range 100 {
		id := gen.New(time.Now())
		ids = append(ids, id)
		c.put(id, make([]byte, 4000))
	}
	if st := c.stats(); st.Entries != 100 {
		t.Fatalf("%d entries", st.Entries)
	}
	c.get(ids[0]) // most recently used now
	c.resize(10 * (4000 + itemOverhead))
	st := c.stats()
	if st.Entries != 10 || st.Bytes > st.MaxBytes || c.get(ids[0]) == nil || c.get(ids[1]) != nil {
		t.Fatalf("after shrinking: %+v", st)
	}
}

// Cache entries that fail their checksum are derived state: the repair
// re-verifies and empties the cache, and its health is clear again.
func TestStore_RepairDerived_Cache(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "cached"})
	if err != nil {
		t.Fatal(err)
	}
	b := s.cache.get(c.ID)
	if b == nil {
		t.Fatal("a new context is not in the cache")
	}
	b[len(b)-3] ^= 0x20
	rep, err := s.Fsck(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemCache {
		t.Fatalf("deep check: %+v", rep.Problems)
	}
	if h := s.cacheHealth(ctx); h.Status != nexus.StatusDegraded {
		t.Fatalf("cache health before the repair: %+v", h)
	}
	got, err := s.RepairDerived(ctx, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []Repair{{Kind: ProblemCache, Damage: "cache: 1 cache entries failed their checksum and were dropped",
		Action: "re-verified and emptied; reads reload from git"}}
	if !reflect.DeepEqual(got.Repaired, want) || !got.Clean() {
		t.Fatalf("repair: %+v", got)
	}
	if h := s.cacheHealth(ctx); h.Status != nexus.StatusHealthy {
		t.Fatalf("cache health after the repair: %+v", h)
	}
	if last := s.LastDeepCheck(); len(last.Problems) != 0 {
		t.Fatalf("the last deep check still lists %+v", last.Problems)
	}
	if got, err := s.Get(ctx, c.ID); err != nil || got.Content != "cached" {
		t.Fatalf("get after the repair: %+v %v", got, err)
	}
}

// The per-namespace lists of the catalog hold exactly the entries of
// their namespace, by id, through adds out of order and removes.
func TestCatalog_byNamespace(t *testing.T) {
	c := newCatalog()
	var gen nexus.IDGenerator
	r := rand.New(rand.NewPCG(1, 2))
	var ids []nexus.ID
	for range 2000 {
		ids = append(ids, gen.New(time.Now()))
	}
	for _, i := range r.Perm(len(ids)) {
		c.addLocked(&entry{id: ids[i], ns: fmt.Sprintf("ns%d", r.IntN(5))})
	}
	for _, i := range r.Perm(len(ids))[:700] {
		c.removeLocked(ids[i])
	}
	seen := 0
	for ns, list := range c.byNS {
		var want []*entry
		for _, e := range c.ordered {
			if e.ns == ns {
				want = append(want, e)
			}
		}
		if !slices.Equal(list, want) || len(list) == 0 {
			t.Fatalf("namespace %s: %d entries listed, %d in the catalog", ns, len(list), len(want))
		}
		seen += len(list)
	}
	if seen != len(c.ordered) {
		t.Fatalf("the namespaces list %d entries, the catalog holds %d", seen, len(c.ordered))
	}
}

// The interleaving of a deep check with the ref repair that a running
// node met: the check reads main damaged, the repair rewrites main (and
// forgets what the previous check said of it), then the check ends and
// publishes its report. The repository must be healthy: the cascade would
// otherwise repair main from a backup, and stop the node without one.
func TestFsck_EndsAfterRefRepair(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "kept"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.GitDir(), mainRef), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := &FsckReport{Deep: true, Problems: []Problem{}}
	s.checkRefs(rep) // the check reads main first
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != ProblemRef {
		t.Fatalf("the check of a garbage main found %v, want one ref problem", rep.Problems)
	}
	if did, err := s.RepairRef(ctx); err != nil || !strings.Contains(did, "rewritten at the acknowledged head") {
		t.Fatalf("RepairRef: %q, %v", did, err)
	}
	s.lastDeep.Store(rep) // and publishes its report last
	if h := s.gitHealth(ctx); h.Status != nexus.StatusHealthy {
		t.Fatalf("git health after the repair: %s %q, want healthy", h.Status, h.Error)
	}
}
