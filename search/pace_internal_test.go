package search

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// waitPaced waits until Pace has held n writes back.
func waitPaced(t *testing.T, e *Engine, n int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for e.Stats().Paced < n {
		if time.Now().After(deadline) {
			t.Fatalf("Pace never held write %d back: %+v", n, e.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func putN(t *testing.T, f *freshFixture, n int) {
	t.Helper()
	for i := range n {
		if _, err := f.st.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprintf("paced note %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// Pace holds a write back exactly while the index is more than MaxLag
// behind, once the index has caught up since it was opened or reset;
// it lets writes through when the index makes no progress for
// PaceStall, and fails, having written nothing, when the caller gives up.
// The engine's indexer does not run here (open, not Open): the test
// makes every step, so the lag moves only when it says.
func TestEngine_Pace(t *testing.T) {
	ctx := context.Background()
	f := newFreshFixture(t, 0)
	dir := t.TempDir()
	e, err := open(f.st, f.emb, Options{Dir: dir, Batch: 4, MaxLag: 5, PaceStall: time.Hour}, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	putN(t, f, 10)
	if err := e.Pace(ctx); err != nil || e.Stats().Paced != 0 {
		t.Fatalf("before the index first caught up: %v, %+v", err, e.Stats())
	}
	if err := e.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	putN(t, f, 10) // lag 10, bound 5
	returned := make(chan error, 1)
	go func() { returned <- e.Pace(ctx) }()
	waitPaced(t, e, 1)
	if _, err := e.step(ctx, 1); err != nil { // 4 admitted: lag 6
		t.Fatal(err)
	}
	select {
	case err := <-returned:
		t.Fatalf("Pace returned (%v) at lag %d, more than MaxLag 5", err, e.Stats().Lag)
	default:
	}
	if _, err := e.step(ctx, 1); err != nil { // lag 2
		t.Fatal(err)
	}
	if err := <-returned; err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Lag != 2 || st.Paced != 1 || st.PacedSeconds <= 0 || st.PaceStalls != 0 || st.MaxLag != 5 {
		t.Fatalf("after the lag fell to the bound: %+v", st)
	}

	// The caller gives up: an error saying nothing was written.
	putN(t, f, 4) // lag 6
	cctx, cancel := context.WithCancel(ctx)
	go func() { returned <- e.Pace(cctx) }()
	waitPaced(t, e, 2)
	cancel()
	if err := <-returned; nexus.ErrorCode(err) != nexus.EUnavailable || !strings.Contains(err.Error(), "held back while the search index caught up (6 contexts behind, at most 5)") ||
		!strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("Pace with the caller gone: %v", err)
	}

	// No progress for PaceStall: the write goes through.
	e.opts.PaceStall = 20 * time.Millisecond
	if err := e.Pace(ctx); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Paced != 3 || st.PaceStalls != 1 || st.Lag != 6 {
		t.Fatalf("after a stall: %+v", st)
	}

	// A reset (a restore) rebuilds: its lag holds no write back.
	e.stepMu.Lock()
	err = e.reset()
	e.stepMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Pace(ctx); err != nil || e.Stats().Paced != 3 {
		t.Fatalf("while rebuilding: %v, %+v", err, e.Stats())
	}

	// MaxLag -1: never.
	e.opts.MaxLag = -1
	if err := e.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	putN(t, f, 10)
	if err := e.Pace(ctx); err != nil || e.Stats().Paced != 3 {
		t.Fatalf("with no bound: %v, %+v", err, e.Stats())
	}
}
