package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/browsertest"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/tasks"
)

// The web console's tests drive the real binary's console in a headless
// chromium, on a loopback node without a token (the console treats a
// node without GET /v1/session as one without authentication).

// consoleNode is a running node with what the console's pages show: a
// thread of three contexts, other contexts, an external agent holding a
// claimed task, and the incident of a restore.
type consoleNode struct {
	p      *proc
	c      *httpapi.Client
	thread []*nexus.Context // root, reply, reply to the reply
	answer *nexus.Context   // the pool's answer to the last, with its provenance
	kept   *nexus.Context   // written before everything else
	task   tasks.Task       // claimed by worker-1 (its Claim is a secret)
}

func startConsoleNode(t *testing.T) *consoleNode {
	t.Helper()
	// The node's own agent answers through a real OpenAI-compatible
	// endpoint served here; a pool holds it; a supervised process runs.
	llm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/models":
			io.WriteString(w, `{"object":"list","data":[{"id":"test-model","object":"model"}]}`)
		case "/v1/chat/completions":
			io.WriteString(w, `{"id":"c1","object":"chat.completion","model":"test-model","choices":[{"index":0,"message":{"role":"assistant","content":"Agreed: idempotency keys first, then a week of shadow writes."},"finish_reason":"stop"}],"usage":{"prompt_tokens":42,"completion_tokens":12}}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(llm.Close)
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeNodeConfig(t, fmt.Sprintf(`agents:
  - id: gpt
    provider: openai
    base_url: %s/v1
    model: test-model
    capabilities: [review]
pools:
  - {name: reviewers, members: [{agent: gpt}]}
supervisor:
  processes:
    - {name: sleeper, command: %s, args: ["600"]}
`, llm.URL, sleep))
	p := startServe(t, t.TempDir(), "--config="+cfg)
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() })
	n := &consoleNode{p: p, c: httpapi.NewClient(p.url)}
	ctx := t.Context()
	put := func(d nexus.Draft) *nexus.Context {
		t.Helper()
		x, err := n.c.Put(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	// A restore that rolls one context back: the node records it as an
	// incident.
	kept := put(nexus.Draft{Type: nexus.TypeMemory, Content: "the first fact, kept by the restore", AgentID: "seed"})
	n.kept = kept
	put(nexus.Draft{Type: nexus.TypeMemory, Content: "a fact the restore rolls back", AgentID: "seed"})
	if _, err := n.c.Restore(ctx, kept.Timestamp, false); err != nil {
		t.Fatal(err)
	}
	// The restore's incident is written by the node in the background.
	deadline := time.Now().Add(30 * time.Second)
	for !n.hasIncident(t) {
		if time.Now().After(deadline) {
			t.Fatal("the node recorded no incident for the restore within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	root := put(nexus.Draft{Namespace: "team-a", Type: nexus.TypeInstruction, Content: "Plan the billing migration to the new ledger", AgentID: "planner"})
	reply := put(nexus.Draft{Namespace: "team-a", Type: nexus.TypeAnalysis, Content: "The ledger needs idempotent writes: the old one double-counts retries", AgentID: "analyst", ParentID: root.ID})
	last := put(nexus.Draft{Namespace: "team-a", Type: nexus.TypeDecision, Content: "Migrate with idempotency keys and shadow writes for a week", AgentID: "planner", ParentID: reply.ID, Metadata: []byte(`{"ticket":"BILL-42"}`)})
	n.thread = []*nexus.Context{root, reply, last}
	answer, err := n.c.Process(ctx, orchestrator.Request{ContextID: last.ID, Agent: "reviewers"})
	if err != nil {
		t.Fatal(err)
	}
	n.answer = answer.Context
	for i := range 5 {
		put(nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprintf("cache warm-up run %d took longer after the deploy", i), AgentID: "observer"})
	}
	if _, err := n.c.RegisterAgent(ctx, "worker-1", "Summarizer", []string{"summarize"}); err != nil {
		t.Fatal(err)
	}
	// Like a live external agent, it renews its lease (30 s) until the
	// test ends, however slow the machine.
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n.c.Heartbeat(context.Background(), "worker-1")
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-stopped })
	if _, err := n.c.CreateTask(ctx, tasks.NewTask{Content: "summarize the ledger decision", Capability: "summarize", ParentID: last.ID, Namespace: "team-a"}); err != nil {
		t.Fatal(err)
	}
	task, ok, err := n.c.ClaimTask(ctx, "worker-1")
	if err != nil || !ok || task.Claim == "" {
		t.Fatalf("claiming the task: %+v %v %v", task, ok, err)
	}
	n.task = task
	return n
}

func (n *consoleNode) hasIncident(t *testing.T) bool {
	t.Helper()
	resp, err := http.Get(n.p.url + "/v1/incidents?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b struct{ Incidents []struct{ Kind string } }
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return len(b.Incidents) == 1 && b.Incidents[0].Kind == "restore"
}

// open opens the console in a new tab at the hash route and waits for
// the page's first data.
func (n *consoleNode) open(t *testing.T, b *browsertest.Browser, width int64, route, page string) *browsertest.Tab {
	t.Helper()
	tab := b.NewTab(t, width, 800)
	tab.Do(chromedp.Navigate(n.p.url + "/#/" + route))
	waitPage(tab, page)
	return tab
}

// goTo moves the open console to another page without reloading it.
func goTo(tab *browsertest.Tab, route, page string) {
	browsertest.Eval[bool](tab, fmt.Sprintf(`(h => {
		if (location.hash === h) return false;
		delete document.getElementById('page').dataset.ready;
		location.hash = h;
		return true;
	})(%q)`, "#/"+route))
	waitPage(tab, page)
}

func waitPage(tab *browsertest.Tab, page string) {
	tab.Do(chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`main#page[data-page=%q][data-ready="true"]`, page))))
}

// noConsoleErrors fails the test on any console error of the tab (the
// node at url has GET /v1/session: a token-less node answers it 200).
func noConsoleErrors(t *testing.T, tab *browsertest.Tab, url string) {
	t.Helper()
	if resp, err := http.Get(url + "/v1/session"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/session on a token-less node: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, e := range tab.Errors() {
		t.Errorf("console error: %s", e)
	}
}

func pageText(tab *browsertest.Tab, selector string) string {
	return browsertest.Eval[string](tab, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, selector))
}

func pageCount(tab *browsertest.Tab, selector string) int {
	return browsertest.Eval[int](tab, fmt.Sprintf(`document.querySelectorAll(%q).length`, selector))
}

// Each page loads with its data and no console error, at 1280 px and on
// a 390 px phone (nothing wider than the screen), and no page shows the
// claim token of a task.
func TestConsole_Pages(t *testing.T) {
	n := startConsoleNode(t)
	b := browsertest.Start(t)
	root, reply, last := n.thread[0], n.thread[1], n.thread[2]
	logPage, err := n.c.Log(t.Context(), nexus.LogFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var replyCommit string
	for _, e := range logPage.Entries {
		if e.ContextID == reply.ID {
			replyCommit = e.Commit
		}
	}
	if replyCommit == "" {
		t.Fatal("the reply's commit is not in the journal")
	}
	list, err := n.c.List(t.Context(), nexus.Filter{Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	var teamA []string // newest first: the thread, the task
	for _, c := range list.Contexts {
		teamA = append(teamA, c.ID.String())
	}
	if len(teamA) < 4 {
		t.Fatalf("team-a holds %v, want the thread and the task", teamA)
	}
	pages := []struct {
		route, page string
		check       func(t *testing.T, tab *browsertest.Tab)
	}{
		{"overview", "overview", func(t *testing.T, tab *browsertest.Tab) {
			for _, c := range []string{"context_manager", "git_repository", "memory_cache", "semantic_index", "backups"} {
				if got := browsertest.Eval[string](tab, fmt.Sprintf(`document.querySelector('#health [data-component=%q]')?.dataset.status || ""`, c)); got != "healthy" {
					t.Errorf("overview: component %s shows %q, want healthy", c, got)
				}
			}
			if got := pageCount(tab, "#charts figure.chart"); got != 6 {
				t.Errorf("overview: %d charts, want 6", got)
			}
			if got := pageCount(tab, "#recent li[data-id]"); got != 8 {
				t.Errorf("overview: %d newest contexts, want 8", got)
			}
			if got := pageCount(tab, "#incidents li"); got != 1 || !strings.Contains(pageText(tab, "#incidents"), "restore") {
				t.Errorf("overview: incidents %q (%d), want the restore", pageText(tab, "#incidents"), got)
			}
		}},
		{"contexts?namespace=team-a", "contexts", func(t *testing.T, tab *browsertest.Tab) {
			rows := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#list tbody tr[data-id]')].map(e => e.dataset.id)`)
			if fmt.Sprint(rows) != fmt.Sprint(teamA) {
				t.Errorf("contexts of team-a: rows %v, want %v (the API's list)", rows, teamA)
			}
		}},
		{"contexts/" + reply.ID.String(), "context", func(t *testing.T, tab *browsertest.Tab) {
			ids := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#thread .node')].map(e => e.dataset.id)`)
			want := []string{root.ID.String(), reply.ID.String(), last.ID.String()}
			if fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Errorf("thread nodes %v, want root, this, reply %v", ids, want)
			}
			if got := pageCount(tab, "#thread .node.current"); got != 1 {
				t.Errorf("thread: %d current nodes, want 1", got)
			}
			if got := pageText(tab, "#commit-hash"); got != replyCommit {
				t.Errorf("commit %q, want %q", got, replyCommit)
			}
			if got := pageText(tab, "#content"); got != reply.Content {
				t.Errorf("content %q, want %q", got, reply.Content)
			}
		}},
		{"contexts/" + n.answer.ID.String(), "context", func(t *testing.T, tab *browsertest.Tab) {
			prov := pageText(tab, "#provenance")
			for _, want := range []string{"Askedreviewers", "Answered bygpt", "Modeltest-model", "Tokens42 in, 12 out", "Requests1"} {
				if !strings.Contains(prov, want) {
					t.Errorf("provenance %q, want it to hold %q", prov, want)
				}
			}
			if got := pageCount(tab, "#thread .node"); got != 4 {
				t.Errorf("the answer's thread has %d nodes, want 4 (root, reply, decision, answer)", got)
			}
		}},
		{"search?q=ledger+idempotent&mode=hybrid", "search", func(t *testing.T, tab *browsertest.Tab) {
			if got := browsertest.Eval[string](tab, `document.querySelector('#hits .hit')?.dataset.id || ""`); got != reply.ID.String() {
				t.Errorf("search: first hit %q, want the reply %s", got, reply.ID)
			}
			sig := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#hits .hit:first-child [data-signal]')].map(e => e.dataset.signal)`)
			if fmt.Sprint(sig) != "[semantic keyword]" {
				t.Errorf("search: first hit's signals %v, want [semantic keyword]", sig)
			}
			if got := pageCount(tab, "#hits .hit:first-child mark"); got < 2 {
				t.Errorf("search: %d marked terms in the first snippet, want ledger and idempotent", got)
			}
		}},
		{"search?q=ledger+idempotent&as_of=" + n.kept.Timestamp.UTC().Format(time.RFC3339), "search", func(t *testing.T, tab *browsertest.Tab) {
			// As of the first context (to the second), the thread was not written yet.
			hits := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#hits .hit')].map(e => e.dataset.id)`)
			for _, c := range n.thread {
				if slices.Contains(hits, c.ID.String()) {
					t.Errorf("search as of %s found %s, written after", n.kept.Timestamp, c.ID)
				}
			}
			if s := pageText(tab, "#search-summary"); !strings.Contains(s, "as of "+n.kept.Timestamp.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05")) {
				t.Errorf("search summary %q, want it to say as of when", s)
			}
		}},
		{"agents", "agents", func(t *testing.T, tab *browsertest.Tab) {
			own := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#own-agents tbody tr')].map(r => [...r.cells].slice(0, 4).map(c => c.textContent).join('|'))`)
			if fmt.Sprint(own) != "[gpt|review|healthy|closed reviewers|—|pool|—]" {
				t.Errorf("agents: own agents %q, want gpt healthy and closed, and the pool", own)
			}
			if s := pageText(tab, "#processes"); !strings.Contains(s, "sleeper") || !strings.Contains(s, "running") {
				t.Errorf("agents: processes %q, want sleeper running", s)
			}
			if s := pageText(tab, "#external-agents"); !strings.Contains(s, "worker-1") || !strings.Contains(s, "active") {
				t.Errorf("agents: external agents %q, want worker-1 active", s)
			}
			if s := pageText(tab, "#tasks"); !strings.Contains(s, "claimed") || !strings.Contains(s, "summarize the ledger decision") {
				t.Errorf("agents: tasks %q, want the claimed task", s)
			}
		}},
		{"recovery", "recovery", func(t *testing.T, tab *browsertest.Tab) {
			if got := browsertest.Eval[string](tab, `document.querySelector('#timeline .incident')?.dataset.status || ""`); got != "restored" {
				t.Errorf("recovery: the newest incident is %q, want the restore (restored)", got)
			}
			if got := pageCount(tab, "[data-admin]"); got < 3 {
				t.Errorf("recovery: %d admin controls for the (admin) anonymous principal, want fsck, restore and recover", got)
			}
		}},
		{"cluster", "cluster", func(t *testing.T, tab *browsertest.Tab) {
			if s := pageText(tab, "#single-node"); !strings.Contains(s, "single node") {
				t.Errorf("cluster: %q, want it to say single node", s)
			}
		}},
	}
	for _, width := range []int64{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			tab := b.NewTab(t, width, 800)
			tab.Do(chromedp.Navigate(n.p.url + "/"))
			waitPage(tab, "overview")
			t.Logf("the console showed the overview's first data %s ms after the navigation started (%s)", browsertest.Eval[string](tab, `document.getElementById('page').dataset.readyAt`),
				browsertest.Eval[string](tab, `(n => 'page loaded at ' + Math.round(n.responseEnd) + ' ms, modules run at ' + Math.round(n.domContentLoadedEventEnd) + ' ms')(performance.getEntriesByType('navigation')[0])`))
			for _, pg := range pages {
				goTo(tab, pg.route, pg.page)
				t.Logf("%s: first data shown %s ms after the route changed", pg.page, browsertest.Eval[string](tab, `document.getElementById('page').dataset.readyMs`))
				pg.check(t, tab)
				if over := browsertest.Eval[int](tab, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
					wide := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))`)
					t.Errorf("%s at %d px: the page is %d px wider than the window: %q", pg.page, width, over, wide)
				}
				if html := browsertest.Eval[string](tab, `document.documentElement.outerHTML`); strings.Contains(html, n.task.Claim) {
					t.Errorf("%s shows the task's claim token", pg.page)
				}
			}
			noConsoleErrors(t, tab, n.p.url)
		})
	}
	// Dark: the same page with the other colour scheme.
	tab := n.open(t, b, 1280, "overview", "overview")
	light := browsertest.Eval[string](tab, `getComputedStyle(document.body).backgroundColor`)
	tab.SetColorScheme("dark")
	if dark := browsertest.Eval[string](tab, `getComputedStyle(document.body).backgroundColor`); dark == light || dark != "rgb(17, 21, 27)" {
		t.Errorf("dark scheme: body background %s (light %s), want rgb(17, 21, 27)", dark, light)
	}
	noConsoleErrors(t, tab, n.p.url)
}

// A context written through the API appears on the Contexts page and on
// the Overview without a reload.
func TestConsole_LiveUpdates(t *testing.T) {
	n := startConsoleNode(t)
	b := browsertest.Start(t)
	tab := n.open(t, b, 1280, "contexts", "contexts")
	tab.WaitTrue(`document.getElementById('live').dataset.state === 'live'`, "the event stream opening")
	browsertest.Eval[int](tab, `window.notReloaded = 1`)
	x, err := n.c.Put(t.Context(), nexus.Draft{Type: nexus.TypeDecision, Content: "written while the console looks", AgentID: "live-test"})
	if err != nil {
		t.Fatal(err)
	}
	tab.Do(chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`#list tbody tr[data-id=%q]`, x.ID))))
	// The new row goes where the newest-first order puts it: above every
	// older one (the node's own work, such as its agents', may write
	// newer contexts meanwhile, which go above it).
	rows := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#list tbody tr[data-id]')].map(r => r.dataset.id)`)
	if !slices.IsSortedFunc(rows, func(a, b string) int { return strings.Compare(b, a) }) || !slices.Contains(rows, x.ID.String()) {
		t.Errorf("contexts: rows %v, want the new context %s among them, newest first", rows, x.ID)
	}
	goTo(tab, "overview", "overview")
	y, err := n.c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: "and another one on the overview", AgentID: "live-test"})
	if err != nil {
		t.Fatal(err)
	}
	tab.Do(chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`#recent li[data-id=%q]`, y.ID))))
	if recent := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#recent li[data-id]')].map(r => r.dataset.id)`); !slices.IsSortedFunc(recent, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("overview: the newest contexts %v are not newest first", recent)
	}
	if browsertest.Eval[int](tab, `window.notReloaded || 0`) != 1 {
		t.Error("the page was reloaded")
	}
	noConsoleErrors(t, tab, n.p.url)
}

