package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// The fault table comes from this test: every fault is injected into a
// real store and met by the real binary the way a user meets it (a start,
// a running node's checks, `nexus recover`). Each row has one expected
// outcome, and fails on any other, on a crash of any process (a signal, a
// panic, an exit code other than 0 for a stop, 4 for a refusal, 1 for a
// start refused), and on any wrong read: wherever the store opens, every
// acknowledged context must read back byte-identical, before the repair
// and after it. `go test -v -run FaultMatrix ./cmd/nexus` prints the table.

// faultOutcome is how a fault ended.
type faultOutcome string

const (
	repairedAtStart      faultOutcome = "repaired at start"
	repairedByRecover    faultOutcome = "repaired by nexus recover"
	repairedWhileRunning faultOutcome = "repaired while running"
	refusedByRecover     faultOutcome = "refused: nexus recover exits 4"
	refusedNodeStopped   faultOutcome = "refused: the node stopped (exit 4)"
	notRepaired          faultOutcome = "not repaired"
)

// detectedBy is where a fault with this outcome must have been found.
// refused says the node or nexus recover refused the store.
func (o faultOutcome) refused() bool { return o == refusedNodeStopped || o == refusedByRecover }

func (o faultOutcome) detectedBy() string {
	switch o {
	case repairedAtStart, repairedByRecover, refusedByRecover:
		return "at start"
	case repairedWhileRunning, refusedNodeStopped:
		return "by the running node"
	}
	return "no"
}

type faultCase struct {
	name    string
	backup  bool // a bundle backup taken before the fault
	running bool // injected under a running node, else while stopped
	want    faultOutcome
	inject  func(t *testing.T, data string)
}

type faultRow struct {
	fault, detected   string
	outcome           faultOutcome
	detail            string   // what the node or nexus recover said
	wrong, unreadable int      // reads with other bytes; acknowledged contexts not readable at the end
	opened            bool     // the store opened at the end (else nothing could be read)
	crashes           []string // processes that crashed
}

// crash records a process that crashed; problem "" is no crash.
func (r *faultRow) crash(problem string) {
	if problem != "" {
		r.crashes = append(r.crashes, problem)
	}
}

func TestFaultMatrix(t *testing.T) {
	cases := []faultCase{
		// Stopped: a start does no deep check, so pack damage is found by
		// the node's deep check once it runs.
		{"pack: one bit flipped", true, false, repairedWhileRunning, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"pack: one bit flipped, no backup", false, false, refusedNodeStopped, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"pack: 64 bytes zeroed", true, false, repairedWhileRunning, func(t *testing.T, d string) { zeroPack(t, d) }},
		{"pack: truncated", true, false, repairedAtStart, func(t *testing.T, d string) { truncateFile(t, largest(t, packDir(d), "*.pack")) }},
		{"pack index: truncated", true, false, repairedAtStart, func(t *testing.T, d string) { truncateFile(t, largest(t, packDir(d), "*.idx")) }},
		{"pack and index deleted (objects missing)", true, false, repairedWhileRunning, func(t *testing.T, d string) { deletePack(t, d) }},
		{"main ref emptied", false, false, repairedAtStart, func(t *testing.T, d string) { writeRef(t, d, "") }},
		{"main ref names a missing commit", false, false, repairedAtStart, func(t *testing.T, d string) { writeRef(t, d, strings.Repeat("ab", 20)+"\n") }},
		{"catalog file corrupted", false, false, repairedAtStart, func(t *testing.T, d string) { flipFile(t, filepath.Join(d, "catalog.bin")) }},
		{"saved search index file corrupted", false, false, repairedAtStart, func(t *testing.T, d string) { flipFile(t, largest(t, filepath.Join(d, "index"), "*/vectors-*.bin")) }},
		{"saved search index deleted", false, false, repairedAtStart, func(t *testing.T, d string) { os.RemoveAll(filepath.Join(d, "index")) }},
		{"running: pack bit flipped", true, true, repairedWhileRunning, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"running: pack bit flipped, no backup", false, true, refusedNodeStopped, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"running: main ref overwritten", false, true, repairedWhileRunning, func(t *testing.T, d string) { writeRef(t, d, "garbage\n") }},
		{"running: saved search index deleted", false, true, repairedWhileRunning, func(t *testing.T, d string) {
			for _, f := range globT(t, filepath.Join(d, "index", "*", "*.bin")) {
				os.Remove(f)
			}
		}},
	}
	var rows []faultRow
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) {
			row := runFault(t, fc)
			rows = append(rows, row)
			checkRow(t, fc, row)
		})
	}
	var b strings.Builder
	b.WriteString("| fault | detected | outcome | wrong reads | unreadable at the end |\n|---|---|---|---:|---:|\n")
	for _, r := range rows {
		unread := fmt.Sprint(r.unreadable)
		if !r.opened {
			unread = "store refused"
		}
		fmt.Fprintf(&b, "| %s | %s | %s: %s | %d | %s |\n", r.fault, r.detected, r.outcome, r.detail, r.wrong, unread)
	}
	t.Logf("fault table:\n%s", b.String())
}

