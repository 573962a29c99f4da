package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
	"github.com/nexus-mem/nexus/vector"
)

// textGen writes a synthetic memory whose texts cluster by topic, as real
// agent notes do: each text mixes words of its topic with common words,
// both drawn with Zipf-like frequencies.
type textGen struct {
	r      *rand.Rand
	common []string
	topics [][]string
}

func newTextGen(seed uint64, topics int) *textGen {
	r := rand.New(rand.NewPCG(seed, 7))
	syll := strings.Fields("ka lo mi ru ne ta so vi pe zu da ri mo ke lu na fe gi po ba te xi yo wu ce")
	seen := map[string]bool{}
	word := func() string {
		for {
			var b strings.Builder
			for range 2 + r.IntN(3) {
				b.WriteString(syll[r.IntN(len(syll))])
			}
			if w := b.String(); !seen[w] {
				seen[w] = true
				return w
			}
		}
	}
	g := &textGen{r: r}
	for range 300 {
		g.common = append(g.common, word())
	}
	for range topics {
		t := make([]string, 40)
		for i := range t {
			t[i] = word()
		}
		g.topics = append(g.topics, t)
	}
	return g
}

// randSource is what the texts are drawn with: a *rand.Rand, or the
// package's global source (globalRand), which is safe for concurrent use.
type randSource interface {
	IntN(n int) int
	Float64() float64
}

// globalRand draws from math/rand/v2's global source.
type globalRand struct{}

func (globalRand) IntN(n int) int   { return rand.IntN(n) }
func (globalRand) Float64() float64 { return rand.Float64() }

// zipf picks an index of n with probability falling as 1/(rank+1).
func zipf(r randSource, n int) int {
	return min(n-1, int(float64(n)*r.Float64()*r.Float64()*r.Float64()))
}

// word draws a word of a text about topic t: a topic word or a common
// word, as often as each other, each with Zipf-like frequencies.
func (g *textGen) word(r randSource, t int) string {
	if r.IntN(2) == 0 {
		return g.topics[t][zipf(r, len(g.topics[t]))]
	}
	return g.common[zipf(r, len(g.common))]
}

// text returns words words about topic t.
func (g *textGen) text(t, words int) string {
	out := make([]string, words)
	for i := range out {
		out[i] = g.word(g.r, t)
	}
	return strings.Join(out, " ")
}

// query returns a short query about topic t.
func (g *textGen) query(t int) string {
	out := make([]string, 4)
	for i := range out {
		out[i] = g.topics[t][zipf(g.r, len(g.topics[t]))]
	}
	return strings.Join(out, " ")
}

func runBenchSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 100000, "contexts in the store")
	queries := fs.Int("queries", 200, "queries per mode")
	topics := fs.Int("topics", 1000, "topics the texts cluster into")
	dir := fs.String("dir", "", "work directory (default: a new temp dir)")
	keep := fs.Bool("keep", false, "keep the work directory")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the first index build (with --sustain: of the first run's writes) to this file")
	buildOnly := fs.Bool("build-only", false, "stop after the first build and its query figures (no search-width sweep, filters, reload or rebuild)")
	sustainFor := fs.Duration("sustain", 0, "instead of the figures above: write from --clients clients for this long with search on, once per indexer CPU ration, and print write rate, index rate and lag")
	clients := fs.Int("clients", 64, "writing clients of --sustain")
	rations := fs.String("rations", "0.25,1", "--sustain: one run per value of the indexer's CPU share at 10,000 contexts behind (search.Options.MaxCPULagging, in cores; 0.25 is the fixed ration of before)")
	efc := fs.Int("ef-construction", 0, "the graph's candidate list while inserting (default: the engine's)")
	m := fs.Int("m", 0, "the graph's links per node on the upper layers, twice that on the bottom one (default: the engine's)")
	dump := fs.String("dump-vectors", "", "instead of the figures above: write the embeddings of the --n texts and of the --queries queries the figures would use to this `FILE` (queries first; 384 float32 components each, little-endian), for the vector package's benchmarks (NEXUS_VECTORS)")
	maxLag := fs.Int("max-lag", search.DefaultMaxLag, "--sustain: writes wait while the index is more than this many contexts behind (search.max_lag; -1: never)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *n <= 0 || *queries <= 0 || *topics <= 0 || *clients <= 0 || *sustainFor < 0 {
		return usagef("--n, --queries, --topics and --clients must be positive, --sustain not negative")
	}
	if *maxLag == 0 || *maxLag < -1 {
		return usagef("--max-lag: %d: want a positive number of contexts, or -1 for no bound", *maxLag)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "nexus-bench-search-")
		if err != nil {
			return err
		}
		*dir = d
	}
	if !*keep {
		defer os.RemoveAll(*dir)
	}
	var lagging []float64
	for _, f := range strings.Split(*rations, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) {
			return usagef("--rations: %q is not a positive number of cores", f)
		}
		lagging = append(lagging, v)
	}
	b := &searchBench{n: *n, queries: *queries, gen: newTextGen(1, *topics), dir: *dir, out: stdout, log: stderr,
		profile: *profile, buildOnly: *buildOnly, sustainFor: *sustainFor, clients: *clients, efc: *efc, m: *m, rations: lagging, maxLag: *maxLag}
	if *dump != "" {
		return b.dumpVectors(ctx, *dump)
	}
	if b.sustainFor > 0 {
		return b.sustain(ctx)
	}
	return b.run(ctx)
}

