package search

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// countLog counts the segments appended to the vector log; with err
// set, every append fails with it.
type countLog struct {
	VectorLog
	appends int
	err     error
}

func (l *countLog) Append(ctx context.Context, name string, seg []byte) error {
	l.appends++
	if l.err != nil {
		return l.err
	}
	return l.VectorLog.Append(ctx, name, seg)
}

// An append that fails loses nothing searchable: the engine counts every
// embedding of the segment in LogFailures, keeps indexing, and closes
// cleanly; a rebuild embeds those texts again.
func TestEngine_vectorLogAppendFails(t *testing.T) {
	ctx := context.Background()
	f, e, log := remoteEngine(t, Options{LogSegment: 4}, errors.New("disk full"))
	if n, err := e.step(ctx, 1); err != nil || n != 10 {
		t.Fatalf("step: %d, %v", n, err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := e.Stats().LogFailures; got != 10 || log.appends != 1 {
		t.Fatalf("%d embeddings counted lost in %d appends; want 10 in 1", got, log.appends)
	}
	if len(e.logIDs) != 0 {
		t.Fatalf("%d embeddings still queued after Close", len(e.logIDs))
	}
	known, err := (&Engine{emb: f.emb, vlog: f.st.SideLog()}).loadKnown(ctx)
	if err != nil || len(known) != 0 {
		t.Fatalf("the log holds %d vectors (%v), want none", len(known), err)
	}
}

// Queued embeddings are appended once the oldest has waited LogDelay,
// not before. The indexer does not run (open, not Open): the test makes
// every step and sets when the queue began.
func TestEngine_vectorLogDelay(t *testing.T) {
	ctx := context.Background()
	_, e, log := remoteEngine(t, Options{LogDelay: time.Minute}, nil)
	defer e.Close()
	if n, err := e.step(ctx, 1); err != nil || n != 10 {
		t.Fatalf("step: %d, %v", n, err)
	}
	if len(e.logIDs) != 10 || log.appends != 0 {
		t.Fatalf("queued %d, appended %d segments; want 10 queued, none appended", len(e.logIDs), log.appends)
	}
	e.logSince = time.Now().Add(-59 * time.Second)
	e.flushLogIfDue(ctx)
	if len(e.logIDs) != 10 || log.appends != 0 {
		t.Fatalf("after 59 s: queued %d, appended %d segments; want 10 queued, none appended", len(e.logIDs), log.appends)
	}
	e.logSince = time.Now().Add(-61 * time.Second)
	e.flushLogIfDue(ctx)
	if len(e.logIDs) != 0 || log.appends != 1 {
		t.Fatalf("after 61 s: queued %d, appended %d segments; want none queued, one appended", len(e.logIDs), log.appends)
	}
	known, err := e.loadKnown(ctx)
	if err != nil || len(known) != 10 {
		t.Fatalf("the log holds %d vectors (%v), want 10", len(known), err)
	}
}

// remote is an embedder standing for a remote model, whose vectors an
// engine keeps in the vector log.
type remote struct{ nexus.Embedder }

func (remote) Local() bool { return false }

// remoteEngine opens, without starting its indexer, an engine over a
// store of 10 contexts and a remote model, with opts and a vector log
// that counts its appends (each failing with appendErr if not nil).
func remoteEngine(t *testing.T, opts Options, appendErr error) (*freshFixture, *Engine, *countLog) {
	t.Helper()
	f := newFreshFixture(t, 10)
	log := &countLog{VectorLog: f.st.SideLog(), err: appendErr}
	opts.Dir, opts.Log = t.TempDir(), log
	e, err := open(f.st, remote{f.emb}, opts, opts.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return f, e, log
}

// A rebuild after the store rolled back reads the embeddings that still
// waited for their segment: they are appended first, so a remote model is
// not asked for them again. Without the append the rebuild knows none.
func TestEngine_rollbackKeepsQueuedVectors(t *testing.T) {
	ctx := context.Background()
	_, e, log := remoteEngine(t, Options{LogDelay: time.Hour}, nil)
	defer e.Close()
	if n, err := e.step(ctx, 1); err != nil || n != 10 || len(e.logIDs) != 10 {
		t.Fatalf("step: %d, %v, %d queued; want 10 indexed and queued", n, err, len(e.logIDs))
	}
	e.restores.Add(1) // as if the store had run a restore since
	e.checkRollback(ctx)
	if len(e.known) != 10 || len(e.logIDs) != 0 || log.appends != 1 {
		t.Fatalf("the rebuild knows %d vectors, %d still queued, %d appends; want 10, 0, 1", len(e.known), len(e.logIDs), log.appends)
	}
}