// checkRow fails the test unless the row is exactly what fc expects.
func checkRow(t *testing.T, fc faultCase, row faultRow) {
	t.Helper()
	for _, c := range row.crashes {
		t.Errorf("crash: %s", c)
	}
	if row.outcome != fc.want || row.detected != fc.want.detectedBy() {
		t.Errorf("detected %s, %s (%s); want detected %s, %s", row.detected, row.outcome, row.detail, fc.want.detectedBy(), fc.want)
	}
	if row.wrong > 0 {
		t.Errorf("%d reads returned other bytes than were acknowledged", row.wrong)
	}
	// A refusal without a backup may leave contexts unreadable (their
	// objects are damaged and nothing holds them): that is what a refusal
	// reports, never a wrong read. A repair must leave none.
	if row.opened && row.unreadable > 0 && !fc.want.refused() {
		t.Errorf("the store opens, but %d acknowledged contexts cannot be read", row.unreadable)
	}
}

// node is a running `nexus serve` whose exit is watched.
type node struct {
	*proc
	done chan struct{} // closed once the process has exited
	err  error         // how it exited, once done is closed
}

func watch(t *testing.T, p *proc) *node {
	n := &node{proc: p, done: make(chan struct{})}
	go func() { n.err = p.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-n.done })
	return n
}

// stop ends the node with SIGTERM, which must make it exit 0.
func (n *node) stop(row *faultRow) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		row.crash(exitProblem("nexus serve (stopped)", n.err, n.stderr.String(), 0))
	case <-time.After(time.Minute):
		row.crash("nexus serve did not stop within a minute of SIGTERM")
	}
}

// exitProblem describes how a process crashed, or returns "" if it
// exited with the code wanted and without a panic.
func exitProblem(what string, err error, out string, want int) string {
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && !ee.Exited():
		return fmt.Sprintf("%s: %v\n%s", what, ee, out)
	case ee != nil:
		code = ee.ExitCode()
	case err != nil:
		return fmt.Sprintf("%s: %v", what, err)
	}
	if loc := panicked.FindStringIndex(out); loc != nil {
		return fmt.Sprintf("%s panicked: %s", what, out[loc[0]:])
	}
	if code != want {
		return fmt.Sprintf("%s exits %d, want %d:\n%s", what, code, want, out)
	}
	return ""
}

var panicked = regexp.MustCompile(`(?m)^(panic: |fatal error: )`)

