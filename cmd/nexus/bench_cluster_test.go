package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// `nexus bench cluster` at its smallest: every part runs on in-process
// nodes and prints its rows (the command fails when a write is not
// acknowledged, a killed leader is not replaced, or a follower does not
// catch up the way its row says).
func TestCLI_BenchCluster(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu")
	cmd := exec.Command(binary, "bench", "cluster", "--duration", "200ms", "--clients", "4", "--kills", "1", "--timeouts", "fast", "--raft", "fast",
		"--catchup", "40", "--snapshot-contexts", "120", "--trailing-logs", "8", "--timeout", "60s", "--dir", t.TempDir(), "--cpuprofile", prof)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nexus bench cluster: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("\n%s", out)
	for _, run := range []string{"single", "leader"} {
		if fi, err := os.Stat(prof + "-" + run + ".pprof"); err != nil || fi.Size() == 0 {
			t.Errorf("CPU profile of the %s run: %v", run, err)
		}
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "| "), " | ")
		rows[cells[0]] = cells
	}
	positive := func(row, cell, pattern string) {
		t.Helper()
		m := regexp.MustCompile("^" + pattern + "$").FindStringSubmatch(cell)
		if m == nil {
			t.Errorf("%s: %q does not match %s", row, cell, pattern)
			return
		}
		for _, v := range m[1:] {
			if f, _ := strconv.ParseFloat(v, 64); f <= 0 {
				t.Errorf("%s: %q is not positive", row, cell)
			}
		}
	}
	for _, name := range []string{"single node", "3-node cluster, clients on the leader", "3-node cluster, clients on the two followers (forwarded to the leader)"} {
		r, ok := rows[name]
		if !ok || len(r) != 8 {
			t.Errorf("no throughput row %q (%q)", name, r)
			continue
		}
		positive(name, r[1], `(\d+)`)
		if !regexp.MustCompile(`^\d+(\.\d+)?(µs|ms|s)$`).MatchString(r[6]) || !regexp.MustCompile(`^\d+\.\d\d$`).MatchString(r[7]) {
			t.Errorf("%s: CPU per write %q, cores busy %q", name, r[6], r[7])
		}
		// Errors are counted, not refused: on a loaded machine a leader
		// may step down during the run, and its row says so.
		if !regexp.MustCompile(`^\d+( \(first: .+\))?$`).MatchString(r[4]) {
			t.Errorf("%s: errors %q", name, r[4])
		}
	}
	if !regexp.MustCompile(`3-node cluster \(leader\) / single node: \d+\.\d\d \(bar ≥ 0\.50\): (met|not met)\n`).MatchString(out) {
		t.Errorf("no ratio line")
	}
	s3 := `(\d+\.\d{3}) s / (\d+\.\d{3}) s / (\d+\.\d{3}) s`
	if r, ok := rows["fast (250ms / 250ms / 250ms)"]; !ok || len(r) != 6 {
		t.Errorf("no failover row for fast timeouts (%q)", r)
	} else {
		if r[1] != "1" {
			t.Errorf("failover: %s kills, want 1", r[1])
		}
		positive("failover ready", r[2], s3)
		positive("failover acknowledged", r[3], s3)
		if !regexp.MustCompile(`^≤ 1s — (met|not met)$`).MatchString(r[4]) {
			t.Errorf("failover bar %q", r[4])
		}
	}
	// Catch-up rows: "CASE (N contexts in the store)". A write retried
	// after a leader change (whose first try had an unknown outcome) may
	// be stored twice, so the counts are at least those written.
	snap := `\d+\.\d MB \(leader's repository \d+\.\d MB\); bundle made in \d+\.\d\d s, sent and received in \d+\.\d\d s, installed in \d+\.\d\d s`
	label := regexp.MustCompile(`^(.+) \((\d+) contexts in the store\)$`)
	catch := map[string][]string{}
	stored := map[string]int{}
	for name, r := range rows {
		if m := label.FindStringSubmatch(name); m != nil {
			catch[m[1]] = r
			stored[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	for _, c := range []struct {
		name, snap      string
		behind, inStore int
	}{
		{"from the log", "—", 40, 40},
		{"from a snapshot", snap, 40, 80},
		{"wiped follower, from a snapshot", snap, 384, 384}, // 120 filled, 8+256 through the log
	} {
		r, ok := catch[c.name]
		if !ok || len(r) != 8 {
			t.Errorf("no catch-up row %q (%q)", c.name, r)
			continue
		}
		behind, _ := strconv.Atoi(r[1])
		if behind < c.behind || stored[c.name] < c.inStore {
			t.Errorf("%s: %d contexts behind of %d in the store, want at least %d of %d", c.name, behind, stored[c.name], c.behind, c.inStore)
		}
		if strings.HasPrefix(c.name, "wiped") && behind != stored[c.name] {
			t.Errorf("%s: %d contexts behind, want all %d of the store", c.name, behind, stored[c.name])
		}
		positive(c.name, r[5], `(\d+\.\d\d) s`)
		if r[6] != "— (one batch)" || c.snap != "—" { // a few contexts from the log may come in one batch
			positive(c.name, r[6], `(\d+) contexts/s`)
		}
		if !regexp.MustCompile("^" + c.snap + "$").MatchString(r[7]) {
			t.Errorf("%s: snapshot cell %q does not match %s", c.name, r[7], c.snap)
		}
	}
}
