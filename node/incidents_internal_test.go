package node

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/recovery"
)

// Records the store cannot take (here it is closed) stay queued; at close
// they go to the pending file, sealed on an encrypted store, and the next
// run writes them first — the thread intact — and removes the file.
func TestIncidentLog_keepsWhatItCannotWrite(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "encrypted"}[encrypted], func(t *testing.T) {
			dir := t.TempDir()
			var opts gitstore.Options
			if encrypted {
				key := filepath.Join(t.TempDir(), "master.key")
				if err := os.WriteFile(key, []byte(gitstore.NewMasterKey()), 0o600); err != nil {
					t.Fatal(err)
				}
				opts.Encrypt = &gitstore.Encryption{KeyFile: key}
			}
			st, err := gitstore.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			sealer := st.FileSealer()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			log := slog.New(slog.DiscardHandler)
			l := makeIncidentLog("n1", dir, log, sealer)
			at := time.Now().UTC()
			l.event(recovery.Event{Kind: recovery.Detected, Component: nexus.ComponentIndex, Cause: "saved index: docs.bin is missing", FoundBy: "the periodic check", At: at})
			step := recovery.Step{Component: nexus.ComponentIndex, Status: recovery.Recovered, Reason: "saved index written again", Took: time.Millisecond, At: at}
			l.event(recovery.Event{Kind: recovery.Attempt, Component: nexus.ComponentIndex, Step: step, At: at.Add(time.Millisecond)})
			if err := l.flush(context.Background(), st); err == nil || !retryable(err) {
				t.Fatalf("writing to a closed store: %v, want an error to retry", err)
			}
			l.shutdown(st)
			raw, err := os.ReadFile(filepath.Join(dir, pendingFile))
			if err != nil {
				t.Fatalf("the records are not kept: %v", err)
			}
			if sealed := !bytes.Contains(raw, []byte("docs.bin is missing")); sealed != encrypted {
				t.Fatalf("pending file sealed %v on a store encrypted %v: %q", sealed, encrypted, raw)
			}

			st, err = gitstore.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			next := makeIncidentLog("n1", dir, log, st.FileSealer())
			if next.queued() != 2 || next.loaded != 2 {
				t.Fatalf("queued at start: %d (loaded %d), want the 2 kept", next.queued(), next.loaded)
			}
			if err := next.flush(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, pendingFile)); !os.IsNotExist(err) {
				t.Fatalf("the pending file outlives its records: %v", err)
			}
			page, err := recovery.ListIncidents(context.Background(), st, recovery.IncidentQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Incidents) != 1 {
				t.Fatalf("incidents: %+v", page.Incidents)
			}
			inc := page.Incidents[0]
			if inc.Status != recovery.IncidentRecovered || inc.Node != "n1" || !inc.DetectedAt.Equal(at) || inc.Duration != time.Millisecond ||
				len(inc.Steps) != 2 || inc.Steps[1].Reason != "saved index written again" || len(inc.Updates) != 1 {
				t.Fatalf("incident written from the kept records: %+v", inc)
			}
		})
	}
}

// An episode that keeps failing records its first failure, folds the
// repeats (counted, and kept as steps up to a bound) into its next
// outcome, and closes when the component is found well again.
func TestIncidentLog_foldsRepeatedFailures(t *testing.T) {
	dir := t.TempDir()
	st, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := makeIncidentLog("n1", dir, slog.New(slog.DiscardHandler), nil)
	at := time.Now().UTC()
	l.event(recovery.Event{Kind: recovery.Detected, Component: nexus.ComponentAgents, Cause: "agent a is unhealthy", FoundBy: "the periodic check", At: at})
	fail := recovery.Step{Component: nexus.ComponentAgents, Status: recovery.Failed, Reason: "agent a: provider down", At: at}
	for i := range 30 {
		fail.At = at.Add(time.Duration(i) * time.Second)
		l.event(recovery.Event{Kind: recovery.Attempt, Component: nexus.ComponentAgents, Step: fail, At: fail.At})
	}
	if got := l.queued(); got != 2 {
		t.Fatalf("records after 30 identical failures: %d, want the detection and the first failure", got)
	}
	ok := recovery.Step{Component: nexus.ComponentAgents, Status: recovery.OK, Reason: "healthy", At: at.Add(time.Minute)}
	l.event(recovery.Event{Kind: recovery.Cleared, Component: nexus.ComponentAgents, Step: ok, At: ok.At})
	if len(l.open) != 0 {
		t.Fatalf("episodes still open: %v", l.open)
	}
	if err := l.flush(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	page, err := recovery.ListIncidents(context.Background(), st, recovery.IncidentQuery{Component: nexus.ComponentAgents})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Incidents) != 1 {
		t.Fatalf("incidents: %+v", page.Incidents)
	}
	inc := page.Incidents[0]
	// The detection, the first failure, then the 29 repeats cut to the
	// last 20 steps with the check that found it well.
	if inc.Status != recovery.IncidentCleared || inc.Attempts != 30 || len(inc.Updates) != 2 || len(inc.Steps) != 1+1+recovery.MaxIncidentSteps ||
		inc.Steps[len(inc.Steps)-1].Action != "check" || inc.Duration != time.Minute {
		t.Fatalf("incident: %+v", inc)
	}
	pm := inc.PostMortem()
	if pm.WhatWasDone[len(pm.WhatWasDone)-1] != "10 more attempts like these, not kept one by one" || pm.TimeToRecovery == nil || *pm.TimeToRecovery != time.Minute {
		t.Fatalf("post-mortem: %+v", pm)
	}
}