// runFault builds a store of 40 contexts in several packs (and its index),
// injects the fault and meets it.
func runFault(t *testing.T, fc faultCase) faultRow {
	row := faultRow{fault: fc.name, detected: "no", outcome: notRepaired}
	data := t.TempDir()
	args := []string{"--backup-interval=0", "--scrub-interval=0", "--recover-interval=200ms"}
	n := watch(t, startServe(t, data, args...))
	written := fill(t, n.url)
	// Stopped and started again, so that the index is loaded from its
	// saved files.
	n.stop(&row)
	if fc.backup {
		backup(t, data)
	}
	if !fc.running {
		fc.inject(t, data)
	}
	n = meetAtStart(t, &row, data, written, args)
	if n == nil {
		return row
	}
	if fc.running {
		fc.inject(t, data)
	}
	row.wrong += wrongReads(t, n.url, written)
	if row.outcome == notRepaired {
		if stopped := meetRunning(t, &row, n, data, written); stopped {
			return row
		}
	}
	checkRepaired(t, &row, n, data, written)
	return row
}

// fill writes 40 contexts in four batches and waits until they are
// indexed.
func fill(t *testing.T, url string) map[nexus.ID]string {
	written := map[nexus.ID]string{}
	for i := range 4 {
		for id, c := range putMany(t, url, 10, fmt.Sprintf("batch %d", i)) {
			written[id] = c
		}
	}
	if _, err := httpapi.NewClient(url).Search(context.Background(), nexus.SearchRequest{Query: "batch", Consistent: true}); err != nil {
		t.Fatal(err)
	}
	return written
}

// meetAtStart starts the node. If it refuses to start, `nexus recover`
// repairs the store and the node starts (returned), or recover refuses
// (nil is returned).
func meetAtStart(t *testing.T, row *faultRow, data string, written map[nexus.ID]string, args []string) *node {
	p, refusal, err := tryServeExit(t, data, args...)
	if p != nil {
		return watch(t, p)
	}
	row.detected, row.detail = "at start", firstLine(strings.TrimPrefix(lastLines(refusal), "nexus: "))
	row.crash(exitProblem("nexus serve (refusing to start)", err, refusal, 1))
	out, err := exec.Command(binary, "recover", "--data", data).CombinedOutput()
	if err != nil {
		row.crash(exitProblem("nexus recover", err, string(out), 4))
		row.outcome, row.detail = refusedByRecover, row.detail+"; "+lastFailure(string(out))
		row.opened, row.wrong, row.unreadable = readOffline(t, data, written)
		return nil
	}
	row.crash(exitProblem("nexus recover", nil, string(out), 0))
	row.outcome = repairedByRecover
	return watch(t, startServe(t, data, args...))
}

// meetRunning has the node find the fault: a deep check, as the scrub
// runs it, and the recovery cascade after it. It reports whether the node
// stopped itself.
func meetRunning(t *testing.T, row *faultRow, n *node, data string, written map[nexus.ID]string) bool {
	if resp, err := http.Post(n.url+"/v1/admin/fsck?deep=true", "application/json", nil); err == nil {
		resp.Body.Close()
	}
	state, what := settle(t, n)
	switch state {
	case "stopped":
		row.crash(exitProblem("nexus serve (stopping itself)", n.err, n.stderr.String(), 4))
		row.detected, row.outcome, row.detail = "by the running node", refusedNodeStopped, what
		if os.Getenv("NEXUS_FAULT_LOG") != "" {
			t.Logf("node log:\n%s", n.stderr)
		}
		var wrong int
		row.opened, wrong, row.unreadable = readOffline(t, data, written)
		row.wrong += wrong
		return true
	case "recovered":
		row.detected, row.outcome, row.detail = "by the running node", repairedWhileRunning, what
	case "healthy":
		// Nothing failing: repaired at open (derived state), if the log
		// says so.
		if what := repairedAtOpen(n.proc); what != "" {
			row.detected, row.outcome, row.detail = "at start", repairedAtStart, what
		}
	}
	return false
}

