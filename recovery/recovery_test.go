package recovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/recovery"
)

// part is a component under test: broken until its recovery runs (if the
// recovery works), recording the order of visits.
type part struct {
	name    string
	broken  bool
	fixable bool
	visits  *[]string
	mu      sync.Mutex
}

func (p *part) CheckHealth(context.Context) nexus.ComponentHealth {
	p.mu.Lock()
	defer p.mu.Unlock()
	*p.visits = append(*p.visits, p.name)
	if p.broken {
		return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: p.name + " is broken"}
	}
	return nexus.ComponentHealth{Status: nexus.StatusHealthy}
}

func (p *part) recover(context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.fixable {
		return "", errors.New("no way to fix " + p.name)
	}
	p.broken = false
	return "fixed " + p.name, nil
}

func (p *part) component(critical bool) recovery.Component {
	return recovery.Component{Name: p.name, Critical: critical, Health: p, Recover: p.recover}
}

func statuses(steps []recovery.Step) string {
	var b []string
	for _, s := range steps {
		b = append(b, s.Component+"="+string(s.Status))
	}
	return strings.Join(b, " ")
}

func TestManager_RecoversInOrder(t *testing.T) {
	var visits []string
	git := &part{name: "git", visits: &visits}
	cache := &part{name: "cache", broken: true, fixable: true, visits: &visits}
	index := &part{name: "index", broken: true, fixable: true, visits: &visits}
	var failures []string
	var recoveries []string
	m := recovery.New([]recovery.Component{git.component(true), cache.component(false), index.component(false), {Name: "agents"}}, recovery.Options{
		OnFailure:  func(c string) { failures = append(failures, c) },
		OnRecovery: func(c string, ok bool, _ time.Duration) { recoveries = append(recoveries, c) },
		OnFatal:    func(recovery.Step) { t.Error("no component is fatal here") },
	})
	steps := m.Run(context.Background())
	if got := statuses(steps); got != "git=ok cache=recovered index=recovered agents=disabled" {
		t.Fatalf("steps: %s", got)
	}
	// Each failing component is checked, recovered, then checked again.
	if got := strings.Join(visits, ","); got != "git,cache,cache,index,index" {
		t.Fatalf("visits: %s", got)
	}
	if !strings.Contains(steps[1].Reason, "cache is broken") || !strings.Contains(steps[1].Reason, "fixed cache") {
		t.Fatalf("reason: %q", steps[1].Reason)
	}
	if strings.Join(failures, ",") != "cache,index" || strings.Join(recoveries, ",") != "cache,index" {
		t.Fatalf("failures %v recoveries %v", failures, recoveries)
	}
	// A second run finds everything healthy and counts nothing new.
	if got := statuses(m.Run(context.Background())); got != "git=ok cache=ok index=ok agents=disabled" {
		t.Fatalf("second run: %s", got)
	}
	h := m.Checkers()["cache"].CheckHealth(context.Background())
	rec := h.Details["recoveries"].(map[string]any)
	if h.Details["failures"] != int64(1) || rec["recovered"] != int64(1) || rec["failed"] != int64(0) {
		t.Fatalf("cache details: %+v", h.Details)
	}
	if _, ok := m.Checkers()["agents"]; ok {
		t.Fatal("a component without health has a checker")
	}
}

