package linearize

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/nexus-mem/nexus"
)

// The histories below are built by calling the recorder in sequence: an
// operation whose Ok comes before another's Begin precedes it in real time,
// one whose Ok comes after another's Begin overlaps it.

var idGen nexus.IDGenerator

func newID() nexus.ID { return idGen.New(time.Now()) }

// results checks h under both models.
func results(t *testing.T, h []porcupine.Operation) (registers, namespaces porcupine.CheckResult) {
	t.Helper()
	registers, _ = Check(RegisterModel(), h, time.Minute)
	namespaces, _ = Check(NamespaceModel(), h, time.Minute)
	return registers, namespaces
}

func expect(t *testing.T, h []porcupine.Operation, registers, namespaces porcupine.CheckResult) {
	t.Helper()
	r, n := results(t, h)
	if r != registers || n != namespaces {
		t.Fatalf("registers %s, namespaces %s; want %s, %s\nhistory: %s", r, n, registers, namespaces, render(h))
	}
}

func render(h []porcupine.Operation) string {
	var b strings.Builder
	for _, op := range h {
		ret := "never"
		if op.Return != Never {
			ret = time.Duration(op.Return).String()
		}
		b.WriteString("\n  [" + time.Duration(op.Call).String() + ", " + ret + "] " + describe(op.Input.(Input), op.Output.(Output)))
	}
	return b.String()
}

func TestConcurrentHistoryIsLinearizable(t *testing.T) {
	r := NewRecorder()
	x := newID()
	w := r.Begin(0, Write("ns", "t1"))
	early := r.Begin(1, Read(x)) // overlaps the write: may miss it
	early.Ok(NotFound())
	during := r.Begin(2, Read(x)) // overlaps the write: may see it
	listDuring := r.Begin(3, List("ns"))
	during.Ok(Found("t1"))
	w.Ok(Written(x))
	listDuring.Ok(Listed("t1"))
	after := r.Begin(1, Read(x))
	after.Ok(Found("t1"))
	listAfter := r.Begin(3, List("ns"))
	listAfter.Ok(Listed("t1"))
	other := r.Begin(2, Read(newID()))
	other.Ok(NotFound())
	expect(t, r.History(), porcupine.Ok, porcupine.Ok)
}

func TestReadNotFoundAfterWriteReturnedIsIllegal(t *testing.T) {
	r := NewRecorder()
	x := newID()
	w := r.Begin(0, Write("ns", "t1"))
	w.Ok(Written(x))
	rd := r.Begin(1, Read(x))
	rd.Ok(NotFound())
	expect(t, r.History(), porcupine.Illegal, porcupine.Ok)
}

func TestReadFoundThenNotFoundIsIllegal(t *testing.T) {
	// Both reads overlap the write, but once one saw it a later one must.
	r := NewRecorder()
	x := newID()
	w := r.Begin(0, Write("ns", "t1"))
	seen := r.Begin(1, Read(x))
	seen.Ok(Found("t1"))
	lost := r.Begin(2, Read(x))
	lost.Ok(NotFound())
	w.Ok(Written(x))
	expect(t, r.History(), porcupine.Illegal, porcupine.Ok)
}

func TestStaleListAfterWriteIsIllegal(t *testing.T) {
	r := NewRecorder()
	w1 := r.Begin(0, Write("ns", "t1"))
	w1.Ok(Written(newID()))
	w2 := r.Begin(0, Write("ns", "t2"))
	w2.Ok(Written(newID()))
	l := r.Begin(1, List("ns"))
	l.Ok(Listed("t1"))
	expect(t, r.History(), porcupine.Ok, porcupine.Illegal)
}

func TestListInAnotherNamespaceIsNotStale(t *testing.T) {
	r := NewRecorder()
	w := r.Begin(0, Write("a", "t1"))
	w.Ok(Written(newID()))
	l := r.Begin(1, List("b"))
	l.Ok(Listed())
	expect(t, r.History(), porcupine.Ok, porcupine.Ok)
}

func TestListWithDuplicateIsIllegal(t *testing.T) {
	// A write applied twice shows its token twice.
	r := NewRecorder()
	w := r.Begin(0, Write("ns", "t1"))
	w.Ok(Written(newID()))
	l := r.Begin(1, List("ns"))
	l.Ok(Listed("t1", "t1"))
	expect(t, r.History(), porcupine.Ok, porcupine.Illegal)
}

