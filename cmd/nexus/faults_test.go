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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// The fault table of docs/BENCHMARKS.md comes from this test: every fault
// is injected into a real store and met by the real binary the way a user
// meets it (a start, a running node's checks, `nexus recover`). For each:
// was it detected, was it repaired (or refused with a message), and did
// any read return wrong data. `go test -v -run FaultMatrix ./cmd/nexus`
// prints the table.

type faultCase struct {
	name    string
	backup  bool // a bundle backup taken before the fault
	running bool // injected under a running node, else while stopped
	inject  func(t *testing.T, data string)
}

type faultRow struct {
	fault, detected, outcome string
	wrong                    int
}

func TestFaultMatrix(t *testing.T) {
	cases := []faultCase{
		{"pack: one bit flipped", true, false, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"pack: one bit flipped, no backup", false, false, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"pack: 64 bytes zeroed", true, false, func(t *testing.T, d string) { zeroPack(t, d) }},
		{"pack: truncated", true, false, func(t *testing.T, d string) { truncateFile(t, largest(t, packDir(d), "*.pack")) }},
		{"pack index: truncated", true, false, func(t *testing.T, d string) { truncateFile(t, largest(t, packDir(d), "*.idx")) }},
		{"pack and index deleted (objects missing)", true, false, func(t *testing.T, d string) { deletePack(t, d) }},
		{"main ref emptied", false, false, func(t *testing.T, d string) { writeRef(t, d, "") }},
		{"main ref names a missing commit", false, false, func(t *testing.T, d string) { writeRef(t, d, strings.Repeat("ab", 20)+"\n") }},
		{"catalog file corrupted", false, false, func(t *testing.T, d string) { flipFile(t, filepath.Join(d, "catalog.bin")) }},
		{"saved search index file corrupted", false, false, func(t *testing.T, d string) { flipFile(t, largest(t, filepath.Join(d, "index"), "*/vectors-*.bin")) }},
		{"saved search index deleted", false, false, func(t *testing.T, d string) { os.RemoveAll(filepath.Join(d, "index")) }},
		{"running: pack bit flipped", true, true, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"running: pack bit flipped, no backup", false, true, func(t *testing.T, d string) { flipMiddle(t, d) }},
		{"running: main ref overwritten", false, true, func(t *testing.T, d string) { writeRef(t, d, "garbage\n") }},
		{"running: saved search index deleted", false, true, func(t *testing.T, d string) {
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
			if row.detected == "no" || row.wrong > 0 || !(strings.HasPrefix(row.outcome, "repaired") || strings.HasPrefix(row.outcome, "refused")) {
				t.Errorf("fault %q: %+v", fc.name, row)
			}
		})
	}
	var b strings.Builder
	b.WriteString("| fault | detected | outcome | wrong reads |\n|---|---|---|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %d |\n", r.fault, r.detected, r.outcome, r.wrong)
	}
	t.Logf("fault table:\n%s", b.String())
}

