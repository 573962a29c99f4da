package gitstore

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

var (
	rebuildContexts = flag.Int("rebuild.contexts", 20000, "BenchmarkCatalogRebuild: contexts in the store")
	rebuildDir      = flag.String("rebuild.dir", "", "BenchmarkCatalogRebuild: data directory, kept and reused (filled up to -rebuild.contexts); empty: a temporary one")
	rebuildRuns     = flag.Int("rebuild.runs", 2, "BenchmarkCatalogRebuild: rebuilds of each kind, alternated")
)

// BenchmarkCatalogRebuild measures, on one store of -rebuild.contexts
// contexts filled as `nexus bench report` fills its big store (one
// namespace, 512 bytes of content, group commits of 1024), in one run:
//
//   - open-s: opening the store with its catalog file (a cold start);
//   - old-s: the rebuild as it was before the packed read path (refBuild);
//   - new-s: the rebuild from git (buildCatalog, what fsck, repair,
//     restore and replicas call);
//   - start-s: opening the store with the catalog file deleted (the
//     rebuild at start, which then saves the file);
//
// old and new alternate -rebuild.runs times each; the figures are the
// medians. Both rebuilds are checked equal to the live catalog.
//
//	go test -run '^$' -bench CatalogRebuild -benchtime 1x -timeout 0 ./gitstore/ \
//	    -args -rebuild.contexts 1000000 -rebuild.dir /tmp/rebuild1m
func BenchmarkCatalogRebuild(b *testing.B) {
	dir := *rebuildDir
	if dir == "" {
		dir = b.TempDir()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	n := *rebuildContexts
	if err := fillBench(dir, n); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		runtime.GC()
		t0 := time.Now()
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		open := time.Since(t0)
		if s.Len() < n {
			b.Fatalf("store holds %d contexts, want %d", s.Len(), n)
		}
		live := liveCatalog(s)
		var olds, news []time.Duration
		for r := range *rebuildRuns * 2 {
			runtime.GC()
			t0 := time.Now()
			var c *catalog
			if r%2 == 0 {
				c, err = refBuild(s, live.head)
				olds = append(olds, time.Since(t0))
			} else {
				c, err = s.buildCatalog(live.head)
				news = append(news, time.Since(t0))
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := sameCatalog(live, c); err != nil {
				b.Fatalf("rebuild %d differs from the live catalog: %v", r, err)
			}
		}
		live = nil
		s.Close()
		if err := os.Remove(filepath.Join(dir, catalogFile)); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		t0 = time.Now()
		if s, err = Open(dir, Options{}); err != nil {
			b.Fatal(err)
		}
		start := time.Since(t0)
		s.Close()
		old, nw := median(olds), median(news)
		b.Logf("%d contexts, GOMAXPROCS %d: open %s; rebuild old %v, new %v (%.2fx faster); open with the catalog deleted %s",
			s.Len(), runtime.GOMAXPROCS(0), open.Round(time.Millisecond), olds, news, old.Seconds()/nw.Seconds(), start.Round(time.Millisecond))
		b.ReportMetric(open.Seconds(), "open-s")
		b.ReportMetric(old.Seconds(), "old-s")
		b.ReportMetric(nw.Seconds(), "new-s")
		b.ReportMetric(old.Seconds()/nw.Seconds(), "old/new")
		b.ReportMetric(start.Seconds(), "start-s")
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(d))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// fillBench adds contexts to the store in dir until it holds n: namespace
// "bench", agent "fill", 512 bytes of words as content, a microsecond
// apart, in Apply batches of 1024.
func fillBench(dir string, n int) error {
	s, err := Open(dir, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var gen nexus.IDGenerator
	t := time.Now()
	for s.Len() < n {
		var batch []*nexus.Context
		for i := 0; i < 1024 && s.Len()+len(batch) < n; i++ {
			t = t.Add(time.Microsecond)
			batch = append(batch, wordContext(r, &gen, t, 512))
		}
		if _, err := s.Apply(context.Background(), batch); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkBuildCatalog times buildCatalog alone (the rebuild from git
// that a start with the catalog file deleted runs) on the store in
// -rebuild.dir, which must exist; each rebuild is checked equal to the
// catalog the store opened with. For profiles of the rebuild:
//
//	go test -run '^$' -bench BuildCatalog -benchtime 3x -cpuprofile cpu.prof ./gitstore/ \
//	    -args -rebuild.dir /tmp/rebuild1m
func BenchmarkBuildCatalog(b *testing.B) {
	if *rebuildDir == "" {
		b.Skip("needs -rebuild.dir, a store to rebuild the catalog of")
	}
	s, err := Open(*rebuildDir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	live := liveCatalog(s)
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		c0 := cpuTime()
		c, err := s.buildCatalog(live.head)
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		b.StopTimer()
		if err := sameCatalog(live, c); err != nil {
			b.Fatalf("rebuild differs from the live catalog: %v", err)
		}
		c = nil
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(float64(len(live.ordered)), "contexts")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// Sorting a rebuild's million ids to locate them, on one core and on
// all (sortWanted), wall time per sort.
//
//	go test -run '^$' -bench SortWanted ./gitstore/
func BenchmarkSortWanted(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]wantedID, 1_000_000)
	for i := range ids {
		for j := range ids[i].h {
			ids[i].h[j] = byte(r.Uint32())
		}
		ids[i].i = i
	}
	p := make([]wantedID, len(ids))
	for _, ways := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("ways=%d", ways), func(b *testing.B) {
			for b.Loop() {
				copy(p, ids)
				sortWanted(p, ways, 0)
			}
		})
	}
}
