package vector_test

import (
	"encoding/binary"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/vector"
)

// The benchmarks here compare two ways of building or searching the
// graph in one process, in turns, so that whatever the machine does
// meanwhile weighs on both alike: runs of one build vary by ±15 % here,
// more than the changes they measure.

// buildInTurns adds base to two indexes in turns of 5,000 insertions,
// each from two goroutines, the order of the two swapped every turn;
// before(k) runs before each of index k's turns. It returns the process's
// CPU time spent in each index's turns.
func buildInTurns(tb testing.TB, ixs [2]*vector.Index, base [][]float32, before func(k int)) [2]time.Duration {
	var cpu [2]time.Duration
	const turn = 5000
	for t, start := 0, 0; start < len(base); t, start = t+1, start+turn {
		for j := range 2 {
			k := j ^ t&1
			before(k)
			c0 := processCPU(tb)
			var next atomic.Int64
			next.Store(int64(start))
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					for i := int(next.Add(1) - 1); i < min(len(base), start+turn); i = int(next.Add(1) - 1) {
						if err := ixs[k].Add(uint32(i), base[i]); err != nil {
							tb.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			cpu[k] += processCPU(tb) - c0
		}
	}
	return cpu
}

// benchVectors returns the vectors the benchmarks build from: n clustered
// ones and 200 queries, or those of the file NEXUS_VECTORS (written by
// `nexus bench search --dump-vectors`: 384 float32 components each,
// little-endian, the 200 queries first, then the base vectors; n of them
// are read).
func benchVectors(tb testing.TB, n int) (base, qs [][]float32) {
	path := os.Getenv("NEXUS_VECTORS")
	if path == "" {
		return clustered(1, n, 384, 1000, 1), clustered(2, 200, 384, 1000, 1)
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 384*4)
	read := func(k int) [][]float32 {
		out := make([][]float32, k)
		for i := range out {
			if _, err := io.ReadFull(f, buf); err != nil {
				tb.Fatalf("%s: vector %d: %v", path, i, err)
			}
			v := make([]float32, 384)
			for j := range v {
				v[j] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*j:]))
			}
			out[i] = v
		}
		return out
	}
	qs = read(200)
	return read(n), qs
}

// BenchmarkPrefetch compares the kernels' prefetch distances of before
// (int8 vectors four ahead, float32 ones one ahead) with the package's:
// two graphs of the same NEXUS_PREFETCH_N vectors (default 100,000;
// benchVectors) built in turns, one with each; then 200 queries at width
// 512 run ten times on one of them, the two distances in turns. It
// reports the process's CPU per insertion and the wall time per query of
// each, and their ratios (new ÷ old).
//
//	NEXUS_PREFETCH_N=1000000 go test -run '^$' -bench Prefetch -benchtime 1x ./vector/
func BenchmarkPrefetch(b *testing.B) {
	n := envInt(b, "NEXUS_PREFETCH_N", 100000)
	base, qs := benchVectors(b, n)
	newInt8, newFloat := vector.SetPrefetch(4, 1)
	vector.SetPrefetch(newInt8, newFloat)
	dists := [2][2]int{{4, 1}, {newInt8, newFloat}}
	defer vector.SetPrefetch(newInt8, newFloat)
	for b.Loop() {
		ixs := newPair(b)
		cpu := buildInTurns(b, ixs, base, func(k int) { vector.SetPrefetch(dists[k][0], dists[k][1]) })
		var lat [2]time.Duration
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
		reportInserts(b, cpu, n)
		perQuery := func(k int) float64 { return float64(lat[k].Microseconds()) / float64(rounds*len(qs)) }
		b.ReportMetric(perQuery(0), "µs/query-old")
		b.ReportMetric(perQuery(1), "µs/query-new")
		b.ReportMetric(perQuery(1)/perQuery(0), "query-new/old")
	}
}

// BenchmarkInsertScores compares insertions that rank their candidates by
// float32 scores (as before) with the package's, which rank them by the
// int8 scores their search found them with: two graphs of the same
// NEXUS_SCORES_N vectors (default 100,000; benchVectors) built in turns,
// then recall@10 of each at width 512 against an exact scan. It reports
// the CPU per insertion of each, their ratio (new ÷ old), and the recalls.
//
//	NEXUS_SCORES_N=1000000 NEXUS_VECTORS=/tmp/vectors.bin go test -run '^$' -bench InsertScores -benchtime 1x ./vector/
func BenchmarkInsertScores(b *testing.B) {
	n := envInt(b, "NEXUS_SCORES_N", 100000)
	base, qs := benchVectors(b, n)
	for b.Loop() {
		ixs := newPair(b)
		vector.SetFloatScores(ixs[0])
		cpu := buildInTurns(b, ixs, base, func(int) {})
		var rec [2]float64
		for _, q := range qs {
			want, err := ixs[0].Exact(q, 10, nil)
			if err != nil {
				b.Fatal(err)
			}
			for k, ix := range ixs {
				got, err := ix.SearchEf(q, 10, 512, nil)
				if err != nil {
					b.Fatal(err)
				}
				rec[k] += recall(got, want) / float64(len(qs))
			}
		}
		reportInserts(b, cpu, n)
		b.ReportMetric(rec[0], "recall@10-old")
		b.ReportMetric(rec[1], "recall@10-new")
	}
}

// reportInserts reports the CPU per insertion of each of the two indexes
// buildInTurns built with n insertions each, and their ratio (new ÷ old).
func reportInserts(b *testing.B, cpu [2]time.Duration, n int) {
	perInsert := func(k int) float64 { return float64(cpu[k].Microseconds()) / float64(n) }
	b.ReportMetric(perInsert(0), "cpu-µs/insert-old")
	b.ReportMetric(perInsert(1), "cpu-µs/insert-new")
	b.ReportMetric(perInsert(1)/perInsert(0), "insert-new/old")
}

// newPair returns two empty indexes of dimension 384, default options.
func newPair(tb testing.TB) [2]*vector.Index {
	var ixs [2]*vector.Index
	for i := range ixs {
		var err error
		if ixs[i], err = vector.New(384, vector.Options{}); err != nil {
			tb.Fatal(err)
		}
	}
	return ixs
}

// processCPU is the process's user and system CPU time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
