package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progress reports a long rebuild (the catalog, a search index) on a
// writer: on a terminal, a bar redrawn in place at most ten times a
// second; elsewhere (a pipe, a log file), a plain line every few seconds.
// Either way the output ends its line: with a last line when the work is
// done, or when finish is called because it stopped short.
type progress struct {
	w     io.Writer
	what  string
	bar   bool             // w is a terminal: draw a bar
	every time.Duration    // between two drawings or lines
	now   func() time.Time // the clock

	mu      sync.Mutex
	created time.Time // when p was made
	runs    int       // runs reported to their end
	start   time.Time // of the current run; zero between runs
	last    time.Time // of the last drawing or line
	base    int       // done at the start of the run; -1: unknown
	done    int
	all     int
}

// Intervals between two outputs of a progress: a terminal's bar, a plain
// line.
const (
	barEvery  = 100 * time.Millisecond
	lineEvery = 5 * time.Second
)

// newProgress returns a progress callback reporting on w; see progress.
// Callers that may stop before the end use startProgress and finish.
func newProgress(w io.Writer, what string) func(done, total int) {
	return startProgress(w, what).report
}

// startProgress returns a progress reporting on w, drawing a bar only
// when w is a terminal.
func startProgress(w io.Writer, what string) *progress {
	return newProgressOn(w, what, isTerminal(w), time.Now)
}

// newProgressOn returns a progress reporting on w with the clock now,
// as a bar or as plain lines.
func newProgressOn(w io.Writer, what string, bar bool, now func() time.Time) *progress {
	p := &progress{w: w, what: what, bar: bar, every: lineEvery, now: now, created: now()}
	if bar {
		p.every = barEvery
	}
	return p
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), getTermios)
	return err == nil
}

// report is the callback: done of total items are through.
func (p *progress) report(done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.done, p.all = done, total
	if p.start.IsZero() {
		switch {
		case done < total:
			p.start, p.last, p.base = now, now, done
			return
		case p.runs == 0 && total > 0:
			// Done at the first report: the whole run fell between two.
			p.start, p.base = p.created, -1
		default:
			return // nothing was left to do
		}
	}
	switch {
	case done >= total:
		p.endLocked(now, false)
	case now.Sub(p.last) < p.every:
	case p.bar:
		p.drawLocked(now)
	default:
		fmt.Fprintf(p.w, "rebuilding %s: %d/%d (%d%%)%s\n", p.what, done, total, done*100/total, p.rateLocked(now))
		p.last = now
	}
}

// finish ends the report of a run that stopped before its end (on an
// error, or when cancelled); after a complete run it does nothing.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.start.IsZero() {
		p.endLocked(p.now(), true)
	}
}

// drawLocked draws the bar over the current line.
func (p *progress) drawLocked(now time.Time) {
	const width = 30
	n := width
	if p.all > 0 {
		n = min(p.done*width/p.all, width)
	}
	fmt.Fprintf(p.w, "\r\x1b[Krebuilding %s [%s%s] %d/%d%s", p.what, strings.Repeat("=", n), strings.Repeat(" ", width-n), p.done, p.all, p.rateLocked(now))
	p.last = now
}

// endLocked writes the last line of a run, over the bar on a terminal,
// and readies p for another run.
func (p *progress) endLocked(now time.Time, stopped bool) {
	if p.bar {
		fmt.Fprint(p.w, "\r\x1b[K") // back to the start of the line, erased
	}
	took := now.Sub(p.start).Round(time.Millisecond)
	if stopped {
		fmt.Fprintf(p.w, "rebuilding %s stopped at %d/%d after %s%s\n", p.what, p.done, p.all, took, p.rateLocked(now))
	} else {
		fmt.Fprintf(p.w, "rebuilt %s: %d/%d in %s%s\n", p.what, p.done, p.all, took, p.rateLocked(now))
	}
	p.start = time.Time{}
	p.runs++
}

// rateLocked is " at N/s", the run's rate, when it is known.
func (p *progress) rateLocked(now time.Time) string {
	s := now.Sub(p.start).Seconds()
	if p.base < 0 || s <= 0 {
		return ""
	}
	return fmt.Sprintf(" at %.0f/s", float64(p.done-p.base)/s)
}

// progresses makes the progress reporters of one command (node.Config's
// and node.OfflineConfig's Progress); finish ends their lines.
type progresses struct {
	w io.Writer

	mu      sync.Mutex
	started []*progress
}

func (ps *progresses) make(what string) func(done, total int) {
	p := startProgress(ps.w, what)
	ps.mu.Lock()
	ps.started = append(ps.started, p)
	ps.mu.Unlock()
	return p.report
}

func (ps *progresses) finish() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, p := range ps.started {
		p.finish()
	}
}
