package node_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/recovery"
)

// incidentsOf lists the incidents of a component through the node's API.
func incidentsOf(t *testing.T, n *nodetest.Node, component string) []*recovery.Incident {
	t.Helper()
	page, err := n.Client.Incidents(context.Background(), recovery.IncidentQuery{Component: component, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return page.Incidents
}

// waitIncident waits until the node has recorded an incident of
// component with status, and returns it.
func waitIncident(t *testing.T, n *nodetest.Node, component, status string) *recovery.Incident {
	t.Helper()
	var got *recovery.Incident
	nodetest.Wait(t, time.Minute, component+" incident "+status, func() bool {
		for _, i := range incidentsOf(t, n, component) {
			if i.Status == status {
				got = i
				return true
			}
		}
		return false
	})
	return got
}

// metricValue is the value of the series named exactly line in the
// metrics text, or -1.
func metricValue(text, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// isAncestor reports whether commit a is b or one of its ancestors in
// the repository of n (stock git).
func isAncestor(t *testing.T, n *nodetest.Node, a, b string) bool {
	t.Helper()
	err := exec.Command("git", "--git-dir", filepath.Join(n.Config.Dir, "repo.git"), "merge-base", "--is-ancestor", a, b).Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return err == nil
}

// destroyIndexFiles removes the saved index files of a node's data
// directory (there must be four: docs, fresh, keyword, vectors).
func destroyIndexFiles(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "index", "*", "*.bin"))
	if len(files) != 4 { // docs, fresh, keyword, vectors
		t.Fatalf("saved index files: %v", files)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

// A failure the node detects and repairs by itself becomes an incident in
// its memory: an incident context in the incidents namespace when it is
// detected, a result under it when it is recovered, with the steps. The
// API lists it and tells its post-mortem, /metrics counts it and its time
// to recovery, search finds it, and it is still there after a restart.
func TestNode_RecordsIncidents(t *testing.T) {
	cfg := nodetest.Config(t)
	n := nodetest.Open(t, cfg)
	putMany(t, n, 20, "indexed")
	n.Restart(func(c *node.Config) { c.RecoverInterval = 20 * time.Millisecond }) // saves the index
	if got := incidentsOf(t, n, ""); len(got) != 0 {
		t.Fatalf("incidents of a healthy node: %+v", got)
	}
	before := time.Now().UTC()
	destroyIndexFiles(t, cfg.Dir)
	inc := waitIncident(t, n, nexus.ComponentIndex, recovery.IncidentRecovered)

	host, _ := os.Hostname()
	if inc.Kind != recovery.KindFailure || !strings.HasPrefix(inc.Cause, "saved index:") || inc.Node != host ||
		!strings.HasPrefix(inc.FoundBy, "the periodic check (every 20ms)") || inc.DetectedAt.Before(before) ||
		inc.Attempts != 1 || inc.Stopped || len(inc.Updates) != 1 || inc.Duration <= 0 ||
		!inc.ResolvedAt.Equal(inc.DetectedAt.Add(inc.Duration)) {
		t.Fatalf("incident: %+v", inc)
	}
	if len(inc.Steps) != 2 || inc.Steps[0].Action != "detect" || inc.Steps[0].Reason != inc.Cause ||
		inc.Steps[1].Action != "recover" || inc.Steps[1].Status != "recovered" ||
		!strings.Contains(inc.Steps[1].Reason, "saved index written again from memory and verified") {
		t.Fatalf("steps: %+v", inc.Steps)
	}
	if all := incidentsOf(t, n, ""); len(all) != 1 || all[0].ID != inc.ID {
		t.Fatalf("every incident: %+v, want only %s", all, inc.ID)
	}
	if other := incidentsOf(t, n, nexus.ComponentGit); len(other) != 0 {
		t.Fatalf("git_repository incidents: %+v", other)
	}

	// In the memory: a thread of two records of the node.
	ctx := context.Background()
	root, err := n.Client.Get(ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	kids, err := n.Client.Children(ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if root.Namespace != "incidents" || root.Type != nexus.TypeIncident || root.AgentID != recovery.IncidentAgent ||
		len(kids) != 1 || kids[0].ID != inc.Updates[0] || kids[0].Type != nexus.TypeResult || kids[0].Namespace != "incidents" {
		t.Fatalf("records: %+v, children %+v", root, kids)
	}
	if !strings.Contains(root.Content, "semantic_index failed: saved index:") ||
		!strings.Contains(kids[0].Content, "semantic_index recovered") {
		t.Fatalf("contents: %q, %q", root.Content, kids[0].Content)
	}

	// The post-mortem names the component, how it was found, what was done.
	a, err := n.Client.Incident(ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	pm := a.PostMortem
	if !reflect.DeepEqual(a.Incident, inc) {
		t.Fatalf("GET /v1/incidents/{id}: %+v, the listing said %+v", a.Incident, inc)
	}
	if !strings.HasPrefix(pm.WhatFailed, "semantic_index: the search index") || !strings.Contains(pm.WhatFailed, "saved index:") ||
		!strings.HasPrefix(pm.HowFound, "the periodic check") || len(pm.WhatWasDone) != 1 ||
		!strings.Contains(pm.WhatWasDone[0], "recover: recovered") || !strings.Contains(pm.WhatWasDone[0], "saved index written again") ||
		pm.TimeToRecovery == nil || *pm.TimeToRecovery != inc.Duration ||
		!strings.HasPrefix(pm.Outcome, "recovered by the node") || !strings.Contains(pm.OperatorAction, filepath.Join(cfg.Dir, "index")) {
		t.Fatalf("post-mortem: %+v", pm)
	}
	if _, err := n.Client.Incident(ctx, kids[0].ID); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("an outcome record read as an incident: %v", err)
	}

	// /metrics: the attempt, the incident and its time to recovery.
	m := metricsText(t, n)
	secs := inc.Duration.Seconds()
	for series, want := range map[string]float64{
		`nexus_recovery_total{component="semantic_index",result="success"}`:          1,
		`nexus_recovery_total{component="semantic_index",result="failure"}`:          -1, // absent: none failed
		`nexus_recovery_duration_seconds_count{component="semantic_index"}`:          1,
		`nexus_component_failures_total{component="semantic_index"}`:                 1,
		`nexus_incidents{component="semantic_index",status="recovered"}`:             1,
		`nexus_incidents{component="semantic_index",status="open"}`:                  0,
		`nexus_incidents{component="semantic_index",status="failed"}`:                0,
		`nexus_incidents{component="semantic_index",status="cleared"}`:               0,
		`nexus_incidents{component="git_repository",status="recovered"}`:             -1, // no incident of it
		`nexus_time_to_recovery_seconds_count{component="semantic_index"}`:           1,
		`nexus_time_to_recovery_seconds_sum{component="semantic_index"}`:             secs,
		`nexus_time_to_recovery_seconds{component="semantic_index",quantile="0.5"}`:  secs,
		`nexus_time_to_recovery_seconds{component="semantic_index",quantile="0.99"}`: secs,
		`nexus_time_to_recovery_mean_seconds{component="semantic_index"}`:            secs,
		`nexus_component_last_failure_timestamp_seconds{component="semantic_index"}`: float64(inc.DetectedAt.UnixNano()) / 1e9,
	} {
		if got := metricValue(m, series); !near(got, want) {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if metricValue(m, "nexus_uptime_seconds") <= 0 {
		t.Errorf("no uptime in the metrics")
	}

	// Searchable: the memory finds it by what happened.
	res, err := n.Client.Search(ctx, nexus.SearchRequest{Query: "saved index semantic_index", Namespace: "incidents", Consistent: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range res.Hits {
		found = found || h.Context.ID == inc.ID
	}
	if !found {
		t.Fatalf("search of the incidents: %+v, want %s", res.Hits, inc.ID)
	}

	// A restart keeps it as it was.
	n.Restart(nil)
	if again := incidentsOf(t, n, ""); len(again) != 1 || !reflect.DeepEqual(again[0], inc) {
		t.Fatalf("after a restart: %+v, want %+v", again, inc)
	}
}

// near compares metric values, floats computed alike on both sides; a
// negative want is a series that must be absent.
func near(got, want float64) bool {
	if want < 0 {
		return got == -1
	}
	d := got - want
	return d < 1e-6 && d > -1e-6
}

// A failure the node cannot repair stops it; the incident says so (failed,
// the node stopped, what the operator should run), and is still there
// after the operator's repair and a restart: the node wrote it before it
// stopped, or kept it for the next start. The restarted node goes on with
// it: its first cascade finds the repository well and closes it.
func TestNode_IncidentOfAFatalStop(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.NoSearch = true
	cfg.RecoverInterval = time.Hour // only the deep check triggers the cascade
	n := nodetest.Open(t, cfg)
	n.ExpectFatal = true
	written := putMany(t, n, 20, "doomed")
	// A bundle the node does not know of (not in its backups): what the
	// operator repairs from afterwards.
	offsite := t.TempDir()
	info, err := n.Store().(*gitstore.Store).Backup(context.Background(), offsite)
	if err != nil {
		t.Fatal(err)
	}
	flipMiddle(t, cfg.Dir)
	if _, err := n.Fsck(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.Done():
	case <-time.After(time.Minute):
		t.Fatal("the node kept running on unrepairable damage")
	}
	n.Close()
	steps, err := node.RecoverOffline(context.Background(), node.OfflineConfig{Dir: cfg.Dir, Sources: []string{info.Path}})
	if err != nil || steps[0].Status != recovery.Recovered {
		t.Fatalf("the operator's recovery: %v %+v", err, steps)
	}
	n.ExpectFatal = false
	n.Restart(nil)
	checkAll(t, n, written)
	got := incidentsOf(t, n, nexus.ComponentGit)
	if len(got) != 1 {
		for _, i := range got {
			t.Logf("%+v", *i)
		}
		t.Fatalf("git_repository incidents: %d", len(got))
	}
	inc := got[0]
	if inc.Status != recovery.IncidentFailed || !inc.Stopped || inc.Attempts != 1 || inc.Resolved() ||
		!strings.HasPrefix(inc.FoundBy, "an integrity check") || len(inc.Steps) != 2 ||
		!strings.Contains(inc.Steps[1].Reason, "no backup or mirror is configured") ||
		!strings.Contains(inc.Advice, "nexus recover --data "+cfg.Dir) {
		t.Fatalf("incident of the stop: %+v", inc)
	}
	a, err := n.Client.Incident(context.Background(), inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.PostMortem.TimeToRecovery != nil || !strings.Contains(a.PostMortem.Outcome, "the node stopped") ||
		a.PostMortem.OperatorAction != inc.Advice {
		t.Fatalf("post-mortem: %+v", a.PostMortem)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "incidents.pending")); !os.IsNotExist(err) {
		t.Fatalf("the kept records are written, their file must be gone: %v", err)
	}

	// The node goes on with the incident its last run left unresolved:
	// the next cascade finds the repository well and closes it.
	if _, err := n.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	closed := waitIncident(t, n, nexus.ComponentGit, recovery.IncidentCleared)
	if closed.ID != inc.ID || !closed.Stopped || closed.Attempts != 1 || len(closed.Steps) != 3 || len(closed.Updates) != 2 ||
		closed.Steps[2].Action != "check" || !strings.HasPrefix(closed.Steps[2].Reason, "found well again after the node started again") ||
		!closed.ResolvedAt.Equal(closed.DetectedAt.Add(closed.Duration)) {
		t.Fatalf("the incident closed after the restart: %+v", closed)
	}
	a, err = n.Client.Incident(context.Background(), inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.PostMortem.TimeToRecovery == nil || *a.PostMortem.TimeToRecovery != closed.Duration || !strings.HasSuffix(a.PostMortem.Outcome, "the node had stopped on it") {
		t.Fatalf("post-mortem once closed: %+v", a.PostMortem)
	}
	if got := incidentsOf(t, n, ""); len(got) != 1 {
		t.Fatalf("incidents: %d, want the one", len(got))
	}
}

// A restore rolls back what was written after its point, incident records
// included: they are written again after it (the same records, naming the
// ids they had), and the restore is itself an incident.
func TestNode_IncidentsSurviveRestore(t *testing.T) {
	cfg := nodetest.Config(t)
	n := nodetest.Open(t, cfg)
	putMany(t, n, 10, "kept")
	n.Restart(func(c *node.Config) { c.RecoverInterval = 20 * time.Millisecond })
	point := time.Now().UTC()
	putMany(t, n, 5, "rolled back")
	destroyIndexFiles(t, cfg.Dir)
	inc := waitIncident(t, n, nexus.ComponentIndex, recovery.IncidentRecovered)

	plan, err := n.Restore(context.Background(), point, false)
	if err != nil {
		t.Fatal(err)
	}
	if plan.RolledBack != 7 { // 5 contexts, the incident and its outcome
		t.Fatalf("restore plan: %+v", plan)
	}
	var restore *recovery.Incident
	nodetest.Wait(t, time.Minute, "the restore's incident", func() bool {
		for _, i := range incidentsOf(t, n, nexus.ComponentGit) {
			if i.Kind == recovery.KindRestore && i.Status == recovery.IncidentRestored {
				restore = i
				return true
			}
		}
		return false
	})
	again := incidentsOf(t, n, nexus.ComponentIndex)
	if len(again) != 1 {
		t.Fatalf("index incidents after the restore: %+v", again)
	}
	got := again[0]
	if got.ID == inc.ID || got.RecordedFrom != inc.ID || got.Status != inc.Status || got.Cause != inc.Cause ||
		!got.DetectedAt.Equal(inc.DetectedAt) || got.Duration != inc.Duration || !reflect.DeepEqual(got.Steps, inc.Steps) || len(got.Updates) != 1 {
		t.Fatalf("written again: %+v\nwas: %+v", got, inc)
	}
	if !strings.Contains(restore.Cause, "the memory restored to "+point.Format(time.RFC3339Nano)) ||
		!strings.Contains(restore.Cause, "7 contexts rolled back") || !strings.Contains(restore.Cause, plan.RecoveryRef) ||
		!strings.HasPrefix(restore.FoundBy, "a restore") || len(restore.Steps) != 3 || restore.Steps[2].Action != "re-record" ||
		!strings.HasPrefix(restore.Steps[2].Reason, "2 incident records") {
		t.Fatalf("the restore's incident: %+v", restore)
	}
	if _, err := n.Client.Get(context.Background(), inc.ID); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Fatalf("the rolled-back record: %v", err)
	}
}