type searchBench struct {
	n, queries int
	gen        *textGen
	dir        string
	out, log   io.Writer
	store      *gitstore.Store
	profile    string // CPU profile of the first build, if set
	buildOnly  bool
	sustainFor time.Duration // --sustain
	clients    int
	efc        int // --ef-construction
	m          int // --m
	rations    []float64
	maxLag     int // --max-lag
}

func (b *searchBench) run(ctx context.Context) error {
	fmt.Fprintf(b.out, "# nexus bench search — %s, %d contexts, %d topics, %d queries, GOMAXPROCS %d\n\n",
		time.Now().UTC().Format(time.RFC3339), b.n, len(b.gen.topics), b.queries, runtime.GOMAXPROCS(0))
	data := filepath.Join(b.dir, "data")
	t0 := time.Now()
	if err := b.fill(ctx, data); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "store filled with %d contexts in %s\n\n", b.n, time.Since(t0).Round(time.Millisecond))
	st, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	b.store = st
	emb := embed.NewHashing(embed.DefaultDimension)
	idx := filepath.Join(b.dir, "index")
	opts := search.Options{Dir: idx, Log: st.SideLog(), Vector: vector.Options{EfConstruction: b.efc, M: b.m}}

	fmt.Fprintf(b.out, "| step | time | rate |\n|---|---:|---:|\n")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if b.profile != "" {
		stop, err := startCPUProfile(b.profile)
		if err != nil {
			return err
		}
		defer stop()
	}
	// The hashing model is local: its engine keeps no vector log, and a
	// rebuild embeds the texts again (search.LocalEmbedder).
	e, build, err := b.build(ctx, emb, opts, "build: embed + HNSW + BM25, vectors not kept (a local model)")
	if b.profile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	qs, exact, err := b.queryFigures(ctx, e)
	if err != nil {
		e.Close()
		return err
	}
	if err := e.Close(); err != nil {
		return err
	}
	if b.buildOnly {
		fmt.Fprintf(b.out, "\nbuild %s\n", build.Round(time.Millisecond))
		return nil
	}
	if err := b.efSweep(ctx, emb, opts, qs, exact); err != nil {
		return err
	}
	if err := b.filterFigures(ctx, emb, opts, qs); err != nil {
		return err
	}
	t0 = time.Now()
	e, err = search.Open(st, emb, opts)
	if err != nil {
		return err
	}
	load := time.Since(t0)
	if got := e.Indexed(); got != b.n {
		e.Close()
		return fmt.Errorf("reloaded index holds %d of %d contexts", got, b.n)
	}
	e.Close()
	var size int64
	filepath.WalkDir(idx, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				size += info.Size()
			}
		}
		return err
	})
	if err := os.RemoveAll(idx); err != nil {
		return err
	}
	e, rebuild, err := b.build(ctx, emb, opts, "full rebuild (index files deleted; texts embedded again)")
	if err != nil {
		return err
	}
	e.Close()
	fmt.Fprintf(b.out, "| load saved index (verify checksums) | %s | |\n", load.Round(time.Millisecond))
	fmt.Fprintf(b.out, "\nmemory of the indexes: %.0f bytes per context (heap growth over the build); saved index files: %.0f bytes per context\n",
		float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.n), float64(size)/float64(b.n))
	fmt.Fprintf(b.out, "build %s, rebuild from git %s\n", build.Round(time.Millisecond), rebuild.Round(time.Millisecond))
	return nil
}

