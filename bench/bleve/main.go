// Command bleve measures the keyword index against bleve v2.6.3 with a
// lean mapping (one text field, indexed only: nothing stored, no term
// vectors, no doc values, BM25 scoring) on the same synthetic corpus, in
// the same run: build time, heap, persisted size, load time, and query
// latency of three query sets. It is a module of its own so that the
// main module does not depend on bleve.
//
//	cd bench/bleve && nice -n 19 go run . -n 100000
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/standard"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/keyword/keywordtest"
)

type config struct {
	n, queries, k, batch int
	seed                 uint64
	dir                  string
	skipBleve            bool
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 100_000, "documents")
	flag.IntVar(&c.queries, "queries", 200, "queries per set")
	flag.IntVar(&c.k, "k", 10, "results per query")
	flag.IntVar(&c.batch, "batch", 1000, "documents per bleve batch")
	flag.Uint64Var(&c.seed, "seed", 1, "corpus seed")
	flag.StringVar(&c.dir, "dir", "", "scratch directory (default: a temporary one, removed at the end)")
	flag.BoolVar(&c.skipBleve, "skip-bleve", false, "measure the keyword index only")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bleve bench:", err)
		os.Exit(1)
	}
}

// figures are the measurements of one engine.
type figures struct {
	name         string
	build        time.Duration
	heap         int64 // live heap held by the index after the build
	size         int64 // persisted bytes
	write, load  time.Duration
	firstQuery   time.Duration // first query after the load
	lat          map[keywordtest.QueryKind][]time.Duration
	top          map[keywordtest.QueryKind][][]uint32
	loadedHeap   int64
	extra        string
	hitsPerQuery map[keywordtest.QueryKind]float64
}

var kinds = []keywordtest.QueryKind{keywordtest.And2, keywordtest.OrCommon3, keywordtest.OrZipf4}

func modeOf(k keywordtest.QueryKind) keyword.Mode {
	if k == keywordtest.And2 {
		return keyword.And
	}
	return keyword.Or
}

func run(c config) error {
	dir := c.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "kwbench")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	corpus := keywordtest.New(c.seed)
	t0 := time.Now()
	docs := make([]string, c.n)
	bytesTotal := 0
	for i := range docs {
		docs[i] = corpus.Doc(i)
		bytesTotal += len(docs[i])
	}
	queries := map[keywordtest.QueryKind][]string{}
	for _, k := range kinds {
		queries[k] = corpus.Queries(k, c.queries)
	}
	fmt.Printf("corpus: %d docs, %.0f bytes/doc average, vocabulary %d, Zipf s=%.2f, generated in %v; GOMAXPROCS=%d, %s\n",
		c.n, float64(bytesTotal)/float64(c.n), corpus.Vocab, keywordtest.ZipfS, time.Since(t0).Round(time.Millisecond), runtime.GOMAXPROCS(0), runtime.Version())
	ours, err := measureKeyword(c, dir, docs, queries)
	if err != nil {
		return err
	}
	all := []*figures{ours}
	if !c.skipBleve {
		bl, err := measureBleve(c, dir, docs, queries)
		if err != nil {
			return err
		}
		all = append(all, bl)
	}
	report(c, all, queries)
	return nil
}