// checkRepaired checks that a repaired store reads back, searches, stops
// cleanly and passes git fsck; otherwise the row is "not repaired".
func checkRepaired(t *testing.T, row *faultRow, n *node, data string, written map[nexus.ID]string) {
	row.wrong += wrongReads(t, n.url, written)
	row.opened, row.unreadable = true, unreadable(t, n.url, written)
	if row.unreadable > 0 {
		row.outcome, row.detail = notRepaired, fmt.Sprintf("%d contexts unreadable after %s: %s", row.unreadable, row.outcome, row.detail)
	}
	if res, err := httpapi.NewClient(n.url).Search(context.Background(), nexus.SearchRequest{Query: "batch 3 agents learned", Consistent: true, Limit: 50}); err != nil || len(res.Hits) < 10 {
		row.outcome, row.detail = notRepaired, fmt.Sprintf("search after %s: %v", row.outcome, err)
	}
	n.stop(row)
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		row.outcome, row.detail = notRepaired, "git fsck: "+firstLine(string(out))
		t.Logf("git fsck:\n%s", out)
	}
}

// settle waits until the node is healthy with nothing failing, has
// recovered a component, or has stopped.
func settle(t *testing.T, n *node) (string, string) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		select {
		case <-n.done:
			return "stopped", firstLine(after(n.stderr.String(), "the node stopped: "))
		default:
		}
		resp, err := http.Get(n.url + "/health")
		if err == nil {
			var h nexus.Health
			json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			for _, c := range nexus.Components {
				if _, k := recoveries(h, c); k > 0 {
					last := h.Components[c].Details["recoveries"].(map[string]any)["last"].(map[string]any)
					return "recovered", fmt.Sprintf("%s %s", c, last["reason"])
				}
			}
			failing := false
			for _, c := range h.Components {
				f, _ := c.Details["failures"].(float64)
				failing = failing || f > 0 || c.Status == nexus.StatusUnhealthy
			}
			if !failing && time.Since(start) > time.Second {
				return "healthy", ""
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the node neither recovered nor stopped:\n%s", n.stderr)
	return "", ""
}

// repairedAtOpen finds what the start repaired in the node's log.
func repairedAtOpen(p *proc) string {
	log := p.stderr.String()
	var did []string
	for _, l := range strings.Split(log, "\n") {
		if _, what, ok := strings.Cut(l, "msg=\"repaired at start\" what="); ok && !strings.Contains(what, "could not open") {
			did = append(did, strings.Trim(what, "\""))
		}
	}
	if len(did) > 0 {
		return strings.Join(did, "; ")
	}
	for _, m := range []string{"catalog damaged; rebuilding from git", "catalog refers to an unknown commit; rebuilding from git",
		"search index not loaded; rebuilding from the store", "rebuilding the search index"} {
		if strings.Contains(log, m) {
			return m
		}
	}
	return ""
}

// wrongReads reads every context through the API and counts answers
// with the wrong content (errors are not wrong answers).
func wrongReads(t *testing.T, url string, written map[nexus.ID]string) int {
	t.Helper()
	c := httpapi.NewClient(url)
	wrong := 0
	for id, content := range written {
		if got, err := c.Get(context.Background(), id); err == nil && got.Content != content {
			wrong++
		}
	}
	return wrong
}

func unreadable(t *testing.T, url string, written map[nexus.ID]string) int {
	t.Helper()
	c := httpapi.NewClient(url)
	n := 0
	for id := range written {
		if _, err := c.Get(context.Background(), id); err != nil {
			n++
		}
	}
	return n
}

// readOffline opens the store directly, if it opens, and counts the
// reads that return other bytes and the contexts that cannot be read.
func readOffline(t *testing.T, data string, written map[nexus.ID]string) (opened bool, wrong, unreadable int) {
	t.Helper()
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		return false, 0, 0 // refused: nothing is read at all
	}
	defer s.Close()
	for id, content := range written {
		got, err := s.Get(context.Background(), id)
		switch {
		case err != nil:
			unreadable++
		case got.Content != content:
			wrong++
		}
	}
	return true, wrong, unreadable
}

