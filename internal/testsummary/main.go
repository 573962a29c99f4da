// Command testsummary reads the output of `go test -json` on its standard
// input and prints what a plain `go test` would have printed (an "ok" line
// per passing package, the output of every failing test and of every
// failing package), then a line per skipped test with the reason it gave,
// and last a line "N passed, N failed, N skipped".
//
// It counts tests and subtests; a package that fails with no failing test
// (it does not build, or it panics outside a test) counts as one failure.
// Its exit status is 0 unless its input is not test2json output: the
// caller keeps go test's own exit status (`set -o pipefail`).
//
//	set -o pipefail; go test -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	if _, err := summarize(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(2)
	}
}

// event is one line of `go test -json` output.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// line is one line of output and the test (or "" for the package) that
// printed it.
type line struct{ test, text string }

// pkg collects a package's output until the package ends.
type pkg struct {
	lines   []line
	outcome map[string]string // test → pass, fail or skip
}

// counts is the tally printed last.
type counts struct{ passed, failed, skipped int }

func (c counts) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped", c.passed, c.failed, c.skipped)
}

// summarize copies the events read from r to w as described in the
// package doc, and returns the tally.
func summarize(r io.Reader, w io.Writer) (counts, error) {
	var c counts
	var skips []string
	pkgs := map[string]*pkg{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return c, fmt.Errorf("not go test -json output: %q: %w", sc.Text(), err)
		}
		if e.Action == "build-output" {
			fmt.Fprint(w, e.Output)
			continue
		}
		p := pkgs[e.Package]
		if p == nil {
			p = &pkg{outcome: map[string]string{}}
			pkgs[e.Package] = p
		}
		switch {
		case e.Action == "output":
			p.lines = append(p.lines, line{e.Test, e.Output})
		case e.Test != "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
			p.outcome[e.Test] = e.Action
			c.count(e.Action)
			if e.Action == "skip" {
				skips = append(skips, fmt.Sprintf("skipped: %s %s: %s", e.Package, e.Test, p.reason(e.Test)))
			}
		case e.Test == "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
			if e.Action == "fail" && !p.anyFailed() {
				c.failed++
			}
			p.print(w, e.Action == "fail")
			delete(pkgs, e.Package)
		}
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	for _, s := range skips {
		fmt.Fprintln(w, s)
	}
	fmt.Fprintln(w, c)
	return c, nil
}

// count adds a test's outcome to the tally.
func (c *counts) count(action string) {
	switch action {
	case "pass":
		c.passed++
	case "fail":
		c.failed++
	case "skip":
		c.skipped++
	}
}

// anyFailed reports whether a test of the package failed.
func (p *pkg) anyFailed() bool {
	for _, o := range p.outcome {
		if o == "fail" {
			return true
		}
	}
	return false
}

// reason returns the last line a test logged: the message it skipped with.
func (p *pkg) reason(test string) string {
	for i := len(p.lines) - 1; i >= 0; i-- {
		l := p.lines[i]
		t := strings.TrimSpace(l.text)
		if l.test == test && t != "" && !strings.HasPrefix(t, "=== ") && !strings.HasPrefix(t, "--- ") {
			return t
		}
	}
	return "(no reason given)"
}

// print writes the package's output as a plain go test would: for a
// passing package its own lines (the "ok" line), for a failing one also
// the output of every test that failed or never ended.
func (p *pkg) print(w io.Writer, failed bool) {
	for _, l := range p.lines {
		switch {
		case strings.HasPrefix(l.text, "=== "): // RUN, PAUSE, CONT, NAME: -v only
			continue
		case l.test == "" && (failed || l.text != "PASS\n"):
		case failed && p.outcome[l.test] != "pass" && p.outcome[l.test] != "skip":
		default:
			continue
		}
		fmt.Fprint(w, l.text)
	}
}