// heapInUse returns the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func measureKeyword(c config, dir string, docs []string, queries map[keywordtest.QueryKind][]string) (*figures, error) {
	f := &figures{name: "keyword (this package)"}
	before := heapInUse()
	t0 := time.Now()
	x := keyword.New(keyword.Config{})
	for i, d := range docs {
		if err := x.Add(uint32(i), d); err != nil {
			return nil, err
		}
	}
	f.build = time.Since(t0)
	f.heap = heapInUse() - before
	st := x.Stats()
	f.extra = fmt.Sprintf("%d terms, %d postings (%.1f per doc)", st.Terms, st.Postings, float64(st.Postings)/float64(st.Docs))
	path := filepath.Join(dir, "keyword.idx")
	t0 = time.Now()
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if _, err := x.WriteTo(out); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	f.write = time.Since(t0)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	f.size = fi.Size()
	x = nil
	before = heapInUse()
	t0 = time.Now()
	y, err := load(path)
	if err != nil {
		return nil, err
	}
	f.load = time.Since(t0)
	f.loadedHeap = heapInUse() - before
	t0 = time.Now()
	if _, err := y.Search(queries[keywordtest.OrZipf4][0], c.k, keyword.Or, nil); err != nil {
		return nil, err
	}
	f.firstQuery = time.Since(t0)
	f.lat, f.top, f.hitsPerQuery = map[keywordtest.QueryKind][]time.Duration{}, map[keywordtest.QueryKind][][]uint32{}, map[keywordtest.QueryKind]float64{}
	for _, kind := range kinds {
		for pass := range 2 {
			var lat []time.Duration
			var tops [][]uint32
			hits := 0
			for _, q := range queries[kind] {
				t0 := time.Now()
				res, err := y.Search(q, c.k, modeOf(kind), nil)
				lat = append(lat, time.Since(t0))
				if err != nil {
					return nil, err
				}
				hits += len(res)
				tops = append(tops, keysOf(res))
			}
			if pass == 1 { // the first pass warms caches
				f.lat[kind], f.top[kind] = lat, tops
				f.hitsPerQuery[kind] = float64(hits) / float64(len(queries[kind]))
			}
		}
	}
	runtime.KeepAlive(y)
	return f, nil
}

// load reads the index file in one read and decodes it.
func load(path string) (*keyword.Index, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return keyword.Read(bytes.NewReader(data))
}

func keysOf(res []keyword.Result) []uint32 {
	out := make([]uint32, len(res))
	for i, r := range res {
		out[i] = r.Key
	}
	return out
}

// leanMapping indexes one text field and stores nothing: the text lives
// in git, the index only has to find keys.
func leanMapping() *mapping.IndexMappingImpl {
	im := bleve.NewIndexMapping()
	im.ScoringModel = index.BM25Scoring
	im.DefaultAnalyzer = standard.Name
	im.StoreDynamic, im.IndexDynamic, im.DocValuesDynamic = false, false, false
	body := bleve.NewTextFieldMapping()
	body.Analyzer = standard.Name
	body.Store, body.IncludeTermVectors, body.IncludeInAll, body.DocValues = false, false, false, false
	dm := bleve.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt("body", body)
	im.DefaultMapping = dm
	return im
}

func measureBleve(c config, dir string, docs []string, queries map[keywordtest.QueryKind][]string) (*figures, error) {
	f := &figures{name: "bleve v2.6.3 lean"}
	path := filepath.Join(dir, "bleve")
	before := heapInUse()
	t0 := time.Now()
	ix, err := bleve.New(path, leanMapping())
	if err != nil {
		return nil, err
	}
	b := ix.NewBatch()
	for i, d := range docs {
		if err := b.Index(strconv.Itoa(i), map[string]any{"body": d}); err != nil {
			return nil, err
		}
		if b.Size() >= c.batch || i == len(docs)-1 {
			if err := ix.Batch(b); err != nil {
				return nil, err
			}
			b.Reset()
		}
	}
	f.build = time.Since(t0)
	f.heap = heapInUse() - before
	t0 = time.Now()
	if err := ix.Close(); err != nil {
		return nil, err
	}
	f.write = time.Since(t0)
	f.size = dirSize(path)
	before = heapInUse()
	t0 = time.Now()
	ix, err = bleve.Open(path)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	f.load = time.Since(t0)
	t0 = time.Now()
	if _, err := bleveSearch(ix, queries[keywordtest.OrZipf4][0], keywordtest.OrZipf4, c.k); err != nil {
		return nil, err
	}
	f.firstQuery = time.Since(t0)
	f.loadedHeap = heapInUse() - before
	f.lat, f.top, f.hitsPerQuery = map[keywordtest.QueryKind][]time.Duration{}, map[keywordtest.QueryKind][][]uint32{}, map[keywordtest.QueryKind]float64{}
	for _, kind := range kinds {
		for pass := range 2 {
			var lat []time.Duration
			var tops [][]uint32
			hits := 0
			for _, q := range queries[kind] {
				t0 := time.Now()
				top, err := bleveSearch(ix, q, kind, c.k)
				lat = append(lat, time.Since(t0))
				if err != nil {
					return nil, err
				}
				hits += len(top)
				tops = append(tops, top)
			}
			if pass == 1 {
				f.lat[kind], f.top[kind] = lat, tops
				f.hitsPerQuery[kind] = float64(hits) / float64(len(queries[kind]))
			}
		}
	}
	return f, nil
}

