package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"golang.org/x/sys/unix"
)

// loadResult summarises one load run.
type loadResult struct {
	Ops     int           `json:"ops"`
	Errors  int           `json:"errors"`
	Elapsed time.Duration `json:"elapsed_ns"`
	// CPU is the CPU time (user and system) this process used during
	// the run: the servers it hosts and the clients together.
	CPU time.Duration `json:"cpu_ns"`
	// ServerCPU is the CPU time (user and system) of the server process
	// during the run, when the server is a child measured by
	// [server.measure] (0 otherwise).
	ServerCPU time.Duration `json:"server_cpu_ns,omitempty"`
	lat       []time.Duration
	firstErr  error
}

func (r *loadResult) rate() float64 { return float64(r.Ops) / r.Elapsed.Seconds() }

// cores is the CPU time used per second of the run: how many cores the
// process kept busy on average.
func (r *loadResult) cores() float64 { return r.CPU.Seconds() / r.Elapsed.Seconds() }

// cpuPerOp is the process's CPU time per successful op.
func (r *loadResult) cpuPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Ops)
}

// serverCPUPerOp is the server process's CPU time per successful op.
func (r *loadResult) serverCPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Ops)
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p * float64(len(r.lat)-1))
	return r.lat[i]
}

func (r *loadResult) String() string {
	s := fmt.Sprintf("%d ok, %d errors in %.1fs: %.0f/s; latency p50 %s p90 %s p99 %s max %s",
		r.Ops, r.Errors, r.Elapsed.Seconds(), r.rate(), r.pct(0.5), r.pct(0.9), r.pct(0.99), r.pct(1))
	if r.firstErr != nil {
		s += "; first error: " + describe(r.firstErr)
	}
	return s
}

// load runs op from n workers until dur passes or max ops are done (0: no
// maximum), recording each successful op's latency.
func load(ctx context.Context, n int, dur time.Duration, max int, op func(ctx context.Context, worker int) error) *loadResult {
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var mu sync.Mutex
	res := &loadResult{}
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), processCPU()
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			var firstErr error
			for ctx.Err() == nil {
				t := time.Now()
				err := op(ctx, w)
				if ctx.Err() != nil {
					break // cut off by the deadline: neither success nor failure
				}
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t))
				if max > 0 && len(lat)*n >= max {
					break
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.Errors += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed, res.CPU = time.Since(start), processCPU()-cpu0
	res.Ops = len(res.lat)
	slices.Sort(res.lat)
	return res
}

// benchClient is an HTTP client sized for n concurrent workers, with
// extra options (TLS).
func benchClient(server, token string, n int, extra ...httpapi.ClientOption) *httpapi.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = n+8, n+8
	opts := []httpapi.ClientOption{httpapi.WithHTTPClient(&http.Client{Transport: tr, Timeout: 60 * time.Second})}
	if token != "" {
		opts = append(opts, httpapi.WithToken(token))
	}
	return httpapi.NewClient(strings.TrimRight(server, "/"), append(opts, extra...)...)
}

// payloadWords is the vocabulary of benchPayload: that of the search
// benchmark's texts, 1,000 topics.
var payloadWords = sync.OnceValue(func() *textGen { return newTextGen(1, 1000) })

// benchPayload returns size bytes of text about a random topic, drawn as
// the search benchmark's texts are (topic and common words with Zipf-like
// frequencies): every call gives other text, as agents' notes differ, so
// that the search indexes do the work real contexts give them (one text
// repeated embeds to one vector, which an index treats as a special case).
func benchPayload(size int) string {
	g := payloadWords()
	t := rand.IntN(len(g.topics))
	var b strings.Builder
	b.Grow(size + 16)
	for b.Len() < size {
		b.WriteString(g.word(globalRand{}, t))
		b.WriteByte(' ')
	}
	return b.String()[:size]
}

// writeOp stores contexts of the given size through c, each with its own
// text.
func writeOp(c nexus.Store, size int) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		_, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: benchPayload(size), AgentID: fmt.Sprintf("bench-%d", w), Namespace: "bench"})
		return err
	}
}

// readOp reads random ids out of ids through c.
func readOp(c nexus.Store, ids []nexus.ID) func(context.Context, int) error {
	return func(ctx context.Context, _ int) error {
		_, err := c.Get(ctx, ids[rand.IntN(len(ids))])
		return err
	}
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return runBenchReport(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "noop-server" {
		return runNoopServer(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "search" {
		return runBenchSearch(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "quality" {
		return runBenchQuality(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "mcp" {
		return runBenchMCP(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "recovery" {
		return runBenchRecovery(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "events" {
		return runBenchEvents(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "cluster" {
		return runBenchCluster(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "console" {
		return runBenchConsole(ctx, args[1:], stdout, stderr)
	}
	fs, cf := newClientFlagSet("bench", stderr)
	writers := fs.Int("writers", 8, "concurrent writers")
	readers := fs.Int("readers", 0, "concurrent readers (ids come from a seed of written contexts)")
	dur := fs.Duration("duration", 10*time.Second, "how long to run")
	size := fs.Int("size", 512, "content bytes per context")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus bench [flags]          load-test a running server\n       nexus bench report [flags]   measure the store's figures of docs/BENCHMARKS.md\n       nexus bench search [flags]   measure the search figures (build, latency, recall)\n       nexus bench quality [flags]  measure search quality on the labelled evaluation sets (hit@k, MRR, nDCG)\n       nexus bench mcp [flags]      measure MCP tool call latency over stdio and HTTP\n       nexus bench events [flags]   measure event delivery to subscribers (GET /v1/events)\n       nexus bench recovery [flags] measure recovery times: faults injected into a generated store\n       nexus bench cluster [flags]  measure cluster mode: throughput, leader failover, catch-up, snapshots\n       nexus bench console [flags]  measure the web console's page loads in headless chromium on a generated store")
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *writers < 0 || *readers < 0 || *writers+*readers == 0 || *size <= 0 || *dur <= 0 {
		return usagef("need writers or readers > 0, size > 0, duration > 0")
	}
	c := benchClient(cf.server, cf.token, *writers+*readers, cf.tls.options()...)
	var ids []nexus.ID
	if *readers > 0 {
		var err error
		if ids, err = seedContexts(ctx, c, 1000, *size); err != nil {
			return err
		}
	}
	var wres, rres *loadResult
	var wg sync.WaitGroup
	if *writers > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); wres = load(ctx, *writers, *dur, 0, writeOp(c, *size)) }()
	}
	if *readers > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); rres = load(ctx, *readers, *dur, 0, readOp(c, ids)) }()
	}
	wg.Wait()
	if wres != nil {
		fmt.Fprintf(stdout, "writes (%d clients, %d B): %s\n", *writers, *size, wres)
	}
	if rres != nil {
		fmt.Fprintf(stdout, "reads  (%d clients): %s\n", *readers, rres)
	}
	return nil
}

// seedContexts writes n contexts through c and returns their ids.
func seedContexts(ctx context.Context, c nexus.Store, n, size int) ([]nexus.ID, error) {
	var mu sync.Mutex
	var ids []nexus.ID
	res := load(ctx, 8, 5*time.Minute, n, func(ctx context.Context, w int) error {
		x, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: benchPayload(size), Namespace: "bench"})
		if err == nil {
			mu.Lock()
			ids = append(ids, x.ID)
			mu.Unlock()
		}
		return err
	})
	if len(ids) == 0 {
		return nil, fmt.Errorf("cannot seed contexts to read: %v", res)
	}
	return ids, nil
}
