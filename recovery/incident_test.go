package recovery_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/recovery"
)

// The namespace of the records is the one the access checks reserve.
func TestIncidentsNamespace_reserved(t *testing.T) {
	if recovery.IncidentsNamespace != authz.IncidentsNamespace || !authz.IsSystem(recovery.IncidentsNamespace, nexus.TypeResult) ||
		!authz.IsSystem("team-a", nexus.TypeIncident) {
		t.Fatalf("incident records are not the node's alone to write")
	}
}

// The events of an episode: detected once (with what ran the cascade),
// each attempt, and cleared when the component is found well without a
// successful attempt.
func TestManager_Events(t *testing.T) {
	var visits []string
	index := &part{name: "index", broken: true, visits: &visits}
	var events []recovery.Event
	m := recovery.New([]recovery.Component{index.component(false)}, recovery.Options{OnEvent: func(e recovery.Event) { events = append(events, e) }})
	m.Run(recovery.WithTrigger(context.Background(), "the scrubber's deep check"))
	m.Run(context.Background())
	index.mu.Lock()
	index.broken = false // healed by something else
	index.mu.Unlock()
	m.Run(context.Background())
	m.Run(context.Background())
	var got []string
	for _, e := range events {
		got = append(got, string(e.Kind)+":"+e.Component+":"+e.FoundBy+":"+string(e.Step.Status))
	}
	want := "detected:index:the scrubber's deep check: attempt:index::failed attempt:index::failed cleared:index::ok"
	if strings.Join(got, " ") != want {
		t.Fatalf("events:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if events[0].Cause != "index is broken" || events[0].At.IsZero() || events[0].At.After(events[1].At) {
		t.Fatalf("detection: %+v", events[0])
	}
}

// Watch names what asked for a cascade: TriggerFor's words, else the
// periodic check.
func TestManager_WatchNamesTheTrigger(t *testing.T) {
	var visits []string
	p := &part{name: "cache", broken: true, fixable: true, visits: &visits}
	found := make(chan string, 1)
	m := recovery.New([]recovery.Component{p.component(false)}, recovery.Options{Interval: time.Hour, OnEvent: func(e recovery.Event) {
		if e.Kind == recovery.Detected {
			found <- e.FoundBy
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Watch(ctx); close(done) }()
	m.TriggerFor("an integrity check (fsck, deep)")
	if got := <-found; got != "an integrity check (fsck, deep)" {
		t.Fatalf("found by %q", got)
	}
	cancel()
	<-done
}

// Records written as the node writes them read back as one incident, in a
// real store; the listing filters and pages; the post-mortem tells it.
func TestIncidents_recordsReadBack(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Minute) // detected before they are recorded
	var ids []nexus.ID
	for i, comp := range []string{nexus.ComponentGit, nexus.ComponentIndex, nexus.ComponentIndex} {
		d := recovery.Detection{Component: comp, Cause: "broken " + comp, FoundBy: "the periodic check", Node: "n1", At: t0.Add(time.Duration(i) * time.Second)}
		root, err := st.Put(ctx, recovery.DetectionDraft(d))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, root.ID)
		if i == 2 {
			continue // still open
		}
		fail := recovery.Outcome{Status: recovery.IncidentFailed, At: d.At.Add(time.Millisecond), Attempts: 1,
			Steps: []recovery.IncidentStep{{At: d.At, Action: "recover", Status: "failed", Reason: "not yet", Took: time.Millisecond}}}
		ok := recovery.Outcome{Status: recovery.IncidentRecovered, At: d.At.Add(10 * time.Millisecond), Attempts: 2, Advice: "nothing to do",
			Steps: []recovery.IncidentStep{{At: d.At.Add(5 * time.Millisecond), Action: "recover", Status: "recovered", Reason: "fixed", Took: 5 * time.Millisecond}}}
		for _, o := range []recovery.Outcome{fail, ok} {
			if _, err := st.Put(ctx, recovery.OutcomeDraft(d, o, root.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := st.Put(ctx, nexus.Draft{Namespace: "incidents", Type: nexus.TypeMemory, Content: "not a record"}); err != nil {
		t.Fatal(err)
	}

	inc, err := recovery.GetIncident(ctx, st, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if inc.Status != recovery.IncidentRecovered || inc.Attempts != 2 || inc.Duration != 10*time.Millisecond || len(inc.Steps) != 3 ||
		len(inc.Updates) != 2 || inc.Advice != "nothing to do" || !inc.ResolvedAt.Equal(t0.Add(10*time.Millisecond)) {
		t.Fatalf("incident: %+v", inc)
	}
	pm := inc.PostMortem()
	if !strings.HasPrefix(pm.WhatFailed, "git_repository: the git repository") || len(pm.WhatWasDone) != 2 ||
		*pm.TimeToRecovery != 10*time.Millisecond || pm.OperatorAction != "nothing to do" ||
		pm.Summary != "git_repository: recovered by the node 10ms after detection (2 attempts). Found by the periodic check, at "+t0.Format(time.RFC3339Nano)+" on node n1." {
		t.Fatalf("post-mortem: %+v", pm)
	}
	open, err := recovery.GetIncident(ctx, st, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if open.Status != recovery.IncidentOpen || open.Resolved() || open.PostMortem().TimeToRecovery != nil || open.Duration != 0 {
		t.Fatalf("open incident: %+v", open)
	}
	if _, err := recovery.GetIncident(ctx, st, inc.Updates[0]); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("an outcome as an incident: %v", err)
	}

	list := func(q recovery.IncidentQuery) (string, string) {
		t.Helper()
		page, err := recovery.ListIncidents(ctx, st, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, i := range page.Incidents {
			got = append(got, i.ID.String())
		}
		return strings.Join(got, ","), page.NextCursor
	}
	if got, next := list(recovery.IncidentQuery{}); got != ids[2].String()+","+ids[1].String()+","+ids[0].String() || next != "" {
		t.Fatalf("every incident: %s (next %q)", got, next)
	}
	got, next := list(recovery.IncidentQuery{Component: nexus.ComponentIndex, Limit: 1})
	if got != ids[2].String() || next != ids[2].String() {
		t.Fatalf("first page of the index's: %s (next %q)", got, next)
	}
	if got, next = list(recovery.IncidentQuery{Component: nexus.ComponentIndex, Limit: 1, Cursor: next}); got != ids[1].String() || next == "" {
		t.Fatalf("second page: %s (next %q)", got, next)
	}
	if got, next = list(recovery.IncidentQuery{Component: nexus.ComponentIndex, Limit: 1, Cursor: next}); got != "" || next != "" {
		t.Fatalf("last page: %s (next %q)", got, next)
	}
	if got, _ := list(recovery.IncidentQuery{Since: t0.Add(time.Second)}); got != ids[2].String()+","+ids[1].String() {
		t.Fatalf("since the second detection: %s", got)
	}
	for _, q := range []recovery.IncidentQuery{{Component: "Bad!"}, {Limit: -1}, {Limit: nexus.MaxLimit + 1}, {Cursor: "nope"}} {
		if _, err := recovery.ListIncidents(ctx, st, q); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("query %+v: %v, want invalid", q, err)
		}
	}
	recent, err := recovery.Recent(ctx, st, 100)
	if err != nil || len(recent) != 3 || recent[2].Status != recovery.IncidentRecovered || recent[0].Status != recovery.IncidentOpen {
		t.Fatalf("recent: %v %+v", err, recent)
	}
}
