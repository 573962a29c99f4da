package chaos_test

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/chaos"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A dry run lists the node's scenarios with the reasons of the skipped
// ones and plans the same injections for the same seed, each scenario
// once per round; nothing is injected (the audit log stays empty of
// chaos records).
func TestRun_dryRunReproducible(t *testing.T) {
	cfg := nodetest.Config(t)
	f, err := config.Parse(filepath.Join(t.TempDir(), "nexus.yaml"), []byte("chaos:\n  enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = f
	n := nodetest.Open(t, cfg)
	plan := func(seed uint64) *chaos.Report {
		rep, err := chaos.Run(context.Background(), chaos.Options{Client: n.Client, Duration: time.Minute, Seed: seed,
			IntervalMin: time.Second, IntervalMax: 3 * time.Second, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	a, b, c := plan(1), plan(1), plan(2)
	steps := func(r *chaos.Report) []string {
		var out []string
		for _, inj := range r.Injections {
			out = append(out, inj.Planned.String()+" "+inj.Scenario+" "+inj.Params["mode"])
		}
		return out
	}
	if !reflect.DeepEqual(steps(a), steps(b)) || reflect.DeepEqual(steps(a), steps(c)) {
		t.Fatalf("seed 1: %v\nseed 1 again: %v\nseed 2: %v", steps(a), steps(b), steps(c))
	}
	// No memory budget, no process, no cluster here: three available.
	available := []string{}
	for _, s := range a.Scenarios {
		if s.Skipped == "" {
			available = append(available, s.Name)
		}
	}
	if !reflect.DeepEqual(available, []string{"corrupt_object", "index_damage", "disk_fill"}) {
		t.Fatalf("available: %v", available)
	}
	// kill_leader is the run's own: skipped outside a cluster.
	if last := a.Scenarios[len(a.Scenarios)-1]; last.Name != chaos.KillLeader || last.Skipped != "not a node of a cluster" || last.Component != "cluster" {
		t.Fatalf("kill_leader: %+v", last)
	}
	if len(a.Injections) < 20 || !a.Passed {
		t.Fatalf("plan of a minute at 1-3 s: %d injections, passed %v", len(a.Injections), a.Passed)
	}
	for i := 0; i+3 <= len(a.Injections); i += 3 {
		round := map[string]bool{}
		for _, inj := range a.Injections[i : i+3] {
			round[inj.Scenario] = true
		}
		if len(round) != 3 {
			t.Fatalf("round %d: %v, want each scenario once", i/3, a.Injections[i:i+3])
		}
	}
	var md bytes.Buffer
	a.Markdown(&md)
	if !strings.Contains(md.String(), "(dry run: nothing injected)") || !strings.Contains(md.String(), "| kill_process | agents | 0 |") {
		t.Fatalf("markdown:\n%s", md.String())
	}
	rc, err := n.AuditLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var log bytes.Buffer
	log.ReadFrom(rc)
	if strings.Contains(log.String(), `"action":"chaos"`) {
		t.Fatalf("a dry run injected: %s", log.String())
	}
}

// Unknown scenarios are refused before anything runs.
func TestRun_unknownScenario(t *testing.T) {
	cfg := nodetest.Config(t)
	f, err := config.Parse(filepath.Join(t.TempDir(), "nexus.yaml"), []byte("chaos:\n  enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = f
	n := nodetest.Open(t, cfg)
	_, err = chaos.Run(context.Background(), chaos.Options{Client: n.Client, Duration: time.Second, Scenarios: []string{"meteor"},
		IntervalMin: time.Second, IntervalMax: time.Second})
	if err == nil || !strings.Contains(err.Error(), `unknown scenario "meteor": the node has corrupt_object, index_damage`) {
		t.Fatalf("%v", err)
	}
}

// A node that refuses some of the data check's reads for now (over its
// request rate limit) has lost nothing: the check sends them again, and
// the run passes with every acknowledged write read back.
func TestRun_checkRetriesRateLimitedReads(t *testing.T) {
	cfg := nodetest.Config(t)
	f, err := config.Parse(filepath.Join(t.TempDir(), "nexus.yaml"), []byte("chaos:\n  enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = f
	cfg.Limits.RateLimit, cfg.Limits.RateBurst = 100, 10
	n := nodetest.Open(t, cfg)
	rep, err := chaos.Run(context.Background(), chaos.Options{Client: n.Client, Duration: 1500 * time.Millisecond, Seed: 1,
		Scenarios: []string{"index_damage"}, IntervalMin: 500 * time.Millisecond, IntervalMax: 500 * time.Millisecond,
		WriteEvery: 10 * time.Millisecond, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := n.HTTP.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var m bytes.Buffer
	m.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(m.String(), `nexus_limit_refused_total{limit="rate"} `) || strings.Contains(m.String(), `nexus_limit_refused_total{limit="rate"} 0`+"\n") {
		t.Fatalf("the node refused nothing over its rate limit: the test did not set up its fault")
	}
	if !rep.Passed || rep.Writes.Lost != 0 || rep.Writes.Acknowledged == 0 || len(rep.Injections) == 0 {
		t.Fatalf("passed %v, writes %+v, problems %v", rep.Passed, rep.Writes, rep.Problems)
	}
}