func TestReadOfAWriteNotYetCalledIsIllegal(t *testing.T) {
	r := NewRecorder()
	x := newID()
	rd := r.Begin(1, Read(x))
	rd.Ok(Found("t1"))
	l := r.Begin(2, List("ns"))
	l.Ok(Listed("t1"))
	w := r.Begin(0, Write("ns", "t1"))
	w.Ok(Written(x))
	expect(t, r.History(), porcupine.Illegal, porcupine.Illegal)
}

func TestReadOfAnUnknownWriteNotYetCalledIsIllegal(t *testing.T) {
	// The read resolves the unknown write to x, and then sees it before
	// it was called.
	r := NewRecorder()
	x := newID()
	rd := r.Begin(1, Read(x))
	rd.Ok(Found("t1"))
	w := r.Begin(0, Write("ns", "t1"))
	w.Unknown()
	h := r.History()
	if got := h[1].Input.(Input).ID; got != x {
		t.Fatalf("unknown write resolved to %s, want %s", got, x)
	}
	expect(t, h, porcupine.Illegal, porcupine.Ok)
}

func TestReadOfContentNeverWrittenIsIllegal(t *testing.T) {
	r := NewRecorder()
	rd := r.Begin(1, Read(newID()))
	rd.Ok(Found("nobody wrote this"))
	expect(t, r.History(), porcupine.Illegal, porcupine.Ok)
}

func TestReadOfOtherContentIsIllegal(t *testing.T) {
	r := NewRecorder()
	x := newID()
	w1 := r.Begin(0, Write("ns", "t1"))
	w1.Ok(Written(x))
	w2 := r.Begin(0, Write("ns", "t2"))
	w2.Ok(Written(newID()))
	rd := r.Begin(1, Read(x))
	rd.Ok(Found("t2"))
	expect(t, r.History(), porcupine.Illegal, porcupine.Ok)
}

func TestOneIDAssignedTwiceIsIllegal(t *testing.T) {
	r := NewRecorder()
	x := newID()
	w1 := r.Begin(0, Write("ns", "t1"))
	w2 := r.Begin(1, Write("ns", "t2"))
	w1.Ok(Written(x))
	w2.Ok(Written(x))
	expect(t, r.History(), porcupine.Illegal, porcupine.Ok)
}

func TestUnknownWriteLaterFound(t *testing.T) {
	r := NewRecorder()
	x := newID()
	before := r.Begin(1, Read(x)) // the id is not yet taken
	before.Ok(NotFound())
	w := r.Begin(0, Write("ns", "t1"))
	w.Unknown()
	missed := r.Begin(1, Read(x)) // the write has not taken effect yet
	missed.Ok(NotFound())
	emptyList := r.Begin(2, List("ns"))
	emptyList.Ok(Listed())
	seen := r.Begin(1, Read(x))
	seen.Ok(Found("t1"))
	list := r.Begin(2, List("ns"))
	list.Ok(Listed("t1"))
	again := r.Begin(1, Read(x))
	again.Ok(Found("t1"))
	h := r.History()
	if in, out := h[1].Input.(Input), h[1].Output.(Output); in.ID != x || !out.Unknown || h[1].Return != Never {
		t.Fatalf("unknown write recorded as %s returning at %d, want id %s, unknown, at Never", describe(in, out), h[1].Return, x)
	}
	expect(t, h, porcupine.Ok, porcupine.Ok)

	// Seen, then lost: illegal whatever the write did.
	lost := r.Begin(1, Read(x))
	lost.Ok(NotFound())
	lostList := r.Begin(2, List("ns"))
	lostList.Ok(Listed())
	expect(t, r.History(), porcupine.Illegal, porcupine.Illegal)
}