// The restore flow: a dry run previews what would be rolled back and
// changes nothing; the restore button stays disabled until the target is
// typed; then the restore runs and the API sees it.
func TestConsole_Restore(t *testing.T) {
	n := startConsoleNode(t)
	b := browsertest.Start(t)
	ctx := t.Context()
	before, err := n.c.List(ctx, nexus.Filter{Namespace: "team-a"})
	if err != nil || len(before.Contexts) < 4 {
		t.Fatalf("team-a holds %d contexts (%v), want the thread and the task", len(before.Contexts), err)
	}
	at := n.thread[0].Timestamp.Format(time.RFC3339Nano) // keep the root, roll back its two replies and what followed
	tab := n.open(t, b, 1280, "recovery", "recovery")
	// The node's own work (its agents) may commit while the page asks: the
	// page's preview must equal a dry run made just before or just after it.
	early, err := n.c.Restore(ctx, n.thread[0].Timestamp, true)
	if err != nil {
		t.Fatal(err)
	}
	tab.Do(
		chromedp.SetValue(chromedp.ID("restore-at"), at),
		chromedp.Click(chromedp.ID("restore-preview")),
		chromedp.WaitReady(chromedp.ID("restore-target")),
	)
	plan, err := n.c.Restore(ctx, n.thread[0].Timestamp, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := pageText(tab, "#plan-rolled-back"); got != fmt.Sprintf("%d contexts", plan.RolledBack) && got != fmt.Sprintf("%d contexts", early.RolledBack) {
		t.Errorf("preview: rolls back %q, want %d contexts (a dry run before it: %d)", got, plan.RolledBack, early.RolledBack)
	}
	target := pageText(tab, "#restore-target")
	if target != plan.To[:12] {
		t.Errorf("the target to type is %q, want the start of the commit %s", target, plan.To)
	}
	disabled := func() bool { return browsertest.Eval[bool](tab, `document.getElementById('restore-go').disabled`) }
	if !disabled() {
		t.Error("the restore button is enabled before the target is typed")
	}
	tab.Do(chromedp.SendKeys(chromedp.ID("restore-confirm"), "not-the-target"))
	if !disabled() {
		t.Error("the restore button is enabled with a wrong confirmation")
	}
	if after, err := n.c.List(ctx, nexus.Filter{Namespace: "team-a"}); err != nil || len(after.Contexts) != len(before.Contexts) {
		t.Fatalf("after the preview team-a holds %d contexts (%v), want %d: a dry run changes nothing", len(after.Contexts), err, len(before.Contexts))
	}
	browsertest.Eval[string](tab, `document.getElementById('restore-confirm').value = ""`)
	tab.Do(chromedp.SendKeys(chromedp.ID("restore-confirm"), target))
	if disabled() {
		t.Fatal("the restore button is disabled with the target typed")
	}
	tab.Do(chromedp.Click(chromedp.ID("restore-go")), chromedp.WaitReady(chromedp.ID("restore-done")))
	after, err := n.c.List(ctx, nexus.Filter{Namespace: "team-a"})
	if err != nil || len(after.Contexts) != 1 || after.Contexts[0].ID != n.thread[0].ID {
		t.Fatalf("after the restore team-a holds %d contexts (%v), want only the root", len(after.Contexts), err)
	}
	// The page shows the restore's incident once the node records it.
	tab.WaitTrue(`document.querySelectorAll('#timeline .incident[data-status="restored"]').length === 2`, "the second restore's incident on the timeline")
	noConsoleErrors(t, tab, n.p.url)
}

// Keyboard: number keys and g-sequences change pages, / focuses the
// query, ? opens the shortcuts.
func TestConsole_Keyboard(t *testing.T) {
	n := startConsoleNode(t)
	b := browsertest.Start(t)
	tab := n.open(t, b, 1280, "overview", "overview")
	tab.Do(chromedp.KeyEvent("\t"))
	if got := browsertest.Eval[string](tab, `document.activeElement.id`); got != "skip" {
		t.Errorf("the first Tab focuses %q, want the skip link", got)
	}
	tab.Do(chromedp.KeyEvent("\r"))
	if got := browsertest.Eval[string](tab, `document.activeElement.id + ' ' + location.hash`); got != "page #/overview" {
		t.Errorf("the skip link left the focus and route at %q, want the page and #/overview", got)
	}
	tab.Do(chromedp.KeyEvent("2"))
	waitPage(tab, "contexts")
	tab.Do(chromedp.KeyEvent("g"), chromedp.KeyEvent("a"))
	waitPage(tab, "agents")
	tab.Do(chromedp.KeyEvent("/"))
	waitPage(tab, "search")
	tab.WaitTrue(`document.activeElement && document.activeElement.id === 'q'`, "the query field taking the focus")
	tab.Do(chromedp.KeyEvent("ledger\r"))
	tab.Do(chromedp.WaitReady(chromedp.CSS("#hits .hit")))
	browsertest.Eval[bool](tab, `(document.activeElement.blur(), true)`)
	tab.Do(chromedp.KeyEvent("j"))
	if got := browsertest.Eval[bool](tab, `document.activeElement.hasAttribute('data-row')`); !got {
		t.Error("j did not move the focus to the first row")
	}
	tab.Do(chromedp.KeyEvent("?"))
	if !browsertest.Eval[bool](tab, `document.getElementById('keys').open`) {
		t.Error("? did not open the shortcuts")
	}
	noConsoleErrors(t, tab, n.p.url)
}

// Screenshots of each page, 1280×800, light. They are written to
// docs/img only with NEXUS_SCREENSHOTS=1 (so that test runs leave the
// tree alone); each is checked to be a 1280×800 PNG either way.
func TestConsole_Screenshots(t *testing.T) {
	n := startConsoleNode(t)
	b := browsertest.Start(t)
	write := os.Getenv("NEXUS_SCREENSHOTS") == "1"
	tab := n.open(t, b, 1280, "search?q=ledger+idempotent", "search")
	shots := []struct{ name, route, page string }{
		{"search", "search?q=ledger+idempotent", "search"},
		{"overview", "overview", "overview"},
		{"contexts", "contexts", "contexts"},
		{"context", "contexts/" + n.thread[1].ID.String(), "context"},
		{"agents", "agents", "agents"},
		{"recovery", "recovery", "recovery"},
		{"cluster", "cluster", "cluster"},
	}
	// Some activity for the charts: writes and searches while the
	// overview samples /metrics.
	for _, q := range []string{"billing ledger", "cache deploy", "idempotency keys"} {
		goTo(tab, "search?q="+strings.ReplaceAll(q, " ", "+"), "search")
	}
	for _, s := range shots {
		goTo(tab, s.route, s.page)
		if s.page == "overview" {
			for i := range 8 {
				if _, err := n.c.Put(t.Context(), nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprintf("deploy %d: the cache warmed in %d s", i, 3+i%4), AgentID: "observer"}); err != nil {
					t.Fatal(err)
				}
				tab.WaitTrue(fmt.Sprintf(`Number(document.querySelector('[data-chart="writes"]').dataset.samples || 0) >= %d`, i+2), "a sample of /metrics")
			}
		}
		if s.page == "recovery" {
			// The restore's preview, with the confirmation it asks for.
			tab.Do(
				chromedp.SetValue(chromedp.ID("restore-at"), n.thread[1].Timestamp.Format(time.RFC3339Nano)),
				chromedp.Click(chromedp.ID("restore-preview")),
				chromedp.WaitReady(chromedp.ID("restore-target")),
				chromedp.ScrollIntoView(chromedp.ID("restore")),
			)
		}
		img := tab.Screenshot()
		cfg, err := png.DecodeConfig(bytes.NewReader(img))
		if err != nil || cfg.Width != 1280 || cfg.Height != 800 || len(img) < 10_000 {
			t.Fatalf("screenshot of %s: %d bytes, %dx%d (%v), want a 1280x800 PNG with something on it", s.name, len(img), cfg.Width, cfg.Height, err)
		}
		if write {
			path := filepath.Join("..", "..", "docs", "img", "console-"+s.name+".png")
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s (%d bytes)", path, len(img))
		}
	}
	noConsoleErrors(t, tab, n.p.url)
}