func runCLI(args ...string) (string, int) {
	out, err := exec.Command(binary, args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	return string(out), 0
}

func backup(t *testing.T, data string) {
	t.Helper()
	if out, code := runCLI("backup", "--data", data); code != 0 {
		t.Fatalf("backup: %s", out)
	}
}

func largest(t *testing.T, dir, pattern string) string {
	t.Helper()
	var big string
	var size int64 = -1
	for _, p := range globT(t, filepath.Join(dir, pattern)) {
		if st, err := os.Stat(p); err == nil && st.Size() > size {
			big, size = p, st.Size()
		}
	}
	return big
}

func globT(t *testing.T, pattern string) []string {
	t.Helper()
	ps, _ := filepath.Glob(pattern)
	if len(ps) == 0 && !strings.Contains(pattern, "index") {
		t.Fatalf("nothing matches %s", pattern)
	}
	slices.Sort(ps)
	return ps
}

func packDir(data string) string { return filepath.Join(data, "repo.git", "objects", "pack") }

func zeroPack(t *testing.T, data string) {
	p := largest(t, packDir(data), "*.pack")
	b, _ := os.ReadFile(p)
	clear(b[len(b)/2 : len(b)/2+64])
	os.WriteFile(p, b, 0o644)
}

func truncateFile(t *testing.T, p string) {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(p, st.Size()/2)
}

// deletePack deletes the largest pack and its index. Every start reads
// the newest commit (the head commit main names, and the newest context,
// which the saved search index names): losing it is found at start. So
// when the largest pack holds the head commit, the objects the newest
// commit added are first copied to a pack of their own, as the node
// wrote them. Which pack is the largest, and what it holds, depends on
// how far the pack merges of the node and of `nexus backup` went before
// they stopped; the row must lose the objects only a deep check reads,
// whatever the merges did.
func deletePack(t *testing.T, data string) {
	p := largest(t, packDir(data), "*.pack")
	idx := strings.TrimSuffix(p, ".pack") + ".idx"
	gitDir := filepath.Join(data, "repo.git")
	b, err := os.ReadFile(filepath.Join(gitDir, "refs", "heads", "main"))
	if err != nil {
		t.Fatal(err)
	}
	head := strings.TrimSpace(string(b))
	if packHolds(t, idx, head) {
		cmd := exec.Command("git", "--git-dir", gitDir, "pack-objects", "--revs", filepath.Join(packDir(data), "pack"))
		cmd.Stdin = strings.NewReader(head + "\n^" + head + "~1\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git pack-objects of the newest commit: %v\n%s", err, out)
		}
	}
	os.Remove(p)
	os.Remove(idx)
}

// packHolds reports whether the pack of the index idx holds the object id.
func packHolds(t *testing.T, idx, id string) bool {
	f, err := os.Open(idx)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("git", "show-index")
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git show-index %s: %v", idx, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[1] == id {
			return true
		}
	}
	return false
}

func writeRef(t *testing.T, data, content string) {
	if err := os.WriteFile(filepath.Join(data, "repo.git", "refs", "heads", "main"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func flipFile(t *testing.T, p string) {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	os.WriteFile(p, b, 0o644)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 140 {
		s = s[:140] + "…"
	}
	return s
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "time=") && !strings.HasPrefix(lines[i], "  ") {
			return lines[i]
		}
	}
	return ""
}

func after(s, marker string) string {
	if i := strings.Index(s, marker); i >= 0 {
		return s[i+len(marker):]
	}
	return s
}

// lastFailure is the first failed step of `nexus recover` output.
func lastFailure(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " failed ") {
			return firstLine(strings.Join(strings.Fields(l), " "))
		}
	}
	return firstLine(out)
}
