package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func (c *fakeClock) progress(b *bytes.Buffer, bar bool) *progress {
	return newProgressOn(b, "catalog", bar, c.now)
}

// Off a terminal: no carriage return, a plain line every few seconds and
// a last line when the work is done.
func TestProgress_Lines(t *testing.T) {
	clk := newFakeClock()
	var b bytes.Buffer
	p := clk.progress(&b, false)
	p.report(0, 4000)
	for done := 1000; done <= 4000; done += 1000 {
		clk.advance(2 * time.Second)
		p.report(done, 4000)
	}
	p.finish()                                                 // after the end: nothing more
	want := "rebuilding catalog: 3000/4000 (75%) at 500/s\n" + // 5 s after the start, at the next report
		"rebuilt catalog: 4000/4000 in 8s at 500/s\n"
	if b.String() != want {
		t.Errorf("got:\n%q\nwant:\n%q", b.String(), want)
	}
}

// On a terminal: a bar redrawn at most ten times a second, and a last
// line over it when the work is done.
func TestProgress_Bar(t *testing.T) {
	clk := newFakeClock()
	var b bytes.Buffer
	p := clk.progress(&b, true)
	p.report(0, 300)
	clk.advance(50 * time.Millisecond)
	p.report(100, 300) // too soon: not drawn
	clk.advance(50 * time.Millisecond)
	p.report(150, 300)
	clk.advance(100 * time.Millisecond)
	p.report(300, 300)
	want := "\r\x1b[Krebuilding catalog [===============               ] 150/300 at 1500/s" +
		"\r\x1b[Krebuilt catalog: 300/300 in 200ms at 1500/s\n"
	if b.String() != want {
		t.Errorf("got:\n%q\nwant:\n%q", b.String(), want)
	}
}

// A run that stops short (an error, an interrupt) still ends its line,
// and says where it stopped.
func TestProgress_Finish(t *testing.T) {
	for _, tc := range []struct {
		bar  bool
		want string
	}{
		{true, "\r\x1b[Krebuilding catalog [======                        ] 100/500 at 1000/s" +
			"\r\x1b[Krebuilding catalog stopped at 100/500 after 100ms at 1000/s\n"},
		{false, "rebuilding catalog stopped at 100/500 after 100ms at 1000/s\n"},
	} {
		t.Run(fmt.Sprint("bar=", tc.bar), func(t *testing.T) {
			clk := newFakeClock()
			var b bytes.Buffer
			p := clk.progress(&b, tc.bar)
			p.report(0, 500)
			clk.advance(100 * time.Millisecond)
			p.report(100, 500)
			p.finish()
			if b.String() != tc.want {
				t.Errorf("got:\n%q\nwant:\n%q", b.String(), tc.want)
			}
		})
	}
}

// Work done at its first report gets one line; later runs with nothing
// left to do, and a progress never called, say nothing.
func TestProgress_Quiet(t *testing.T) {
	clk := newFakeClock()
	var b bytes.Buffer
	p := clk.progress(&b, false)
	clk.advance(30 * time.Millisecond)
	p.report(800, 800)
	p.report(800, 800)
	p.report(0, 0)
	p.finish()
	if want := "rebuilt catalog: 800/800 in 30ms\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	var none bytes.Buffer
	clk.progress(&none, true).finish()
	if none.Len() != 0 {
		t.Errorf("an unused progress wrote %q", none.String())
	}
}
