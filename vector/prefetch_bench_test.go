package vector_test

import (
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/vector"
)

// BenchmarkPrefetch compares the kernels' prefetch distances of before
// (int8 vectors four ahead, float32 ones one ahead) with the package's
// in one process, so that the machine's load weighs on both alike: two
// graphs of the same NEXUS_PREFETCH_N clustered vectors (default 100,000)
// are built in turns of 5,000 insertions, each from two goroutines, the
// order of the two swapped every turn; then 200 queries at width 512 are
// run on one of them ten times, the two distances in turns. It reports
// the process's CPU per insertion and the wall time per query of each,
// and their ratios (new ÷ old).
//
//	NEXUS_PREFETCH_N=1000000 go test -run '^$' -bench Prefetch -benchtime 1x ./vector/
func BenchmarkPrefetch(b *testing.B) {
	n := envInt(b, "NEXUS_PREFETCH_N", 100000)
	base := clustered(1, n, 384, 1000, 1)
	qs := clustered(2, 200, 384, 1000, 1)
	newInt8, newFloat := vector.SetPrefetch(4, 1)
	vector.SetPrefetch(newInt8, newFloat)
	dists := [2][2]int{{4, 1}, {newInt8, newFloat}}
	defer vector.SetPrefetch(newInt8, newFloat)
	for b.Loop() {
		var ixs [2]*vector.Index
		for i := range ixs {
			var err error
			if ixs[i], err = vector.New(384, vector.Options{}); err != nil {
				b.Fatal(err)
			}
		}
		var cpu, lat [2]time.Duration
		const turn = 5000
		for t, start := 0, 0; start < n; t, start = t+1, start+turn {
			for j := range 2 {
				k := j ^ t&1 // the first of the two alternates
				vector.SetPrefetch(dists[k][0], dists[k][1])
				c0 := processCPU(b)
				var next atomic.Int64
				next.Store(int64(start))
				var wg sync.WaitGroup
				for range 2 {
					wg.Go(func() {
						for i := int(next.Add(1) - 1); i < min(n, start+turn); i = int(next.Add(1) - 1) {
							if err := ixs[k].Add(uint32(i), base[i]); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				cpu[k] += processCPU(b) - c0
			}
		}
		const rounds = 10
		for r := range rounds {
			for j := range 2 {
				k := j ^ r&1
				vector.SetPrefetch(dists[k][0], dists[k][1])
				t0 := time.Now()
				for _, q := range qs {
					if _, err := ixs[0].SearchEf(q, 10, 512, nil); err != nil {
						b.Fatal(err)
					}
				}
				lat[k] += time.Since(t0)
			}
		}
		perInsert := func(k int) float64 { return float64(cpu[k].Microseconds()) / float64(n) }
		perQuery := func(k int) float64 { return float64(lat[k].Microseconds()) / float64(rounds*len(qs)) }
		b.ReportMetric(perInsert(0), "cpu-µs/insert-old")
		b.ReportMetric(perInsert(1), "cpu-µs/insert-new")
		b.ReportMetric(perInsert(1)/perInsert(0), "insert-new/old")
		b.ReportMetric(perQuery(0), "µs/query-old")
		b.ReportMetric(perQuery(1), "µs/query-new")
		b.ReportMetric(perQuery(1)/perQuery(0), "query-new/old")
	}
}

// processCPU is the process's user and system CPU time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
