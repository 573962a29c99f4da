package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/internal/browsertest"
)

// consoleConfig sizes `nexus bench console`.
type consoleConfig struct {
	contexts, runs int
	dir            string
	keep, noSearch bool
	timeout        time.Duration
}

// runBenchConsole measures the web console's load time: a store is
// generated (threads in several namespaces, types and agents, with
// metadata; its search index built by `nexus reindex`), this binary
// serves it as a child process (loopback, no token), and headless
// chromium loads each page, cold (browser cache cleared, new tab) and
// warm (the same tab, cache kept), timed from the navigation's start to
// the page's data-ready mark by the page's own clock.
func runBenchConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := consoleConfig{}
	fs.IntVar(&c.contexts, "contexts", 100000, "contexts in the generated store")
	fs.IntVar(&c.runs, "runs", 5, "loads of each page, cold and warm")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "longest a page may take to be ready")
	fs.StringVar(&c.dir, "dir", "", "work directory (default: a new temp dir); a store kept there by --keep with the same --contexts is used again (and kept)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (the generated store and its index)")
	fs.BoolVar(&c.noSearch, "no-search", false, "no search index: the node runs --no-search (no `nexus reindex`), the Search page is left out and the Context page's related contexts say search is off")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if c.contexts < consoleBlock || c.runs <= 0 || c.timeout <= 0 {
		return usagef("--contexts must be at least %d, --runs and --timeout positive", consoleBlock)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	// Without --keep the run removes what it made, never a store an
	// earlier --keep run left in --dir.
	switch {
	case c.dir == "":
		if c.dir, err = os.MkdirTemp("", "nexus-bench-console-"); err != nil {
			return err
		}
		if !c.keep {
			defer os.RemoveAll(c.dir)
		}
	case !c.keep:
		if _, err := os.Stat(filepath.Join(c.dir, consoleStoreMeta)); errors.Is(err, os.ErrNotExist) {
			defer os.Remove(filepath.Join(c.dir, consoleStoreMeta))
			defer os.RemoveAll(filepath.Join(c.dir, "data"))
		}
	}
	b := &consoleBench{cfg: c, exe: exe, data: filepath.Join(c.dir, "data"), out: stdout, log: stderr}
	return b.run(ctx)
}

type consoleBench struct {
	cfg      consoleConfig
	exe      string
	data     string
	out, log io.Writer
	store    consoleStore
	thread   nexus.ID // a context with a parent, a grandparent and replies
	query    string
}

// consoleStore is what the generated store holds for the pages to show;
// kept in DIR/console-store.json so that a kept store is used again.
type consoleStore struct {
	Contexts int       `json:"contexts"`
	Fill     string    `json:"fill"`              // how long the fill took
	Reindex  string    `json:"reindex,omitempty"` // how long `nexus reindex` took; empty: not built yet
	Made     time.Time `json:"made"`
}

// The store is written in blocks of consoleBlock contexts, each a thread
// in one namespace: a root; two replies to it; a reply to the second
// (the context the Context page opens, at consoleThreadAt); and four
// replies to that one.
const (
	consoleBlock    = 8
	consoleThreadAt = 3
)

var (
	consoleNamespaces = []string{"team-a", "team-b", "ops", "research"}
	consoleAgents     = []string{"planner", "analyst", "reviewer", "observer", "summarizer", "worker-7"}
	consoleTypes      = []nexus.Type{nexus.TypeInstruction, nexus.TypeAnalysis, nexus.TypeObservation, nexus.TypeDecision, nexus.TypeMemory, nexus.TypeResult}
)

// consolePage is one page the bench loads.
type consolePage struct {
	name, route string
	base        string // the server it is loaded from; empty: the node
}

func (b *consoleBench) say(format string, args ...any) { fmt.Fprintf(b.log, format+"\n", args...) }

