package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// newProgress returns a progress callback that draws a bar on w, at most
// ten times a second, and finishes the line when done reaches total.
func newProgress(w io.Writer, what string) func(done, total int) {
	var mu sync.Mutex
	var last time.Time
	start := time.Now()
	return func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		finished := done >= total
		if !finished && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		const width = 30
		n := width
		if total > 0 {
			n = done * width / total
		}
		rate := float64(done) / time.Since(start).Seconds()
		fmt.Fprintf(w, "\rrebuilding %s [%s%s] %d/%d (%.0f/s)", what, strings.Repeat("=", n), strings.Repeat(" ", width-n), done, total, rate)
		if finished {
			fmt.Fprintln(w)
		}
	}
}