// runFault builds a store of 40 contexts in several packs (and its index),
// injects the fault and meets it.
func runFault(t *testing.T, fc faultCase) faultRow {
	row := faultRow{fault: fc.name, detected: "no", outcome: "not repaired"}
	data := t.TempDir()
	args := []string{"--backup-interval=0", "--scrub-interval=0", "--recover-interval=200ms"}
	p := startServe(t, data, args...)
	written := map[nexus.ID]string{}
	for i := range 4 {
		for id, c := range putMany(t, p.url, 10, fmt.Sprintf("batch %d", i)) {
			written[id] = c
		}
	}
	httpapi.NewClient(p.url).Search(context.Background(), nexus.SearchRequest{Query: "batch", Consistent: true})
	if !fc.running {
		stopServe(p)
		if fc.backup {
			backup(t, data)
		}
		fc.inject(t, data)
		q, refusal := tryServe(t, data, args...)
		if q == nil {
			row.detected = "at start: " + firstLine(strings.TrimPrefix(lastLines(refusal), "nexus: "))
			out, code := runCLI("recover", "--data", data)
			if code != 0 {
				row.outcome = "refused: nexus recover exits " + fmt.Sprint(code) + ", " + lastFailure(out)
				row.wrong = wrongReadsOffline(t, data, written)
				return row
			}
			row.outcome = "repaired by nexus recover"
			q = startServe(t, data, args...)
		} else {
			row.detected = "" // it started: the running checks must find it
		}
		p = q
	} else {
		// Restarted, so that the index is loaded from its saved files.
		stopServe(p)
		if fc.backup {
			backup(t, data)
		}
		p = startServe(t, data, args...)
	}
	defer stopServe(p)
	if fc.running {
		fc.inject(t, data)
	}
	row.wrong += wrongReads(t, p.url, written)
	if row.detected == "no" || row.detected == "" {
		row.detected = "no"
		// A deep check, as the scrub runs it; the cascade follows.
		if resp, err := http.Post(p.url+"/v1/admin/fsck?deep=true", "application/json", nil); err == nil {
			resp.Body.Close()
		}
		state, what := settle(t, p)
		switch state {
		case "stopped":
			row.detected, row.outcome = "by the running node", "refused: the node stopped (exit 4): "+what
			row.wrong += wrongReadsOffline(t, data, written)
			return row
		case "recovered":
			row.detected, row.outcome = "by the running node", "repaired while running: "+what
		case "healthy":
			if strings.HasPrefix(row.outcome, "repaired") {
				break
			}
			// Nothing failing: repaired at open (derived state), if the
			// log says so.
			if what := repairedAtOpen(p); what != "" {
				row.detected, row.outcome = "at start", "repaired at start: "+what
			}
		}
	}
	row.wrong += wrongReads(t, p.url, written)
	if missing := unreadable(t, p.url, written); missing > 0 && strings.HasPrefix(row.outcome, "repaired") {
		row.outcome = fmt.Sprintf("not repaired: %d contexts unreadable", missing)
	}
	if res, err := httpapi.NewClient(p.url).Search(context.Background(), nexus.SearchRequest{Query: "batch 3 agents learned", Consistent: true, Limit: 50}); err != nil || len(res.Hits) < 10 {
		row.outcome = fmt.Sprintf("not repaired: search: %v", err)
	}
	stopServe(p)
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil && strings.HasPrefix(row.outcome, "repaired") {
		row.outcome = "not repaired: git fsck: " + firstLine(string(out))
		t.Logf("git fsck:\n%s", out)
	}
	return row
}

// settle waits until the node is healthy with nothing failing, has
// recovered a component, or has stopped.
func settle(t *testing.T, p *proc) (string, string) {
	t.Helper()
	exited := make(chan struct{})
	go func() { p.cmd.Process.Wait(); close(exited) }()
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		select {
		case <-exited:
			if os.Getenv("NEXUS_FAULT_LOG") != "" {
				t.Logf("node log:\n%s", p.stderr)
			}
			return "stopped", firstLine(after(p.stderr.String(), "the node stopped: "))
		default:
		}
		resp, err := http.Get(p.url + "/health")
		if err == nil {
			var h nexus.Health
			json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			for _, c := range nexus.Components {
				if _, n := recoveries(h, c); n > 0 {
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
	t.Fatalf("the node neither recovered nor stopped:\n%s", p.stderr)
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

// wrongReadsOffline opens the store directly, if it opens.
func wrongReadsOffline(t *testing.T, data string, written map[nexus.ID]string) int {
	t.Helper()
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		return 0 // refused: nothing is read at all
	}
	defer s.Close()
	wrong := 0
	for id, content := range written {
		if got, err := s.Get(context.Background(), id); err == nil && got.Content != content {
			wrong++
		}
	}
	return wrong
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

func deletePack(t *testing.T, data string) {
	p := largest(t, packDir(data), "*.pack")
	os.Remove(p)
	os.Remove(strings.TrimSuffix(p, ".pack") + ".idx")
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