func (b *consoleBench) run(ctx context.Context) error {
	fmt.Fprintf(b.out, "# nexus bench console — %s, %d contexts, %d runs, GOMAXPROCS %d, load average %s\n\n",
		time.Now().UTC().Format(time.RFC3339), b.cfg.contexts, b.cfg.runs, runtime.GOMAXPROCS(0), loadAverage())
	if err := b.prepare(ctx); err != nil {
		return fmt.Errorf("generate the store: %w", err)
	}
	index, flags := fmt.Sprintf("indexed in %s (`nexus reindex`)", b.store.Reindex), []string{}
	if b.cfg.noSearch {
		index, flags = "no search index (--no-search)", []string{"--no-search"}
	}
	fmt.Fprintf(b.out, "store: %d contexts in threads of %d, %d namespaces, %d agents, %d types, metadata on each; filled in %s (Apply, batches of 1024); %s\n\n",
		b.store.Contexts, consoleBlock, len(consoleNamespaces), len(consoleAgents), len(consoleTypes), b.store.Fill, index)
	t0 := time.Now()
	srv, err := startServer(ctx, b.data, b.log, flags...)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := b.waitReady(ctx, srv.url); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "node: `nexus serve --data DATA --addr 127.0.0.1:0 --rate-limit=0 %s` (loopback, no token), ready (store opened%s) in %s\n\n",
		strings.Join(flags, " "), map[bool]string{false: ", index loaded", true: ""}[b.cfg.noSearch], secs(time.Since(t0)))
	pages := []consolePage{
		{"overview", "#/overview", ""},
		{"contexts", "#/contexts", ""},
		{"context", "#/contexts/" + b.thread.String(), ""},
		{"search", "#/search?q=" + url.QueryEscape(b.query), ""},
		{"agents", "#/agents", ""},
		{"recovery", "#/recovery", ""},
		{"cluster", "#/cluster", ""},
	}
	if b.cfg.noSearch {
		pages = slices.DeleteFunc(pages, func(p consolePage) bool { return p.name == "search" })
	}
	floor, stopFloor, err := serveFloor()
	if err != nil {
		return err
	}
	defer stopFloor()
	pages = append(pages, consolePage{"floor", "floor.html", floor})
	results, err := b.measure(ctx, srv.url, pages)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "Each load is timed from the navigation's start (the page's `performance.timeOrigin`) to `main#page[data-ready=\"true\"]` (the page's first data shown), by the page's own clock. Cold: browser cache cleared, a new tab. Warm: the same tab navigated to the page again (files revalidated: 304s). Bytes: transferred (headers and bodies, the page and every request) until ready. Slowest API request: the longest request to the node (not a console file) made before ready, over every load of the page.\n\n")
	fmt.Fprintf(b.out, "| page | route | cold p50 | cold max | warm p50 | warm max | bytes cold | bytes warm | requests | slowest API request |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for i, p := range pages {
		r := results[i]
		route := p.route
		switch p.name {
		case "context":
			route = "#/contexts/ID"
		case "floor":
			route = "/floor.html (not the node)"
		}
		fmt.Fprintf(b.out, "| %s | `%s` | %s | %s | %s | %s | %s | %s | %d | `%s` %s |\n", p.name, route,
			ms(r.cold.p50()), ms(r.cold.max()), ms(r.warm.p50()), ms(r.warm.max()),
			kb(r.coldBytes), kb(r.warmBytes), r.requests, r.slowPath, ms(r.slowMs))
	}
	fmt.Fprintf(b.out, "\nfloor: the same browser loading a page of this bench's own loopback Go server that fetches one small JSON document and marks itself ready (no console code): what any page costs on this machine.\n")
	fmt.Fprintf(b.out, "\nload average at the end: %s\n", loadAverage())
	return nil
}