func TestManager_CriticalFailureStops(t *testing.T) {
	var visits []string
	git := &part{name: "git", broken: true, visits: &visits}
	store := &part{name: "store", visits: &visits}
	index := &part{name: "index", broken: true, fixable: true, visits: &visits}
	var fatal []recovery.Step
	m := recovery.New([]recovery.Component{git.component(true), store.component(true), index.component(false)}, recovery.Options{
		OnFatal: func(s recovery.Step) { fatal = append(fatal, s) },
	})
	steps := m.Run(context.Background())
	if got := statuses(steps); got != "git=failed store=skipped index=skipped" {
		t.Fatalf("steps: %s", got)
	}
	if !strings.Contains(steps[0].Reason, "no way to fix git") || steps[1].Reason != "git failed" {
		t.Fatalf("reasons: %+v", steps)
	}
	if len(fatal) != 1 || fatal[0].Component != "git" || !m.Fatal() {
		t.Fatalf("fatal: %+v", fatal)
	}
	m.Run(context.Background())
	if len(fatal) != 1 {
		t.Fatalf("OnFatal called %d times", len(fatal))
	}
	// The failure is one incident, however many runs see it.
	h := m.Checkers()["git"].CheckHealth(context.Background())
	if h.Details["failures"] != int64(1) || h.Details["recoveries"].(map[string]any)["failed"] != int64(2) {
		t.Fatalf("git details: %+v", h.Details)
	}
	if lf, ok := h.Details["last_failure"].(map[string]any); !ok || lf["error"] != "git is broken" {
		t.Fatalf("last failure: %+v", h.Details["last_failure"])
	}
}

// A recovery that reports success while the component still fails is a
// failure; a component without a recovery fails with the reason.
func TestManager_RecoveryMustHold(t *testing.T) {
	var visits []string
	stubborn := &part{name: "index", broken: true, visits: &visits}
	noFix := &part{name: "cache", broken: true, visits: &visits}
	m := recovery.New([]recovery.Component{
		{Name: "index", Health: stubborn, Recover: func(context.Context) (string, error) { return "tried", nil }},
		{Name: "cache", Health: noFix},
	}, recovery.Options{})
	steps := m.Run(context.Background())
	if steps[0].Status != recovery.Failed || !strings.Contains(steps[0].Reason, "still failing after recovery (tried)") {
		t.Fatalf("index: %+v", steps[0])
	}
	if steps[1].Status != recovery.Failed || !strings.Contains(steps[1].Reason, "cannot be recovered while the node runs") {
		t.Fatalf("cache: %+v", steps[1])
	}
}

// Failing decides instead of the health status when it is set.
func TestManager_Failing(t *testing.T) {
	var visits []string
	p := &part{name: "store", visits: &visits}
	dirty := true
	m := recovery.New([]recovery.Component{{
		Name: "store", Health: p,
		Failing: func(context.Context, nexus.ComponentHealth) string {
			if dirty {
				return "catalog behind"
			}
			return ""
		},
		Recover: func(context.Context) (string, error) { dirty = false; return "rebuilt", nil },
	}}, recovery.Options{})
	if s := m.Run(context.Background())[0]; s.Status != recovery.Recovered || s.Reason != "catalog behind; rebuilt" {
		t.Fatalf("step: %+v", s)
	}
}

// Watch runs on Trigger and stops after a fatal failure.
func TestManager_WatchTrigger(t *testing.T) {
	var visits []string
	p := &part{name: "git", visits: &visits}
	fatal := make(chan recovery.Step, 1)
	m := recovery.New([]recovery.Component{p.component(true)}, recovery.Options{
		Interval: time.Hour, OnFatal: func(s recovery.Step) { fatal <- s },
	})
	done := make(chan struct{})
	go func() { m.Watch(context.Background()); close(done) }()
	p.mu.Lock()
	p.broken = true
	p.mu.Unlock()
	m.Trigger()
	select {
	case s := <-fatal:
		if s.Component != "git" || s.Status != recovery.Failed {
			t.Fatalf("fatal step: %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Trigger did not run a cascade")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch went on after a fatal failure")
	}
}

// A step's status is written in JSON as its name.
func TestStep_JSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for st, name := range map[recovery.Status]string{recovery.OK: "ok", recovery.Recovered: "recovered",
		recovery.Failed: "failed", recovery.Skipped: "skipped", recovery.Disabled: "disabled"} {
		b, err := json.Marshal(recovery.Step{Component: "git", Status: st, Took: time.Second, At: at})
		want := `{"component":"git","status":"` + name + `","took_ns":1000000000,"at":"2026-01-02T03:04:05Z"}`
		if err != nil || string(b) != want {
			t.Fatalf("%s: %s %v, want %s", name, b, err, want)
		}
	}
}
