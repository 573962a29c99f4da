package main_test

import (
	"bytes"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/internal/browsertest"
)

// `nexus bench console` on a small store: the real binary serves it,
// headless chromium loads every page cold and warm, and the table has a
// row per page with its times, bytes and slowest API request (the
// command fails when a page logs a console error or is not ready in
// time).
func TestCLI_BenchConsole(t *testing.T) {
	browsertest.Need(t)
	dir := t.TempDir()
	cmd := exec.Command(binary, "bench", "console", "--contexts", "400", "--runs", "1", "--timeout", "60s", "--dir", dir, "--keep")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nexus bench console: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("\n%s", out)
	if !strings.Contains(out, "store: 400 contexts in threads of 8, 4 namespaces, 6 agents, 6 types") {
		t.Errorf("no store line for 400 contexts:\n%s", out)
	}
	var rows [][]string
	for _, r := range tableRows(out) {
		if r[0] != "page" {
			rows = append(rows, r)
		}
	}
	want := []struct{ page, route, slowest string }{
		{"overview", "`#/overview`", "`/(health|metrics|v1/contexts\\?limit=8|v1/incidents\\?limit=5|v1/session)`"},
		{"contexts", "`#/contexts`", "`/(v1/contexts\\?limit=50|v1/session)`"},
		{"context", "`#/contexts/ID`", "`/(v1/contexts/[0-9A-Z]{26}(/chain\\?limit=50|/children|/related\\?limit=5)?|v1/log\\?limit=200(&cursor=…)?|v1/session)`"},
		{"search", "`#/search\\?q=[a-z+]+`", "`/(v1/search|v1/session)`"},
		{"agents", "`#/agents`", "`/(v1/agents|v1/tasks\\?limit=50|v1/session)`"},
		{"recovery", "`#/recovery`", "`/(health|metrics|v1/incidents\\?limit=20|v1/session)`"},
		{"cluster", "`#/cluster`", "`/(livez|v1/cluster|v1/session)`"},
		{"floor", "`/floor.html \\(not the node\\)`", "`/floor.json`"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out)
	}
	msRe := regexp.MustCompile(`^([1-9]\d*|0) ms$`)
	for i, w := range want {
		row := rows[i]
		if len(row) != 10 {
			t.Fatalf("row %d: %d cells, want 10: %q", i+1, len(row), row)
		}
		if row[0] != w.page || !regexp.MustCompile("^"+w.route+"$").MatchString(row[1]) {
			t.Errorf("row %d: page %q route %q, want %s %s", i+1, row[0], row[1], w.page, w.route)
		}
		// Became ready: every time is a positive number of milliseconds.
		for _, c := range row[2:6] {
			if !msRe.MatchString(c) || c == "0 ms" {
				t.Errorf("row %d (%s): time %q is not a positive number of ms", i+1, w.page, c)
			}
		}
		for _, c := range row[6:8] {
			if !regexp.MustCompile(`^[1-9]\d*\.\d kB$`).MatchString(c) {
				t.Errorf("row %d (%s): bytes %q", i+1, w.page, c)
			}
		}
		if !regexp.MustCompile(`^[1-9]\d*$`).MatchString(row[8]) {
			t.Errorf("row %d (%s): requests %q", i+1, w.page, row[8])
		}
		if !regexp.MustCompile("^" + w.slowest + ` \d+ ms$`).MatchString(row[9]) {
			t.Errorf("row %d (%s): slowest API request %q, want one of the page's: %s", i+1, w.page, row[9], w.slowest)
		}
	}

	// The kept store is used again; a run that cannot finish fails with
	// the page and run it stopped at, and the exit status 1.
	t.Run("timeout", func(t *testing.T) {
		stdout, stderr, code := runBench(t, "--contexts", "400", "--runs", "1", "--timeout", "1ms", "--dir", dir)
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "using the store generated on ") {
			t.Errorf("the kept store was not used again:\n%s", stdout)
		}
		if !regexp.MustCompile(`(?m)^nexus bench: overview \(#/overview\), run 1: .+`).MatchString(stderr) {
			t.Errorf("stderr does not say which page and run failed:\n%s", stderr)
		}
	})
	t.Run("other store size", func(t *testing.T) {
		stdout, stderr, code := runBench(t, "--contexts", "800", "--runs", "1", "--dir", dir)
		if code != 1 || !strings.Contains(stderr, dir+" holds a store of 400 contexts, not 800: use another --dir") {
			t.Fatalf("exit %d, want 1 and the reason\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{{"--contexts", "7"}, {"--runs", "0"}, {"--timeout", "0s"}, {"extra"}} {
			_, stderr, code := runBench(t, args...)
			if code != 2 || stderr == "" {
				t.Errorf("%q: exit %d, want 2 with a usage message; stderr:\n%s", args, code, stderr)
			}
		}
	})
}

// runBench runs `nexus bench console` with args and returns its output
// and exit status.
func runBench(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"bench", "console"}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run nexus bench console: %v", err)
	}
	return o.String(), e.String(), code
}
