package gitstore

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// fillApply adds n contexts of size bytes of content to s in Apply
// batches of batch, as `nexus bench report` fills its stores: random
// words of a small vocabulary, namespace bench, agent fill.
func fillApply(tb testing.TB, s *Store, n, size, batch int) {
	fillApplyEach(tb, s, n, size, batch, func() {})
}

// fillApplyEach is fillApply calling after() after each batch.
func fillApplyEach(tb testing.TB, s *Store, n, size, batch int, after func()) {
	rng := rand.New(rand.NewPCG(1, 2))
	var gen nexus.IDGenerator
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for done := 0; done < n; {
		var cs []*nexus.Context
		for ; len(cs) < batch && done < n; done++ {
			ts = ts.Add(time.Microsecond)
			cs = append(cs, wordContext(rng, &gen, ts, size))
		}
		if _, err := s.Apply(context.Background(), cs); err != nil {
			tb.Fatal(err)
		}
		after()
	}
}

// settleMerges merges until no tier is full.
func settleMerges(tb testing.TB, s *Store) {
	for {
		merged, err := s.mergeOnce()
		if err != nil {
			tb.Fatal(err)
		}
		if !merged {
			return
		}
	}
}

// dirBytes returns the bytes of every file under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}

// Issue 17: the repository costs at most 1.2 KB per 512-byte context once
// merged (it was ≈ 2.3 KB with whole objects). 24 group commits of 256
// contexts are written with merging off, then the store is opened again
// with the default tiers, which merge the 24 waiting packs of one tier in
// one merge (they fit in its byte budget); every context then reads back through the deltas, the catalog
// rebuilt from the trees matches, and stock git accepts the repository.
func TestMerge_RepoBytesPerContext(t *testing.T) {
	const n, batch = 24 * 256, 256
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fillApply(t, s, n, 512, batch)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	settleMerges(t, s)
	if got := len(s.allPacks()); got != 1 {
		t.Fatalf("%d packs after merging, want 1", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got := float64(dirBytes(t, filepath.Join(dir, "repo.git"))) / n
	t.Logf("repository: %.0f bytes per context", got)
	if got > 1200 {
		t.Fatalf("repository holds %.0f bytes per context, want at most 1200", got)
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(dir, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
	s, err = Open(dir, Options{CacheBytes: 1, MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range s.repo.packs {
		t.Logf("pack %s: %d bytes, %d objects", p.name, p.size, p.count)
	}
	if err := s.VerifyCatalog(); err != nil {
		t.Fatal(err)
	}
	if s.Len() != n {
		t.Fatalf("%d contexts, want %d", s.Len(), n)
	}
	s.cat.mu.RLock()
	ents := append([]*entry(nil), s.cat.ordered...)
	s.cat.mu.RUnlock()
	for _, e := range ents {
		c, err := s.contextOf(e)
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != e.id || len(c.Content) != 512 {
			t.Fatalf("context %s reads back as %s with %d bytes of content", e.id, c.ID, len(c.Content))
		}
	}
}

// fillWords are the words of the texts the fills and benchmarks write.
var fillWords = []string{"agent", "memory", "context", "durable", "commit", "search", "thread", "decision", "result", "observed"}

// wordText is n bytes of words drawn from fillWords.
func wordText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(fillWords[rng.IntN(len(fillWords))])
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

// wordContext is a context of size bytes of words at ts, as the fills
// write them.
func wordContext(rng *rand.Rand, gen *nexus.IDGenerator, ts time.Time, size int) *nexus.Context {
	c := &nexus.Context{ID: gen.New(ts), Namespace: "bench", Type: nexus.TypeObservation, AgentID: "fill", Timestamp: ts,
		Content: wordText(rng, size), Metadata: []byte("{}")}
	c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
	return c
}