// The Cluster page of a node that bootstrapped a cluster of its own
// shows it leading, and its head and applied index as GET /v1/cluster
// gives them.
func TestConsole_Cluster(t *testing.T) {
	addrs := freeAddrs(t, 2)
	p := startServe(t, t.TempDir(), "--addr="+addrs[0], "--node-id=n1", "--raft-addr="+addrs[1], "--bootstrap", "--no-search")
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() })
	c := httpapi.NewClient(p.url)
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := c.ClusterStatus(t.Context(), false)
		if err == nil && st.Leader == "n1" && st.Writable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n1 did not lead its cluster within 60 s: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: "replicated through the log"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.ClusterStatus(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	b := browsertest.Start(t)
	tab := b.NewTab(t, 1280, 800)
	tab.Do(chromedp.Navigate(p.url + "/#/cluster"))
	waitPage(tab, "cluster")
	if pageCount(tab, "#single-node") != 0 {
		t.Fatal("the page says single node")
	}
	if s := pageText(tab, "#cluster"); !strings.Contains(s, "Node n1") || !strings.Contains(s, "leader") || !strings.Contains(s, "yes (leader)") {
		t.Errorf("cluster page %q, want n1 leading and taking writes", s)
	}
	row := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#cluster table tbody tr:first-child td')].map(e => e.textContent)`)
	if len(row) != 8 || row[0] != "n1" || row[1] != "leader" || row[2] != "yes" || !strings.HasPrefix(st.Head, strings.TrimSuffix(row[4], "…")) || row[5] != addrs[1] {
		t.Errorf("member row %q, want n1, leader, voter, its head %s, raft %s", row, st.Head, addrs[1])
	}
	if applied := browsertest.Eval[string](tab, `document.querySelector('#cluster table tbody tr:first-child td:nth-child(4)').textContent`); applied == "—" || applied == "0" {
		t.Errorf("member's applied index %q, want the index after the write of %s", applied, x.ID)
	}
	noConsoleErrors(t, tab, p.url)
}
