package search

import (
	"context"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// countLog counts the segments appended to the vector log.
type countLog struct {
	VectorLog
	appends int
}

func (l *countLog) Append(ctx context.Context, name string, seg []byte) error {
	l.appends++
	return l.VectorLog.Append(ctx, name, seg)
}

// Queued embeddings are appended once the oldest has waited LogDelay,
// not before. The indexer does not run (open, not Open): the test makes
// every step and sets when the queue began.
func TestEngine_vectorLogDelay(t *testing.T) {
	ctx := context.Background()
	f := newFreshFixture(t, 10)
	dir := t.TempDir()
	log := &countLog{VectorLog: f.st.SideLog()}
	e, err := open(f.st, remote{f.emb}, Options{Dir: dir, Log: log, LogDelay: time.Minute}, dir)
	if err != nil {
		t.Fatal(err)
	}
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