// dumpVectors writes to path the embeddings (hashing model) of the texts
// fill writes and of the queries queryFigures asks, drawn in the same
// order from the same generator: the queries first, then the texts, each
// as 384 little-endian float32.
func (b *searchBench) dumpVectors(ctx context.Context, path string) error {
	texts := make([]string, b.n)
	for i := range texts {
		texts[i], _ = b.text(i)
	}
	qs := b.queryTexts()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	emb := embed.NewHashing(embed.DefaultDimension)
	var buf []byte
	for _, part := range [][]string{qs, texts} {
		for i := 0; i < len(part); i += 1024 {
			vs, err := emb.Embed(ctx, part[i:min(len(part), i+1024)])
			if err != nil {
				f.Close()
				return err
			}
			for _, v := range vs {
				buf = buf[:0]
				for _, x := range v {
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
				}
				w.Write(buf)
			}
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "wrote the vectors of %d queries and %d texts to %s\n", len(qs), len(texts), path)
	return nil
}

// startCPUProfile starts the CPU profiler writing to path; the returned
// function closes the file (after pprof.StopCPUProfile).
func startCPUProfile(path string) (func(), error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, err
	}
	return func() { out.Close() }, nil
}

// fill writes the synthetic memory through Apply, in batches of 1024.
func (b *searchBench) fill(ctx context.Context, data string) error {
	return fillWith(ctx, data, b.n, newProgress(b.log, "store"), b.text)
}

// text returns the content and metadata of the store's context i: 40
// words of topic i mod topics.
func (b *searchBench) text(i int) (string, string) {
	t := i % len(b.gen.topics)
	return b.gen.text(t, 40), fmt.Sprintf(`{"topic":%d}`, t)
}

// queryTexts draws the queries of the figures, each about a random topic.
func (b *searchBench) queryTexts() []string {
	qs := make([]string, b.queries)
	for i := range qs {
		qs[i] = b.gen.query(b.gen.r.IntN(len(b.gen.topics)))
	}
	return qs
}

// build opens an engine on an empty index directory and times its
// catch-up over the whole store.
func (b *searchBench) build(ctx context.Context, emb nexus.Embedder, opts search.Options, what string) (*search.Engine, time.Duration, error) {
	t0, cpu0 := time.Now(), processCPU()
	e, err := search.Open(b.store, emb, opts)
	if err != nil {
		return nil, 0, err
	}
	if err := e.CatchUp(ctx, newProgress(b.log, "index")); err != nil {
		e.Close()
		return nil, 0, err
	}
	d, cpu := time.Since(t0), processCPU()-cpu0
	fmt.Fprintf(b.out, "| %s | %s | %.0f contexts/s (%.0f µs of CPU per context, load %s) |\n", what, d.Round(time.Millisecond),
		float64(b.n)/d.Seconds(), float64(cpu.Microseconds())/float64(b.n), loadAverage())
	return e, d, nil
}

// queryFigures measures latency per mode and the recall@10 of the graph
// against an exact scan of the same vectors, in the same run.
func (b *searchBench) queryFigures(ctx context.Context, e *search.Engine) ([]string, [][]nexus.ID, error) {
	qs := b.queryTexts()
	type mode struct {
		name string
		req  nexus.SearchRequest
	}
	modes := []mode{
		{"semantic exact (scan of every vector)", nexus.SearchRequest{Mode: nexus.Semantic, Exact: true}},
		{"semantic (HNSW)", nexus.SearchRequest{Mode: nexus.Semantic}},
		{"keyword (BM25)", nexus.SearchRequest{Mode: nexus.Keyword}},
		{"hybrid (weighted fusion)", nexus.SearchRequest{Mode: nexus.Hybrid}},
		{"hybrid, filtered to one topic (metadata)", nexus.SearchRequest{Mode: nexus.Hybrid}},
	}
	fmt.Fprintf(b.out, "\n| search, limit 10 | p50 | p99 | recall@10 vs exact |\n|---|---:|---:|---:|\n")
	results := make([][][]nexus.ID, len(modes))
	for mi, m := range modes {
		lat := make([]time.Duration, len(qs))
		results[mi] = make([][]nexus.ID, len(qs))
		for i, q := range qs {
			req := m.req
			req.Query, req.Limit = q, 10
			if mi == 4 {
				req.Metadata = map[string]any{"topic": float64(i % len(b.gen.topics))}
			}
			t0 := time.Now()
			res, err := e.Search(ctx, req)
			lat[i] = time.Since(t0)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", m.name, err)
			}
			for _, h := range res.Hits {
				results[mi][i] = append(results[mi][i], h.Context.ID)
			}
		}
		slices.Sort(lat)
		recall := ""
		if mi == 1 {
			recall = fmt.Sprintf("%.3f", recallAt(results[1], results[0]))
		}
		fmt.Fprintf(b.out, "| %s | %s | %s | %s |\n", m.name, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), recall)
	}
	return qs, results[0], nil
}

