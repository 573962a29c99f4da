package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
)

// sustainResult is what one sustained-load run measured.
type sustainResult struct {
	load     *loadResult
	indexed  int           // contexts made searchable while the writes ran
	linked   int           // of them, in the graph when the writes stopped
	lag      []int         // contexts stored and not searchable, once a second
	graphLag []int         // contexts stored and not in the graph (lag + fresh segment), once a second
	endLag   int           // graph lag when the writes stopped
	paced    search.Stats  // the engine's pacing figures when the writes stopped
	drain    time.Duration // to put the end lag into the graph once the writes stopped
	stored   int
}

func maxOf(ls []int) int {
	m := 0
	for _, l := range ls {
		m = max(m, l)
	}
	return m
}

// sustain writes to an in-process store with search on from the given
// number of clients for a while, once per ration of the indexer, each on
// a fresh store, and prints the acknowledged write rate, the rate the
// index kept, and the lag over time; then the full-speed build rate of
// the last store's contexts, all in the same run.
func (b *searchBench) sustain(ctx context.Context) error {
	fmt.Fprintf(b.out, "# nexus bench search --sustain %s — %s, %d clients, in-process store with search on, GOMAXPROCS %d, load %s\n\n",
		b.sustainFor, time.Now().UTC().Format(time.RFC3339), b.clients, runtime.GOMAXPROCS(0), loadAverage())
	texts := make([]string, 8192)
	for i := range texts {
		texts[i] = b.gen.text(i%len(b.gen.topics), 40)
	}
	type phase struct {
		name    string
		lagging float64 // Options.MaxCPULagging; 0.25 is the fixed ration
	}
	var phases []phase
	for _, l := range b.rations {
		name := fmt.Sprintf("rising with the lag: 0.25 → %g core(s) at 10,000 behind", l)
		switch {
		case l <= 0.25:
			name = "fixed: 0.25 of a core (before)"
		case l == 1:
			name += " (default)"
		}
		phases = append(phases, phase{name, l})
	}
	bound := fmt.Sprint(b.maxLag)
	if b.maxLag < 0 {
		bound = "none"
	}
	fmt.Fprintf(b.out, "writes wait while the searchable lag is over %s (--max-lag)\n\n", bound)
	fmt.Fprintf(b.out, "| indexer's CPU ration | writes acked/s | searchable/s during the writes | into the graph/s | searchable lag max | graph lag max | graph lag at end | catch-up after | writes held back (waited in all) | process CPU (cores) | load |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	results := make([]*sustainResult, len(phases))
	var last string
	for i, p := range phases {
		data := filepath.Join(b.dir, fmt.Sprintf("sustain-%d", i))
		b.say("sustained writes, %d clients, %s, ration %s", b.clients, b.sustainFor, p.name)
		r, err := b.sustainRun(ctx, data, p.lagging, texts)
		if err != nil {
			return err
		}
		results[i], last = r, data
		fmt.Fprintf(b.out, "| %s | %.0f | %.0f | %.0f | %d | %d | %d | %s (%.0f/s) | %d (%.1f s) | %.2f | %s |\n", p.name, r.load.rate(),
			float64(r.indexed)/r.load.Elapsed.Seconds(), float64(r.linked)/r.load.Elapsed.Seconds(),
			maxOf(r.lag), max(r.endLag, maxOf(r.graphLag)), r.endLag, r.drain.Round(time.Millisecond),
			float64(r.endLag)/max(r.drain.Seconds(), 1e-9), r.paced.Paced, r.paced.PacedSeconds, r.load.cores(), loadAverage())
	}
	fmt.Fprintf(b.out, "\nlag once a second, by the ration's cores at 10,000 behind: contexts stored and not yet searchable / not yet in the graph (the rest of those are in the fresh segment, searched by an exact scan):\n\n| s |")
	for _, p := range phases {
		fmt.Fprintf(b.out, " %g: searchable | %g: graph |", max(p.lagging, 0.25), max(p.lagging, 0.25))
	}
	fmt.Fprintf(b.out, "\n|---:|%s\n", strings.Repeat("---:|---:|", len(phases)))
	for s := 0; ; s++ {
		more := false
		row := fmt.Sprintf("| %d |", s+1)
		for _, r := range results {
			if s < len(r.lag) {
				more = true
				row += fmt.Sprintf(" %d | %d |", r.lag[s], r.graphLag[s])
			} else {
				row += " | |"
			}
		}
		if !more {
			break
		}
		fmt.Fprintln(b.out, row)
	}
	build, n, err := b.fullBuild(ctx, last)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "\nfull build of the last run's %d contexts (fresh index, all cores, no writes meanwhile; embed + HNSW + BM25): %s, %.0f contexts/s (load %s)\n",
		n, build.Round(time.Millisecond), float64(n)/build.Seconds(), loadAverage())
	for i, p := range phases {
		fmt.Fprintf(b.out, "build rate / acked write rate, %s: %.2f\n", p.name, float64(n)/build.Seconds()/results[i].load.rate())
	}
	return nil
}

