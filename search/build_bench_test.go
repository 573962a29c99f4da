package search_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
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

// BenchmarkEngine_Follow is the cost of indexing under durable writes,
// in process: NEXUS_FOLLOW_N (10,000) contexts written to a real store
// (gitstore, fsync per group commit) by 64 goroutines, as the clients of
// `nexus bench report` write them, with the engine following the store as
// the node wires it (notified at each group commit, its vector log in the
// store's repository, writes paced by it) and without (search=off). One
// iteration is a fresh store filled, then, with the engine, caught up;
// cpu-µs/context is the process's CPU per context over that, so the
// indexing costs the difference of the on and off rows. text=same writes
// one 512-byte text over and over (the report's load: each phase of its
// clients writes one text); text=distinct the build benchmark's notes.
func BenchmarkEngine_Follow(b *testing.B) {
	n := 10000
	if s := os.Getenv("NEXUS_FOLLOW_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("NEXUS_FOLLOW_N=%q: want a positive number", s)
		}
		n = v
	}
	notes, _, _ := buildCorpus(b)
	same := strings.Repeat("agent memory context durable commit search thread decision result observed ", 7)[:512]
	for _, text := range []string{"same", "distinct"} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("text=%s/search=%s", text, map[bool]string{false: "off", true: "on"}[on])
			b.Run(name, func(b *testing.B) {
				var cpu time.Duration
				for b.Loop() {
					cpu += followOnce(b, n, on, func(i int) string {
						if text == "same" {
							return same
						}
						return notes[i%len(notes)]
					})
				}
				b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/context")
			})
		}
	}
}

// followOnce writes n contexts to a new store from 64 goroutines, with an
// engine following it when on, waits for the engine to catch up, and
// returns the process's CPU time from the first write to then.
func followOnce(b *testing.B, n int, on bool, text func(i int) string) time.Duration {
	dir := b.TempDir()
	var eng atomic.Pointer[search.Engine]
	st, err := gitstore.Open(filepath.Join(dir, "data"), gitstore.Options{OnCommit: func() {
		if e := eng.Load(); e != nil {
			e.Notify()
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if on {
		e, err := search.Open(st, embed.NewHashing(0), search.Options{Dir: filepath.Join(dir, "index"), Log: st.SideLog()})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		eng.Store(e)
		st.SetAdmission(e.Pace)
	}
	ctx := context.Background()
	cpu0 := cpuTime(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if _, err := st.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Namespace: "bench", Content: text(i)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if e := eng.Load(); e != nil {
		if err := e.CatchUp(ctx, nil); err != nil {
			b.Fatal(err)
		}
		if got := e.Indexed(); got != n {
			b.Fatalf("indexed %d of %d", got, n)
		}
	}
	return cpuTime(b) - cpu0
}