// efSweep reopens the saved index with several graph search widths and
// measures semantic latency and recall against the exact results.
func (b *searchBench) efSweep(ctx context.Context, emb nexus.Embedder, opts search.Options, qs []string, exact [][]nexus.ID) error {
	fmt.Fprintf(b.out, "\n| semantic (HNSW), efSearch | p50 | p99 | recall@10 vs exact |\n|---:|---:|---:|---:|\n")
	for _, ef := range []int{128, 256, 512, 1024} {
		o := opts
		o.EfSearch = ef
		lat, got, err := b.timedSearches(ctx, emb, o, qs, func(_ int, q string) nexus.SearchRequest {
			return nexus.SearchRequest{Query: q, Mode: nexus.Semantic, Limit: 10}
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "| %d | %s | %s | %.3f |\n", ef, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), recallAt(got, exact))
	}
	fmt.Fprintln(b.out)
	return nil
}

// filterFigures measures a selective filter (one topic of the
// metadata: 1/topics of the store) answered from the posting lists, and
// the same searches with the predicate asked about every context, as
// before the lists existed, in the same run; both must give the same
// hits, since both are exact.
func (b *searchBench) filterFigures(ctx context.Context, emb nexus.Embedder, opts search.Options, qs []string) error {
	fmt.Fprintf(b.out, "| hybrid, limit 10, filtered to one topic (metadata, keeps 1/%d) | p50 | p99 | same hits as the scan |\n|---|---:|---:|---:|\n", len(b.gen.topics))
	var scanned [][]nexus.ID
	for _, scan := range []bool{true, false} {
		o := opts
		o.ScanFilters = scan
		lat, got, err := b.timedSearches(ctx, emb, o, qs, func(i int, q string) nexus.SearchRequest {
			return nexus.SearchRequest{Query: q, Mode: nexus.Hybrid, Limit: 10, Metadata: map[string]any{"topic": float64(i % len(b.gen.topics))}}
		})
		if err != nil {
			return err
		}
		name, same := "predicate asked about every context (before posting lists)", "—"
		if scan {
			scanned = got
		} else {
			name, same = "posting lists", fmt.Sprintf("%d of %d queries", sameHits(got, scanned), len(qs))
		}
		fmt.Fprintf(b.out, "| %s | %s | %s | %s |\n", name, lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), same)
	}
	fmt.Fprintln(b.out)
	return nil
}

// timedSearches opens the saved index with o, runs the request req makes
// of each query, and returns the latencies sorted and each query's hits.
func (b *searchBench) timedSearches(ctx context.Context, emb nexus.Embedder, o search.Options, qs []string, req func(i int, q string) nexus.SearchRequest) ([]time.Duration, [][]nexus.ID, error) {
	e, err := search.Open(b.store, emb, o)
	if err != nil {
		return nil, nil, err
	}
	lat := make([]time.Duration, len(qs))
	got := make([][]nexus.ID, len(qs))
	for i, q := range qs {
		t0 := time.Now()
		res, err := e.Search(ctx, req(i, q))
		lat[i] = time.Since(t0)
		if err != nil {
			e.Close()
			return nil, nil, err
		}
		for _, h := range res.Hits {
			got[i] = append(got[i], h.Context.ID)
		}
	}
	if err := e.Close(); err != nil {
		return nil, nil, err
	}
	slices.Sort(lat)
	return lat, got, nil
}

// sameHits counts the queries whose hits are the same, in the same order.
func sameHits(a, b [][]nexus.ID) int {
	n := 0
	for i := range a {
		if slices.Equal(a[i], b[i]) {
			n++
		}
	}
	return n
}

// recallAt is the mean share of the exact top results that got found.
func recallAt(got, exact [][]nexus.ID) float64 {
	var sum float64
	n := 0
	for i := range exact {
		if len(exact[i]) == 0 {
			continue
		}
		hit := 0
		for _, id := range exact[i] {
			if slices.Contains(got[i], id) {
				hit++
			}
		}
		sum += float64(hit) / float64(len(exact[i]))
		n++
	}
	return sum / float64(max(n, 1))
}