func (b *searchBench) say(format string, args ...any) { fmt.Fprintf(b.log, format+"\n", args...) }

// sustainRun writes texts to a new store in data from b.clients clients
// for b.sustainFor with an engine following it (Options.MaxCPULagging
// lagging), sampling the lag once a second, then times the catch-up.
func (b *searchBench) sustainRun(ctx context.Context, data string, lagging float64, texts []string) (*sustainResult, error) {
	var eng atomic.Pointer[search.Engine]
	st, err := gitstore.Open(data, gitstore.Options{OnCommit: func() {
		if e := eng.Load(); e != nil {
			e.Notify()
		}
	}})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	e, err := search.Open(st, embed.NewHashing(embed.DefaultDimension),
		search.Options{Dir: filepath.Join(data, "index"), Log: st.SideLog(), MaxCPULagging: lagging, MaxLag: b.maxLag})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	eng.Store(e)
	st.SetAdmission(e.Pace) // as the node does: writes wait while the lag is over --max-lag
	r := &sustainResult{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				st := e.Stats()
				r.lag, r.graphLag = append(r.lag, st.Lag), append(r.graphLag, st.Lag+st.Fresh)
			}
		}
	})
	var seq atomic.Int64
	stopProfile := func() {}
	if b.profile != "" {
		stop, err := startCPUProfile(b.profile)
		if err != nil {
			return nil, err
		}
		b.profile = "" // the first run only
		stopProfile = func() { pprof.StopCPUProfile(); stop() }
	}
	r.load = load(ctx, b.clients, b.sustainFor, 0, func(ctx context.Context, _ int) error {
		i := int(seq.Add(1))
		_, err := st.Put(ctx, nexus.Draft{Namespace: "bench", Type: nexus.TypeObservation, AgentID: "writer",
			Content: fmt.Sprintf("%s n%d", texts[i%len(texts)], i), Metadata: []byte(fmt.Sprintf(`{"topic":%d}`, i%len(b.gen.topics)))})
		return err
	})
	stopProfile()
	close(stop)
	wg.Wait()
	if r.load.Ops == 0 {
		return nil, fmt.Errorf("no write succeeded: %v", r.load)
	}
	st0 := e.Stats()
	r.indexed, r.linked, r.endLag, r.paced = st0.Indexed, st0.Indexed-st0.Fresh, st0.Lag+st0.Fresh, st0
	t0 := time.Now()
	if err := e.CatchUp(ctx, nil); err != nil {
		return nil, err
	}
	r.drain, r.stored = time.Since(t0), st.Len()
	return r, nil
}

// fullBuild builds a fresh index of the store in data at full speed,
// embedding every context (no vector log, so that nothing is read back
// from git instead).
func (b *searchBench) fullBuild(ctx context.Context, data string) (time.Duration, int, error) {
	st, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	idx := filepath.Join(data, "index-full")
	defer os.RemoveAll(idx)
	t0, cpu0 := time.Now(), processCPU()
	e, err := search.Open(st, embed.NewHashing(embed.DefaultDimension), search.Options{Dir: idx})
	if err != nil {
		return 0, 0, err
	}
	defer e.Close()
	if err := e.CatchUp(ctx, nil); err != nil {
		return 0, 0, err
	}
	d, n := time.Since(t0), e.Indexed()
	fmt.Fprintf(b.out, "\nfull build: %.0f µs of CPU per context, %.2f cores busy\n", float64((processCPU()-cpu0).Microseconds())/float64(max(n, 1)), (processCPU()-cpu0).Seconds()/d.Seconds())
	return d, n, nil
}
