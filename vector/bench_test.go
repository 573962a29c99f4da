package vector_test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus/vector"
)

// The benchmarks run on clustered data of NEXUS_VECTOR_N vectors (10,000)
// of NEXUS_VECTOR_DIM components (384), 1000 clusters. One iteration of
// BenchmarkAdd builds the whole index, so give it its own benchtime:
//
//	NEXUS_VECTOR_N=100000 nice -n 19 go test -run '^$' -bench 'Search|Exact|Read|WriteTo|Dot' -benchtime 2000x ./vector/
//	NEXUS_VECTOR_N=100000 nice -n 19 go test -run '^$' -bench Add -benchtime 1x ./vector/

type benchData struct {
	base, queries [][]float32
	ix            *vector.Index
	truth         [][]vector.Result // exact top 10 of each query
}

var (
	benchOnce sync.Once
	bench     benchData
)

func setup(b *testing.B) *benchData {
	benchOnce.Do(func() {
		n, dim := envInt(b, "NEXUS_VECTOR_N", 10000), envInt(b, "NEXUS_VECTOR_DIM", 384)
		bench.base, bench.queries = dataset(21, n, 200, dim, 1000, 1)
		bench.ix = MustBuild(b, dim, vector.Options{}, bench.base)
		for _, q := range bench.queries {
			want, err := bench.ix.Exact(q, 10, nil)
			if err != nil {
				b.Fatal(err)
			}
			bench.truth = append(bench.truth, want)
		}
	})
	return &bench
}

func BenchmarkSearch(b *testing.B) {
	d := setup(b)
	for _, ef := range []int{32, 64, 96, 128, 256} {
		b.Run(fmt.Sprintf("ef=%d", ef), func(b *testing.B) {
			var sum float64
			i := 0
			for b.Loop() {
				q := i % len(d.queries)
				got, err := d.ix.SearchEf(d.queries[q], 10, ef, nil)
				if err != nil {
					b.Fatal(err)
				}
				sum += recall(got, d.truth[q])
				i++
			}
			b.ReportMetric(sum/float64(i), "recall@10")
		})
	}
	b.Run("filtered=1/10", func(b *testing.B) {
		allow := func(k uint32) bool { return k%10 == 0 }
		var sum float64
		i := 0
		for b.Loop() {
			q := d.queries[i%len(d.queries)]
			got, err := d.ix.Search(q, 10, allow)
			if err != nil {
				b.Fatal(err)
			}
			want, _ := d.ix.Exact(q, 10, allow)
			sum += recall(got, want)
			i++
		}
		b.ReportMetric(sum/float64(i), "recall@10")
	})
}

func BenchmarkExact(b *testing.B) {
	d := setup(b)
	i := 0
	for b.Loop() {
		if _, err := d.ix.Exact(d.queries[i%len(d.queries)], 10, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAdd builds the whole index in each iteration; ns/op is the
// build time, and inserts/s the rate.
func BenchmarkAdd(b *testing.B) {
	d := setup(b)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			for b.Loop() {
				ix, err := vector.New(len(d.base[0]), vector.Options{})
				if err != nil {
					b.Fatal(err)
				}
				build(b, ix, d.base, workers)
			}
			b.ReportMetric(float64(len(d.base))*float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
		})
	}
}

func BenchmarkWriteTo(b *testing.B) {
	d := setup(b)
	var w countingDiscard
	for b.Loop() {
		if _, err := d.ix.WriteTo(&w); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(w.n / b.N))
}

func BenchmarkRead(b *testing.B) {
	d := setup(b)
	data := MustEncode(b, d.ix)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := vector.Read(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScan scans NEXUS_SCAN_N vectors (20,000: a full fresh segment
// at search.Options.FreshMax's default) of 384 components for the best
// 50, a hybrid search's depth at limit 10; no index is built.
func BenchmarkScan(b *testing.B) {
	base, qs := dataset(22, envInt(b, "NEXUS_SCAN_N", 20000), 64, 384, 1000, 1)
	keys := make([]uint32, len(base))
	for i := range keys {
		keys[i] = uint32(i)
	}
	i := 0
	for b.Loop() {
		if _, err := vector.Scan(qs[i%len(qs)], 50, keys, base, nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAddCopies builds an index of NEXUS_VECTOR_N vectors (10,000)
// drawn from only `distinct` different ones, one goroutine: the load of
// `nexus bench report`, whose clients write one text over and over, and
// of a memory holding repeated texts. Copies score alike against every
// vector, so no candidate rules another out as a neighbour and every
// pruning of a full list compares all its pairs. One iteration is a
// whole build; cpu-µs/insert is the process's CPU per insertion.
func BenchmarkAddCopies(b *testing.B) {
	n := envInt(b, "NEXUS_VECTOR_N", 10000)
	for _, distinct := range []int{1, 3, 10, 100} {
		b.Run(fmt.Sprintf("distinct=%d", distinct), func(b *testing.B) {
			uniq, _ := dataset(23, distinct, 0, 384, distinct, 1)
			base := make([][]float32, n)
			for i := range base {
				base[i] = uniq[i%distinct]
			}
			cpu0 := cpuTime()
			for b.Loop() {
				ix, err := vector.New(384, vector.Options{})
				if err != nil {
					b.Fatal(err)
				}
				build(b, ix, base, 1)
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n*b.N), "cpu-µs/insert")
		})
	}
}