// The episodes a run left unresolved — their records kept in the pending
// file, or in the store — are carried by the next run: a check that
// finds the component well closes the incident (cleared), an attempt
// that recovers it closes it (recovered), attempts counted across runs.
func TestIncidentLog_carriesUnresolved(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	st, err := gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Minute)
	last := makeIncidentLog("n1", dir, log, nil)
	// The index failed once, written; the repository failed and stopped
	// the node, not written (the store is closed by then).
	last.event(recovery.Event{Kind: recovery.Detected, Component: nexus.ComponentIndex, Cause: "saved index: docs.bin is missing", At: at})
	last.event(recovery.Event{Kind: recovery.Attempt, Component: nexus.ComponentIndex, At: at,
		Step: recovery.Step{Status: recovery.Failed, Reason: "saved index: docs.bin is missing; recovery failed: disk full", At: at}})
	if err := last.flush(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	last.event(recovery.Event{Kind: recovery.Detected, Component: nexus.ComponentGit, Critical: true, Cause: "pack damaged", At: at})
	last.event(recovery.Event{Kind: recovery.Attempt, Component: nexus.ComponentGit, Critical: true, At: at,
		Step: recovery.Step{Status: recovery.Failed, Reason: "pack damaged; recovery failed: no backup", At: at}})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	last.shutdown(st)
	// Another node's unresolved incident is not this node's to carry.
	st, err = gitstore.Open(dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Put(context.Background(), recovery.DetectionDraft(recovery.Detection{Component: nexus.ComponentCache, Cause: "bad entries", Node: "n2", At: at})); err != nil {
		t.Fatal(err)
	}

	next := makeIncidentLog("n1", dir, log, nil)
	if got := next.carry(st); !slices.Equal(got, []string{nexus.ComponentGit, nexus.ComponentIndex}) {
		t.Fatalf("carried: %v", got)
	}
	now := time.Now().UTC()
	next.event(recovery.Event{Kind: recovery.Cleared, Component: nexus.ComponentGit, At: now, Step: recovery.Step{Status: recovery.OK, Reason: "healthy", At: now}})
	next.event(recovery.Event{Kind: recovery.Attempt, Component: nexus.ComponentIndex, At: now,
		Step: recovery.Step{Status: recovery.Recovered, Reason: "saved index: docs.bin is missing; written again", At: now}})
	if err := next.flush(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	for comp, want := range map[string]string{
		nexus.ComponentGit:   "cleared 1 stopped:true steps:detect,recover,check",
		nexus.ComponentIndex: "recovered 2 stopped:false steps:detect,recover,recover",
	} {
		page, err := recovery.ListIncidents(context.Background(), st, recovery.IncidentQuery{Component: comp})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Incidents) != 1 {
			t.Fatalf("%s incidents: %+v", comp, page.Incidents)
		}
		inc := page.Incidents[0]
		var actions []string
		for _, s := range inc.Steps {
			actions = append(actions, s.Action)
		}
		got := fmt.Sprintf("%s %d stopped:%v steps:%s", inc.Status, inc.Attempts, inc.Stopped, strings.Join(actions, ","))
		if got != want || inc.Duration != now.Sub(at) {
			t.Errorf("%s: %s after %s, want %s after %s", comp, got, inc.Duration, want, now.Sub(at))
		}
	}
}