func TestUnknownWriteFoundByResolve(t *testing.T) {
	r := NewRecorder()
	x := newID()
	w := r.Begin(0, Write("ns", "t1"))
	w.Unknown()
	gone := r.Begin(1, Read(x)) // the write has not taken effect yet
	gone.Ok(NotFound())
	final := r.Begin(2, List("ns"))
	final.Ok(Listed("t1"))
	if err := r.Resolve([]Stored{{ID: x, Namespace: "ns", Content: "t1"}}); err != nil {
		t.Fatal(err)
	}
	h := r.History()
	if got := h[0].Input.(Input).ID; got != x {
		t.Fatalf("unknown write resolved to %s, want %s", got, x)
	}
	expect(t, h, porcupine.Ok, porcupine.Ok)

	// Without the listing the read of x would be about some other id.
	seen := r.Begin(1, Read(x))
	seen.Ok(Found("t1"))
	lost := r.Begin(1, Read(x))
	lost.Ok(NotFound())
	expect(t, r.History(), porcupine.Illegal, porcupine.Ok)
}

func TestUnknownWriteNeverFound(t *testing.T) {
	r := NewRecorder()
	x := newID()
	w := r.Begin(0, Write("ns", "t1"))
	w.Unknown()
	for range 3 {
		rd := r.Begin(1, Read(x))
		rd.Ok(NotFound())
		l := r.Begin(2, List("ns"))
		l.Ok(Listed())
	}
	if err := r.Resolve(nil); err != nil {
		t.Fatal(err)
	}
	h := r.History()
	if got := h[0].Input.(Input).ID; !got.IsZero() {
		t.Fatalf("write never found resolved to %s", got)
	}
	expect(t, h, porcupine.Ok, porcupine.Ok)
}

func TestPendingWriteCountsAsUnknown(t *testing.T) {
	r := NewRecorder()
	x := newID()
	r.Begin(0, Write("ns", "t1")) // the client died with it
	r.Begin(3, Read(x))           // a read that never returned tells nothing
	seen := r.Begin(1, Read(x))
	seen.Ok(Found("t1"))
	l := r.Begin(2, List("ns"))
	l.Ok(Listed("t1"))
	h := r.History()
	if len(h) != 3 || h[0].Return != Never || h[0].Input.(Input).ID != x {
		t.Fatalf("history: %s", render(h))
	}
	expect(t, h, porcupine.Ok, porcupine.Ok)
	if c := r.Counts(KindWrite); c != (Counts{Pending: 1}) {
		t.Fatalf("write counts %+v", c)
	}
	if c := r.Counts(KindRead); c != (Counts{Ok: 1, Pending: 1}) {
		t.Fatalf("read counts %+v", c)
	}
}

func TestFailedWriteFoundIsIllegal(t *testing.T) {
	r := NewRecorder()
	x := newID()
	w := r.Begin(0, Write("ns", "t1"))
	w.Fail()
	unknownRead := r.Begin(3, Read(x))
	unknownRead.Unknown()
	failedList := r.Begin(3, List("ns"))
	failedList.Fail()
	if h := r.History(); len(h) != 0 {
		t.Fatalf("failed operations recorded: %s", render(h))
	}
	rd := r.Begin(1, Read(x))
	rd.Ok(Found("t1"))
	l := r.Begin(2, List("ns"))
	l.Ok(Listed("t1"))
	expect(t, r.History(), porcupine.Illegal, porcupine.Illegal)
	err := r.Resolve([]Stored{{ID: x, Namespace: "ns", Content: "t1"}})
	if err == nil || !strings.Contains(err.Error(), `write of token "t1" failed`) {
		t.Fatalf("Resolve: %v", err)
	}
}

func TestResolveContradictions(t *testing.T) {
	r := NewRecorder()
	x, y, z := newID(), newID(), newID()
	acked := r.Begin(0, Write("ns", "acked"))
	acked.Ok(Written(x))
	twice := r.Begin(0, Write("ns", "twice"))
	twice.Unknown()
	moved := r.Begin(0, Write("ns", "moved"))
	moved.Unknown()
	err := r.Resolve([]Stored{
		{ID: x, Namespace: "ns", Content: "acked"},
		{ID: y, Namespace: "ns", Content: "acked"},
		{ID: y, Namespace: "ns", Content: "twice"},
		{ID: z, Namespace: "ns", Content: "twice"},
		{ID: newID(), Namespace: "other", Content: "moved"},
		{ID: newID(), Namespace: "ns", Content: "not a token of this run"},
	})
	if err == nil {
		t.Fatal("Resolve accepted a contradictory listing")
	}
	want := []string{
		`write of token "acked" returned id ` + x.String() + ` but the store holds it under ` + y.String(),
		`token "twice" is stored twice, under ` + y.String() + ` and ` + z.String(),
		`token "moved" written to namespace "ns" is stored in "other"`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Resolve: %v; want %d errors", err, len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("error %d: %q, want it to contain %q", i, lines[i], w)
		}
	}
	if got := r.History()[1].Input.(Input).ID; got != y {
		t.Fatalf("write stored twice resolved to %s, want the first id %s", got, y)
	}
}

