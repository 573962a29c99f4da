package search_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/search"
	"github.com/nexus-mem/nexus/storetest"
	"github.com/nexus-mem/nexus/vector"
)

// The build benchmarks index NEXUS_BUILD_N (20,000) generated notes of 40
// words (newNoteGen: 300 overlapping topics). One iteration is a whole
// build, so run them with -benchtime 1x and -count for benchstat:
//
//	go test -run '^$' -bench 'Build' -benchtime 1x -count 6 ./search/
//	NEXUS_BUILD_N=100000 go test -run '^$' -bench 'BuildGraph' -benchtime 1x ./search/

var buildData struct {
	once    sync.Once
	texts   []string
	vecs    [][]float32
	queries [][]float32
}

func buildCorpus(b *testing.B) ([]string, [][]float32, [][]float32) {
	buildData.once.Do(func() {
		n := 20000
		if s := os.Getenv("NEXUS_BUILD_N"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				b.Fatalf("NEXUS_BUILD_N=%q: want a positive number", s)
			}
			n = v
		}
		g := newNoteGen(7)
		buildData.texts = make([]string, n)
		for i := range buildData.texts {
			buildData.texts[i] = g.note(40)
		}
		qs := make([]string, 200)
		for i := range qs {
			qs[i] = g.note(4)
		}
		h := embed.NewHashing(0)
		var err error
		if buildData.vecs, err = h.Embed(context.Background(), buildData.texts); err != nil {
			b.Fatal(err)
		}
		if buildData.queries, err = h.Embed(context.Background(), qs); err != nil {
			b.Fatal(err)
		}
	})
	return buildData.texts, buildData.vecs, buildData.queries
}

// BenchmarkEngine_Build measures the whole build of the engine over an
// in-memory store: listing, embedding with the built-in embedder, the
// keyword index and the graph, from GOMAXPROCS goroutines.
func BenchmarkEngine_Build(b *testing.B) {
	texts, _, _ := buildCorpus(b)
	src := storetest.NewMemStore()
	for _, t := range texts {
		if _, err := src.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: t}); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := cpuTime(b)
	for b.Loop() {
		e, err := search.Open(src, embed.NewHashing(0), search.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.CatchUp(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
		if got := e.Indexed(); got != len(texts) {
			b.Fatalf("indexed %d of %d", got, len(texts))
		}
		e.Close()
	}
	b.ReportMetric(float64(len(texts)*b.N)/b.Elapsed().Seconds(), "contexts/s")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(len(texts)*b.N), "cpu-µs/context")
}

// cpuTime is the CPU time (user and system) the process has used: on a
// shared machine it moves less with the other jobs than the wall time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBuildGraph builds the vector index alone from the notes'
// embeddings, from two goroutines, with several construction settings,
// and reports recall@10 at the engine's search width (512) against an
// exact scan of the same index.
func BenchmarkBuildGraph(b *testing.B) {
	_, vecs, queries := buildCorpus(b)
	for _, o := range []vector.Options{{M: 24, EfConstruction: 100}, {M: 24, EfConstruction: 80}, {M: 24, EfConstruction: 64}, {M: 24, EfConstruction: 48}} {
		b.Run(fmt.Sprintf("M=%d/efC=%d", o.M, o.EfConstruction), func(b *testing.B) {
			var ix *vector.Index
			cpu0 := cpuTime(b)
			for b.Loop() {
				var err error
				if ix, err = vector.New(len(vecs[0]), o); err != nil {
					b.Fatal(err)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				for range 2 {
					wg.Go(func() {
						for i := int(next.Add(1) - 1); i < len(vecs); i = int(next.Add(1) - 1) {
							if err := ix.Add(uint32(i), vecs[i]); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64(len(vecs)*b.N)/b.Elapsed().Seconds(), "inserts/s")
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(len(vecs)*b.N), "cpu-µs/insert")
			b.StopTimer()
			var sum float64
			for _, q := range queries {
				got, err := ix.SearchEf(q, 10, 512, nil)
				if err != nil {
					b.Fatal(err)
				}
				want, err := ix.Exact(q, 10, nil)
				if err != nil {
					b.Fatal(err)
				}
				hit := 0
				for _, w := range want {
					for _, g := range got {
						if g.Key == w.Key {
							hit++
							break
						}
					}
				}
				sum += float64(hit) / float64(len(want))
			}
			b.ReportMetric(sum/float64(len(queries)), "recall@10")
		})
	}
}