// floorHTML is the baseline page: one fetch, then the ready mark the
// console's pages set, read by the same consoleLoadJS.
const floorHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>floor</title></head>
<body><main id="page" data-page="floor"></main>
<script type="module">
const m = document.getElementById('page');
const body = await (await fetch('/floor.json')).json();
m.textContent = body.text;
m.dataset.readyAt = String(Math.round(performance.now()));
m.dataset.ready = 'true';
</script></body></html>
`

// serveFloor serves the baseline page on a loopback port and returns its
// base URL and a function that stops it.
func serveFloor() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /floor.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, floorHTML)
	})
	mux.HandleFunc("GET /floor.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"text":"ready"}`)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// consoleStoreMeta is the file in --dir that describes a kept store.
const consoleStoreMeta = "console-store.json"

// prepare generates the store (or takes the one a --keep run left in the
// directory with the same number of contexts, finishing its index if
// that run stopped before), then finds in it the thread the Context page
// opens and the query the Search page asks.
func (b *consoleBench) prepare(ctx context.Context) error {
	meta := filepath.Join(b.cfg.dir, consoleStoreMeta)
	raw, err := os.ReadFile(meta)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &b.store); err != nil {
			return fmt.Errorf("%s: %w", meta, err)
		}
		if b.store.Contexts != b.cfg.contexts {
			return fmt.Errorf("%s holds a store of %d contexts, not %d: use another --dir", b.cfg.dir, b.store.Contexts, b.cfg.contexts)
		}
		fmt.Fprintf(b.out, "using the store generated on %s and kept in %s\n\n", b.store.Made.UTC().Format(time.RFC3339), b.cfg.dir)
	case !errors.Is(err, os.ErrNotExist):
		return err
	default:
		if _, err := os.Stat(b.data); err == nil {
			return fmt.Errorf("%s holds a data directory this bench did not finish filling: remove it or use another --dir", b.data)
		}
		if err := b.fill(ctx); err != nil {
			return err
		}
		if err := b.save(meta); err != nil {
			return err
		}
	}
	if err := b.findThread(ctx); err != nil {
		return err
	}
	if b.cfg.noSearch || b.store.Reindex != "" {
		return nil
	}
	b.say("building the search index (nexus reindex)")
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, b.exe, "reindex", "--data", b.data)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nexus reindex: %w", err)
	}
	b.store.Reindex = secs(time.Since(t0))
	return b.save(meta)
}

func (b *consoleBench) save(meta string) error {
	raw, err := json.Marshal(b.store)
	if err != nil {
		return err
	}
	return os.WriteFile(meta, raw, 0o644)
}

// fill writes the store: blocks of consoleBlock contexts, each a thread
// in one namespace, several agents and types, metadata on each.
func (b *consoleBench) fill(ctx context.Context) error {
	gen := newTextGen(1, 1000)
	topics := len(gen.topics)
	var block [consoleBlock]nexus.ID
	parent := [consoleBlock]int{-1, 0, 0, 2, 3, 3, 3, 3}
	t0 := time.Now()
	err := fillContexts(ctx, b.data, b.cfg.contexts, newProgress(b.log, "store"), func(i int, c *nexus.Context) {
		blk, j := i/consoleBlock, i%consoleBlock
		topic := blk % topics
		c.Namespace = consoleNamespaces[blk%len(consoleNamespaces)]
		c.AgentID = consoleAgents[(blk+j)%len(consoleAgents)]
		c.Type = consoleTypes[(blk+j)%len(consoleTypes)]
		c.Content = gen.text(topic, 40)
		c.Metadata = fmt.Appendf(nil, `{"ticket":"T-%d","topic":%d}`, blk, topic)
		if p := parent[j]; p >= 0 {
			c.ParentID = block[p]
		}
		block[j] = c.ID
	})
	if err != nil {
		return err
	}
	b.store.Fill = secs(time.Since(t0))
	b.store.Contexts, b.store.Made = b.cfg.contexts, time.Now()
	b.say("store filled in %s", b.store.Fill)
	return nil
}

