package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// settle waits for a server's search index: it polls /metrics until the
// lag and the contexts waiting for an embedding are both 0; a server
// without the index (no such series) needs no wait.
func TestSettle(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := polls.Add(1)
		lag, waiting := max(0, 3-n), 0
		if n == 3 {
			waiting = 2 // the lag is gone, an embedding is not
		}
		fmt.Fprintf(w, "# HELP nexus_index_lag_contexts Stored contexts not yet in the search index.\n")
		fmt.Fprintf(w, "# TYPE nexus_index_lag_contexts gauge\nnexus_index_lag_contexts %d\n", lag)
		fmt.Fprintf(w, "nexus_index_lag_contexts_other 7\nnexus_index_waiting_embedding %d\n", waiting)
	}))
	defer srv.Close()
	waited, first, err := settle(context.Background(), srv.URL, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if n := polls.Load(); n != 4 || waited < 300*time.Millisecond || first != 2 {
		t.Fatalf("settled after %d polls in %s, first lag %d; want 4 polls, 100 ms apart, first lag 2", n, waited, first)
	}

	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "nexus_http_requests_total{code=\"200\",route=\"GET /health\"} 1\n")
	}))
	defer bare.Close()
	if waited, _, err := settle(context.Background(), bare.URL, 100*time.Millisecond); err != nil || waited > time.Second {
		t.Fatalf("a server without the index: %s, %v; want no wait", waited, err)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	defer gone.Close()
	if _, _, err := settle(context.Background(), gone.URL, 100*time.Millisecond); err == nil {
		t.Fatal("a server without /metrics settled")
	}
}

// A phase that left the index behind counts the catch-up: its writes over
// the phase and the catch-up, with the server CPU of both; without a CPU
// figure (not Linux) the CPU cell stays n/a.
func TestCatchUp_Sustained(t *testing.T) {
	phase := &loadResult{Ops: 1000, Elapsed: 5 * time.Second, ServerCPU: 500 * time.Millisecond}
	c := &catchUp{lag: 400, wall: 5 * time.Second, cpu: 1500 * time.Millisecond}
	got := c.sustained(phase)
	if got.rate() != 100 || got.serverCPUPerOp() != 2*time.Millisecond {
		t.Fatalf("sustained: %.1f/s, %s per write; want 100/s, 2ms", got.rate(), got.serverCPUPerOp())
	}
	if phase.rate() != 200 || phase.ServerCPU != 500*time.Millisecond {
		t.Fatalf("the phase's own result changed: %.1f/s, %s", phase.rate(), phase.ServerCPU)
	}
	none := c.sustained(&loadResult{Ops: 1000, Elapsed: 5 * time.Second})
	if cell := cpuCell(none); cell != "n/a" {
		t.Fatalf("without the server's CPU: %q, want n/a", cell)
	}
	if none.rate() != 100 {
		t.Fatalf("without the server's CPU: %.1f/s, want 100", none.rate())
	}
}

// The recovery table explains a rebuild that read no vectors only when
// the node logged that its model is local.
func TestLocalNote(t *testing.T) {
	line := `time=2026-12-07T23:00:00Z level=INFO msg="rebuilding the search index" model=m contexts=200 "vectors kept in git"=0 "local model"=%s`
	if got := localNote(fmt.Sprintf(line, "true")); !strings.Contains(got, "the model is local") {
		t.Fatalf("local model: %q", got)
	}
	for _, log := range []string{fmt.Sprintf(line, "false"), "", `msg="search enabled" "local model"=true`} {
		if got := localNote(log); got != "" {
			t.Fatalf("log %q: %q, want nothing", log, got)
		}
	}
}