func TestTimesFollowRealTime(t *testing.T) {
	r := NewRecorder()
	a := r.Begin(0, Read(newID()))
	b := r.Begin(1, Read(newID()))
	a.Ok(NotFound())
	c := r.Begin(0, Read(newID()))
	b.Ok(NotFound())
	c.Ok(NotFound())
	h := r.History()
	// a: [1,3], b: [2,5], c: [4,6]
	want := [][2]int64{{1, 3}, {2, 5}, {4, 6}}
	for i, op := range h {
		if op.Call != want[i][0] || op.Return != want[i][1] {
			t.Fatalf("operation %d at [%d, %d], want %v", i, op.Call, op.Return, want[i])
		}
		if tm := op.Metadata.(Timing); tm.End < tm.Start || tm.Unknown {
			t.Fatalf("operation %d timing %v", i, tm)
		}
	}
}

func TestMisuseIsRefused(t *testing.T) {
	for name, f := range map[string]func(r *Recorder){
		"duplicate token": func(r *Recorder) {
			r.Begin(0, Write("ns", "t"))
			r.Begin(1, Write("ns", "t"))
		},
		"empty token":     func(r *Recorder) { r.Begin(0, Write("ns", "")) },
		"zero id":         func(r *Recorder) { r.Begin(0, Read(nexus.ZeroID)) },
		"empty namespace": func(r *Recorder) { r.Begin(0, List("")) },
		"negative client": func(r *Recorder) { r.Begin(-1, List("ns")) },
		"unknown kind":    func(r *Recorder) { r.Begin(0, Input{}) },
		"completed twice": func(r *Recorder) {
			p := r.Begin(0, List("ns"))
			p.Ok(Listed())
			p.Fail()
		},
		"write without id": func(r *Recorder) { r.Begin(0, Write("ns", "t")).Ok(Output{}) },
		"ok unknown":       func(r *Recorder) { r.Begin(0, Write("ns", "t")).Ok(Output{Unknown: true}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				v := recover()
				if s, ok := v.(string); !ok || !strings.HasPrefix(s, "linearize: ") {
					t.Fatalf("recovered %v, want a linearize panic", v)
				}
			}()
			f(NewRecorder())
		})
	}
}

// recordingTB is a testing.TB whose failures are collected, so a test can
// check what Verify reports without failing itself.
type recordingTB struct {
	testing.TB
	name   string
	errors []string
}

func (r *recordingTB) Helper()      {}
func (r *recordingTB) Name() string { return r.name }
func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestVerifyWritesTheVisualization(t *testing.T) {
	root := t.TempDir()
	t.Setenv(ArtifactsEnv, root)
	r := NewRecorder()
	x := newID()
	w := r.Begin(0, Write("ns", "t1"))
	w.Ok(Written(x))
	rd := r.Begin(1, Read(x))
	rd.Ok(NotFound())

	tb := &recordingTB{TB: t, name: "TestCluster/seed 7"}
	if Verify(tb, r.History(), time.Minute) {
		t.Fatal("Verify passed a history that is not linearizable")
	}
	path := filepath.Join(root, "TestCluster_seed_7", "linearize-registers.html")
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "registers model: the history of 2 operations is not linearizable; visualization: "+path) {
		t.Fatalf("Verify reported %q", tb.errors)
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "<html") || !strings.Contains(string(page), "read("+x.String()+")") || !strings.Contains(string(page), "not found") {
		t.Fatalf("visualization lacks the history: %.200s", page)
	}
	if _, err := os.Stat(filepath.Join(root, "TestCluster_seed_7", "linearize-namespaces.html")); !os.IsNotExist(err) {
		t.Fatalf("a visualization was written for the model that passed: %v", err)
	}

	ok := &recordingTB{TB: t, name: "ok"}
	if !Verify(ok, r.History()[:1], time.Minute) || len(ok.errors) != 0 {
		t.Fatalf("Verify of a linearizable history: %q", ok.errors)
	}
}