// findThread finds the context the Context page opens: the one at
// consoleThreadAt of the middle block (a reply with a parent, a
// grandparent and replies), its time a microsecond per context after the
// first's; the Search page asks for the first four words of its text.
func (b *consoleBench) findThread(ctx context.Context) error {
	st, err := gitstore.Open(b.data, gitstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	if st.Len() != b.store.Contexts {
		return fmt.Errorf("the store holds %d contexts, not %d", st.Len(), b.store.Contexts)
	}
	first, err := st.List(ctx, nexus.Filter{Order: nexus.Oldest, Limit: 1})
	if err != nil || len(first.Contexts) != 1 {
		return fmt.Errorf("the store's first context: %v", err)
	}
	i := b.store.Contexts/consoleBlock/2*consoleBlock + consoleThreadAt
	at := first.Contexts[0].Timestamp.Add(time.Duration(i) * time.Microsecond)
	page, err := st.List(ctx, nexus.Filter{Order: nexus.Oldest, Since: at, Limit: 1})
	if err != nil || len(page.Contexts) != 1 {
		return fmt.Errorf("context %d of the store: %v", i, err)
	}
	c := page.Contexts[0]
	kids, err := st.Children(ctx, c.ID)
	if err != nil {
		return err
	}
	if c.ParentID.IsZero() || len(kids) != consoleBlock-consoleThreadAt-1 {
		return fmt.Errorf("context %d of the store (%s) is not the middle of a thread: parent %q, %d replies", i, c.ID, c.ParentID, len(kids))
	}
	b.thread = c.ID
	words := strings.Fields(c.Content)
	b.query = strings.Join(words[:min(4, len(words))], " ")
	return nil
}

// waitReady polls /health until the node answers it and its index (if
// it has one) holds every context.
func (b *consoleBench) waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(10 * time.Minute)
	var last string
	for {
		h, err := getHealth(ctx, base)
		if err == nil {
			lag, indexed := detail(h, nexus.ComponentIndex, "lag"), detail(h, nexus.ComponentIndex, "indexed")
			if b.cfg.noSearch || lag == 0 && int(indexed) >= b.store.Contexts {
				return nil
			}
			last = fmt.Sprintf("index: %.0f indexed, lag %.0f", indexed, lag)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the node's index did not hold the %d contexts within 10 minutes (%s)", b.store.Contexts, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(benchPoll):
		}
	}
}

