package gitstore

import (
	"flag"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

var openDir = flag.String("open.dir", "", "BenchmarkOpen: data directory of an existing store, opened as is; empty: a new store of 20,000 contexts")

// BenchmarkOpen measures the cold start of the store in -open.dir (a
// store closed cleanly, its catalog file present; without it, a new store
// of 20,000 contexts filled as `bench report` fills): Store.Open, and on
// their own its two largest steps, opening the repository (every pack
// index read and checked) and loading catalog.bin. Each iteration runs the
// three once, after a GC.
//
//	go test -run '^$' -bench BenchmarkOpen -benchtime 5x ./gitstore/ -args -open.dir /tmp/b1m/scale
func BenchmarkOpen(b *testing.B) {
	dir := *openDir
	if dir == "" {
		dir = b.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		fillApply(b, s, 20000, 512, 1024)
		settleMerges(b, s)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var open, repo, cat time.Duration
	for range b.N {
		runtime.GC()
		t0 := time.Now()
		r, err := openRepo(filepath.Join(dir, "repo.git"))
		if err != nil {
			b.Fatal(err)
		}
		repo += time.Since(t0)
		r.close()
		runtime.GC()
		t0 = time.Now()
		c, err := loadCatalog(dir)
		if err != nil || c == nil {
			b.Fatalf("catalog: %v", err)
		}
		cat += time.Since(t0)
		c = nil
		runtime.GC()
		t0 = time.Now()
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		open += time.Since(t0)
		n := s.Len()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			b.Fatal("an empty store")
		}
	}
	per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
	b.ReportMetric(per(open), "open-s")
	b.ReportMetric(per(repo), "repo-s")
	b.ReportMetric(per(cat), "catalog-s")
}