func bleveSearch(ix bleve.Index, q string, kind keywordtest.QueryKind, k int) ([]uint32, error) {
	mq := query.NewMatchQuery(q)
	mq.SetField("body")
	if kind == keywordtest.And2 {
		mq.SetOperator(query.MatchQueryOperatorAnd)
	}
	req := bleve.NewSearchRequestOptions(mq, k, 0, false)
	res, err := ix.Search(req)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, len(res.Hits))
	for i, h := range res.Hits {
		n, err := strconv.ParseUint(h.ID, 10, 32)
		if err != nil {
			return nil, err
		}
		out[i] = uint32(n)
	}
	return out, nil
}

func dirSize(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func pct(lat []time.Duration, p float64) time.Duration {
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func report(c config, all []*figures, queries map[keywordtest.QueryKind][]string) {
	row := func(label string, val func(f *figures) string) {
		fmt.Printf("| %s |", label)
		for _, f := range all {
			fmt.Printf(" %s |", val(f))
		}
		fmt.Println()
	}
	fmt.Printf("\n| %d docs |", c.n)
	for _, f := range all {
		fmt.Printf(" %s |", f.name)
	}
	fmt.Printf("\n|---|")
	for range all {
		fmt.Printf("---:|")
	}
	fmt.Println()
	row("build", func(f *figures) string {
		return fmt.Sprintf("%.2f s (%.0f docs/s)", f.build.Seconds(), float64(c.n)/f.build.Seconds())
	})
	row("heap after build", func(f *figures) string {
		if f.heap < 0 { // bleve's segments live in mmap'd files, not in the heap
			return fmt.Sprintf("none (the heap shrank by %s)", mib(-f.heap))
		}
		return fmt.Sprintf("%s (%.0f B/doc)", mib(f.heap), float64(f.heap)/float64(c.n))
	})
	row("persist (write / close)", func(f *figures) string { return fmt.Sprintf("%.2f s", f.write.Seconds()) })
	row("persisted size", func(f *figures) string {
		return fmt.Sprintf("%s (%.0f B/doc)", mib(f.size), float64(f.size)/float64(c.n))
	})
	row("load (read+verify / open)", func(f *figures) string { return ms(f.load) })
	row("first query after load", func(f *figures) string { return ms(f.firstQuery) })
	row("heap after load", func(f *figures) string { return mib(f.loadedHeap) })
	for _, kind := range kinds {
		row(fmt.Sprintf("%s p50 / p99 / mean", kind), func(f *figures) string {
			var sum time.Duration
			for _, l := range f.lat[kind] {
				sum += l
			}
			return fmt.Sprintf("%s / %s / %s", ms(pct(f.lat[kind], 0.5)), ms(pct(f.lat[kind], 0.99)), ms(sum/time.Duration(len(f.lat[kind]))))
		})
	}
	for _, kind := range kinds {
		row(fmt.Sprintf("%s results per query", kind), func(f *figures) string { return fmt.Sprintf("%.2f", f.hitsPerQuery[kind]) })
	}
	for _, f := range all {
		if f.extra != "" {
			fmt.Printf("\n%s: %s\n", f.name, f.extra)
		}
	}
	if len(all) == 2 {
		for _, kind := range kinds {
			fmt.Printf("top-%d overlap with bleve, %s: %.1f%%\n", c.k, kind, 100*overlap(all[0].top[kind], all[1].top[kind]))
		}
	}
}

// overlap is the mean share of one engine's top keys found in the other's.
func overlap(a, b [][]uint32) float64 {
	sum, n := 0.0, 0
	for i := range a {
		if len(a[i]) == 0 && len(b[i]) == 0 {
			continue
		}
		common := 0
		for _, k := range a[i] {
			if slices.Contains(b[i], k) {
				common++
			}
		}
		sum += float64(common) / float64(max(len(a[i]), len(b[i])))
		n++
	}
	if n == 0 {
		return 1
	}
	return sum / float64(n)
}