func getHealth(ctx context.Context, base string) (nexus.Health, error) {
	var h nexus.Health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return h, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return h, fmt.Errorf("GET /health: %s", resp.Status)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// pageLoad is what one load of a page measured, read in the page.
type pageLoad struct {
	Page     string  `json:"page"`
	ReadyMs  float64 `json:"ready_ms"`
	Bytes    int64   `json:"bytes"`
	Requests int     `json:"requests"`
	SlowPath string  `json:"slow_path"`
	SlowMs   float64 `json:"slow_ms"`
}

// consoleLoadJS reads, after the page is ready, the time from the
// navigation's start to the ready mark (set by the page with
// performance.now(), whose origin is the navigation's start) and the
// resource timing of everything that finished before it.
const consoleLoadJS = `(() => {
  const m = document.getElementById('page');
  const ready = Number(m.dataset.readyAt);
  const nav = performance.getEntriesByType('navigation')[0];
  let bytes = nav ? nav.transferSize : 0, requests = nav ? 1 : 0, slowPath = '', slowMs = 0;
  for (const e of performance.getEntriesByType('resource')) {
    if (e.responseEnd > ready) continue;
    bytes += e.transferSize;
    requests++;
    const u = new URL(e.name);
    if (u.origin !== location.origin || u.pathname.startsWith('/console/')) continue;
    const d = e.responseEnd - e.startTime;
    if (d > slowMs) { slowMs = d; slowPath = u.pathname + u.search.replace(/cursor=[^&]*/, 'cursor=…'); }
  }
  return { page: m.dataset.page, ready_ms: ready, bytes, requests, slow_path: slowPath, slow_ms: slowMs };
})()`

// pageResult gathers the loads of one page.
type pageResult struct {
	cold, warm           durations
	coldBytes, warmBytes int64 // of the last run
	requests             int   // of the last cold load
	slowPath             string
	slowMs               float64
}

type durations []float64

func (d durations) p50() float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func (d durations) max() float64 { return slices.Max(d) }

// measure loads each page --runs times cold and warm.
func (b *consoleBench) measure(ctx context.Context, base string, pages []consolePage) ([]pageResult, error) {
	profile := filepath.Join(b.cfg.dir, "chromium")
	if err := os.RemoveAll(profile); err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	br, stop, err := browsertest.Launch(profile)
	if err != nil {
		return nil, err
	}
	defer stop()
	results := make([]pageResult, len(pages))
	for run := range b.cfg.runs {
		for i, p := range pages {
			b.say("run %d of %d: %s", run+1, b.cfg.runs, p.name)
			from := base
			if p.base != "" {
				from = p.base
			}
			cold, warm, err := b.loadTwice(br, from, p)
			if err != nil {
				return nil, fmt.Errorf("%s (%s), run %d: %w", p.name, p.route, run+1, err)
			}
			r := &results[i]
			r.cold, r.warm = append(r.cold, cold.ReadyMs), append(r.warm, warm.ReadyMs)
			r.coldBytes, r.warmBytes, r.requests = cold.Bytes, warm.Bytes, cold.Requests
			for _, l := range []pageLoad{cold, warm} {
				if l.SlowMs > r.slowMs {
					r.slowMs, r.slowPath = l.SlowMs, l.SlowPath
				}
			}
		}
	}
	return results, nil
}

// loadTwice opens the page cold in a new tab with the browser's cache
// cleared, then warm in the same tab (through about:blank, so that it is
// a navigation, not a change of the hash).
func (b *consoleBench) loadTwice(br *browsertest.Browser, base string, p consolePage) (cold, warm pageLoad, err error) {
	tab, closeTab, err := br.Open(1280, 800)
	if err != nil {
		return cold, warm, err
	}
	defer closeTab()
	if err := b.step(tab, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.ClearBrowserCache, cdp.Empty{})
		return err
	})); err != nil {
		return cold, warm, fmt.Errorf("clearing the browser cache: %w", err)
	}
	if cold, err = b.load(tab, base+"/"+p.route, p.name); err != nil {
		return cold, warm, err
	}
	if err := b.step(tab, chromedp.Navigate("about:blank")); err != nil {
		return cold, warm, err
	}
	warm, err = b.load(tab, base+"/"+p.route, p.name)
	return cold, warm, err
}

func (b *consoleBench) step(tab *browsertest.Tab, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tab.Ctx, b.cfg.timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// load navigates the tab to u and waits for the page to be ready; a
// console error or a page not ready within the timeout fails it.
func (b *consoleBench) load(tab *browsertest.Tab, u, page string) (pageLoad, error) {
	var l pageLoad
	ready := fmt.Sprintf(`main#page[data-page=%q][data-ready="true"]`, page)
	err := b.step(tab, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS(ready)))
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("not ready within %s", b.cfg.timeout)
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(tab.Ctx, b.cfg.timeout)
		l, err = chromedp.Run(ctx, chromedp.Evaluate[pageLoad](consoleLoadJS))
		cancel()
	}
	errs := tab.Errors()
	if b.cfg.noSearch {
		// Without search, GET …/related answers 503, which the page
		// shows ("Search is off on this node") and chromium logs.
		errs = slices.DeleteFunc(errs, func(e string) bool {
			return strings.Contains(e, "status of 503") && strings.Contains(e, "/related?")
		})
	}
	if len(errs) > 0 {
		return l, fmt.Errorf("console errors: %s", strings.Join(errs, "; "))
	}
	if err != nil {
		return l, err
	}
	if l.Page != page || l.ReadyMs <= 0 {
		return l, fmt.Errorf("the page read back as %q, ready at %.0f ms", l.Page, l.ReadyMs)
	}
	return l, nil
}

func ms(v float64) string { return fmt.Sprintf("%.0f ms", v) }

func kb(n int64) string { return fmt.Sprintf("%.1f kB", float64(n)/1000) }
