package node

import (
	"cmp"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// fed is a predictor fed from series: each step sets the clock and the
// values the next sample reads.
type fed struct {
	p      *predictor
	at     time.Time
	free   int64
	used   int64
	status []agent.Status
}

func newFed(cfg PredictConfig) *fed {
	f := &fed{at: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Interval = cmp.Or(cfg.Interval, time.Second)
	f.p = newPredictor(cfg)
	f.p.now = func() time.Time { return f.at }
	f.p.free = func() (int64, error) { return f.free, nil }
	f.p.used = func() int64 { return f.used }
	return f
}

// step takes one sample at t seconds from the start.
func (f *fed) step(t int) {
	f.at = time.Date(2025, 1, 1, 0, 0, t, 0, time.UTC)
	f.p.sample()
}

func find(prs []Prediction, kind string) (Prediction, bool) {
	for _, p := range prs {
		if p.Kind == kind {
			return p, true
		}
	}
	return Prediction{}, false
}

// Free space shrinking by 10 MiB/s from 1000 MiB: after 10 s, 900 MiB
// are left, full in exactly 90 s; /health is degraded and says so.
func TestPredict_DiskLinear(t *testing.T) {
	f := newFed(PredictConfig{})
	for s := 0; s <= 10; s++ {
		f.free = (1000 - 10*int64(s)) << 20
		f.step(s)
	}
	pr, _ := find(f.p.predictions(), "disk")
	if !pr.Known || pr.In != 90*time.Second || pr.Rate != -10<<20 || !pr.Warn || pr.Samples != 11 {
		t.Fatalf("disk prediction %+v, want full in 90s at -10 MiB/s, warned", pr)
	}
	f.at = f.at.Add(time.Second) // the health check samples once more, one second later
	f.free = 890 << 20
	h := f.p.CheckHealth(context.Background())
	d := h.Details["disk"].(map[string]any)
	if h.Status != nexus.StatusDegraded || d["full_in_seconds"] != 89.0 || d["free_bytes"] != int64(890<<20) ||
		!strings.Contains(h.Error, "full in 1m29s at the current rate (890.0 MiB free, 10.0 MiB/s used)") {
		t.Fatalf("health %+v", h)
	}
}

// A flat series predicts nothing, and neither does one whose free space
// grows; a horizon shorter than the time to full does not warn.
func TestPredict_DiskFlatOrFar(t *testing.T) {
	for name, free := range map[string]func(s int) int64{
		"flat":    func(int) int64 { return 5 << 30 },
		"growing": func(s int) int64 { return 5<<30 + int64(s)<<20 },
	} {
		f := newFed(PredictConfig{})
		for s := 0; s <= 10; s++ {
			f.free = free(s)
			f.step(s)
		}
		pr, _ := find(f.p.predictions(), "disk")
		if pr.Known || pr.Warn {
			t.Errorf("%s: %+v, want no prediction", name, pr)
		}
		h := f.p.CheckHealth(context.Background())
		if _, ok := h.Details["disk"].(map[string]any)["full_in_seconds"]; ok || h.Status != nexus.StatusHealthy {
			t.Errorf("%s: health %+v", name, h)
		}
	}
	f := newFed(PredictConfig{DiskHorizon: time.Minute})
	for s := 0; s <= 10; s++ {
		f.free = (1000 - 10*int64(s)) << 20
		f.step(s)
	}
	if pr, _ := find(f.p.predictions(), "disk"); !pr.Known || pr.In != 90*time.Second || pr.Warn {
		t.Fatalf("horizon 1m, full in 90s: %+v, want known and no warning", pr)
	}
}

// Fewer than 3 samples predict nothing, nor samples closer together than
// an Interval; samples older than the window
// are dropped, so an old burst no longer counts.
func TestPredict_Window(t *testing.T) {
	f := newFed(PredictConfig{Window: time.Minute})
	f.free = 100 << 20
	f.step(0)
	f.free = 50 << 20
	f.step(1)
	if pr, _ := find(f.p.predictions(), "disk"); pr.Known {
		t.Fatalf("2 samples: %+v", pr)
	}
	f.at = f.at.Add(time.Second / 2) // 3 samples within 1.5 s, the interval being 2 s
	f.free = 25 << 20
	f.p.cfg.Interval, f.p.disk.minSpan = 2*time.Second, 2*time.Second
	f.p.sample()
	if pr, _ := find(f.p.predictions(), "disk"); pr.Known {
		t.Fatalf("3 samples within less than an interval: %+v", pr)
	}
	for s := 100; s <= 110; s++ {
		f.step(s)
	}
	if pr, _ := find(f.p.predictions(), "disk"); pr.Known || pr.Samples != 11 {
		t.Fatalf("flat for the last minute after a burst: %+v", pr)
	}
}

// Many samples are thinned, not cut: the series keeps its span, and a
// linear one its exact rate.
func TestPredict_Thinning(t *testing.T) {
	f := newFed(PredictConfig{Window: time.Hour})
	for s := 0; s <= 3000; s++ {
		f.free = int64(10000000 - 100*s)
		f.step(s)
	}
	tr := f.p.disk
	if len(tr.s) > maxSamples || tr.s[len(tr.s)-1].at.Sub(tr.s[0].at) != 3000*time.Second {
		t.Fatalf("%d samples from %s", len(tr.s), tr.s[0].at)
	}
	// The fit of 185 uneven samples is exact to the last bits only.
	if pr, _ := find(f.p.predictions(), "disk"); math.Abs(pr.Rate+100) > 1e-9 || (pr.In-97000*time.Second).Abs() > time.Microsecond {
		t.Fatalf("%+v, want -100 B/s, full in 97000 s", pr)
	}
}

// Memory growing 50 B/s toward a budget of 1000 B from 300 B in use:
// reached in exactly 14 s. Without a budget there is no memory trend.
func TestPredict_Memory(t *testing.T) {
	f := newFed(PredictConfig{})
	f.p.budget = 1000
	for s := 0; s <= 4; s++ {
		f.free, f.used = 1<<30, 100+50*int64(s)
		f.step(s)
	}
	pr, ok := find(f.p.predictions(), "memory")
	if !ok || !pr.Known || pr.In != 14*time.Second || pr.Rate != 50 || !pr.Warn {
		t.Fatalf("memory %+v", pr)
	}
	f.at = f.at.Add(time.Second)
	f.used = 350
	h := f.p.CheckHealth(context.Background())
	if h.Status != nexus.StatusDegraded || h.Details["memory"].(map[string]any)["budget_in_seconds"] != 13.0 ||
		!strings.Contains(h.Error, "the memory budget (1000 B) is reached in 13s") {
		t.Fatalf("health %+v", h)
	}

	none := newFed(PredictConfig{})
	for s := 0; s <= 4; s++ {
		none.free, none.used = 1<<30, 100+50*int64(s)
		none.step(s)
	}
	if _, ok := find(none.p.predictions(), "memory"); ok {
		t.Fatal("a memory prediction without a budget")
	}
	if h := none.p.CheckHealth(context.Background()); h.Details["memory"] != nil || h.Status != nexus.StatusHealthy {
		t.Fatalf("health without a budget %+v", h)
	}
}

// An agent whose failures go 0, 0, 0, 2, 4, 6 (one per second, 3 in a
// row so far, its breaker opening at 5): 0/min before, 120/min now, the
// breaker opens in exactly 1 s. Flat failures, failures that slow down,
// and a breaker already open predict nothing.
func TestPredict_AgentErrors(t *testing.T) {
	run := func(failures []uint64, last agent.Status) (*fed, Prediction) {
		f := newFed(PredictConfig{})
		f.free = 1 << 30
		f.p.agents = func() []agent.Status { return f.status }
		f.p.breakerAt = func(id string) int {
			if id != "a" {
				t.Fatalf("breaker of %q", id)
			}
			return 5
		}
		for s, n := range failures {
			st := last
			st.Agent, st.Failures = "a", n
			f.status = []agent.Status{st}
			f.step(s)
		}
		pr, _ := find(f.p.predictions(), "agent")
		return f, pr
	}
	closed := agent.Status{Breaker: "closed", ConsecutiveFailures: 3}
	f, pr := run([]uint64{0, 0, 0, 2, 4, 6}, closed)
	if pr.Agent != "a" || pr.Before != 0 || pr.Rate != 2 || !pr.Known || pr.In != time.Second || !pr.Warn {
		t.Fatalf("rising errors: %+v", pr)
	}
	h := f.p.CheckHealth(context.Background())
	a := h.Details["agents"].(map[string]any)["a"].(map[string]any)
	if h.Status != nexus.StatusDegraded || a["errors_per_minute"] != 120.0 || a["breaker_open_in_seconds"] != 1.0 ||
		!strings.Contains(h.Error, "agent a: errors rising (120.0/min, from 0.0/min): its breaker opens in 1s at this rate") {
		t.Fatalf("health %+v", h)
	}
	for name, c := range map[string]struct {
		failures []uint64
		st       agent.Status
	}{
		"flat":         {[]uint64{4, 4, 4, 4, 4, 4}, closed},
		"slowing":      {[]uint64{0, 3, 6, 7, 8, 8}, closed},
		"open":         {[]uint64{0, 0, 0, 2, 4, 6}, agent.Status{Breaker: "open", ConsecutiveFailures: 5}},
		"not in a row": {[]uint64{0, 0, 0, 2, 4, 6}, agent.Status{Breaker: "closed"}},
	} {
		f, pr := run(c.failures, c.st)
		if pr.Known || pr.Warn {
			t.Errorf("%s: %+v", name, pr)
		}
		if h := f.p.CheckHealth(context.Background()); h.Status != nexus.StatusHealthy {
			t.Errorf("%s: health %+v", name, h)
		}
	}
}

// /metrics carries the predictions.
func TestPredict_Metrics(t *testing.T) {
	f := newFed(PredictConfig{})
	f.p.budget = 1000
	for s := 0; s <= 10; s++ {
		f.free, f.used = (1000-10*int64(s))<<20, 100
		f.step(s)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newPredictCollector(f.p))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetValue() != "" {
					name += "{" + l.GetValue() + "}"
				}
			}
			got[name] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"nexus_predict_disk_full_seconds": 90, "nexus_predict_disk_free_bytes_per_second": -10 << 20,
		"nexus_predict_warning{disk}": 1, "nexus_predict_warning{memory}": 0,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, ok := got["nexus_predict_memory_budget_seconds"]; ok {
		t.Errorf("memory budget seconds present while memory is flat: %v", got)
	}
}
