package gitstore

import (
	"flag"
	"testing"
	"time"
)

var (
	fillContexts = flag.Int("fill.contexts", 100000, "BenchmarkFillPacks: contexts written")
	fillDir      = flag.String("fill.dir", "", "BenchmarkFillPacks: data directory (must be empty or missing); empty: a temporary one")
)

// BenchmarkFillPacks fills a new store with -fill.contexts contexts as
// `nexus bench report --big` does (in process, Apply batches of 1024,
// 512 bytes of content, default merging) and follows the number of packs
// while the background merger works: counted after every 16th group
// commit (max-packs), after the last (end-packs), and once the merger has
// nothing left to do (settled-packs, with the time that took).
//
//	go test -run '^$' -bench FillPacks -benchtime 1x -timeout 0 ./gitstore/ -args -fill.contexts 1000000
func BenchmarkFillPacks(b *testing.B) {
	for range b.N {
		dir := *fillDir
		if dir == "" {
			dir = b.TempDir()
		}
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		most, batches := 0, 0
		t0 := time.Now()
		fillApplyEach(b, s, *fillContexts, 512, 1024, func() {
			if batches++; batches%16 == 0 {
				most = max(most, s.packCount())
			}
		})
		fill := time.Since(t0)
		end := s.packCount()
		most = max(most, end)
		t0 = time.Now()
		settleMerges(b, s)
		settle := time.Since(t0)
		settled := s.packCount()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.Logf("%d contexts in %s; packs: at most %d during the fill, %d at its end, %d once merged (%s more)",
			*fillContexts, fill.Round(time.Millisecond), most, end, settled, settle.Round(time.Millisecond))
		b.ReportMetric(fill.Seconds(), "fill-s")
		b.ReportMetric(float64(most), "max-packs")
		b.ReportMetric(float64(end), "end-packs")
		b.ReportMetric(float64(settled), "settled-packs")
		b.ReportMetric(settle.Seconds(), "settle-s")
	}
}
