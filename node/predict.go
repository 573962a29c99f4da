package node

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// PredictConfig sets the node's predictive detection: trends fitted over
// samples taken every Interval and on every health check, within the
// last Window (once they span an Interval at least), that degrade the predictions component of /health when
// they foresee a failure sooner than its horizon. Zero fields take the
// defaults (DefaultPredict*).
type PredictConfig struct {
	// Interval is how often the node samples in the background.
	Interval time.Duration
	// Window is how far back the samples a trend is fitted over go.
	Window time.Duration
	// DiskHorizon: warn when the data directory's file system is
	// predicted full sooner than this; negative: never warn.
	DiskHorizon time.Duration
	// MemoryHorizon: warn when the memory budget is predicted reached
	// sooner than this (only with a budget: MemoryBudget or a cgroup);
	// negative: never warn.
	MemoryHorizon time.Duration
}

// Defaults of PredictConfig.
const (
	DefaultPredictInterval = 10 * time.Second
	DefaultPredictWindow   = 10 * time.Minute
	DefaultDiskHorizon     = time.Hour
	DefaultMemoryHorizon   = 10 * time.Minute
)

// withDefaults fills the zero fields.
func (c PredictConfig) withDefaults() PredictConfig {
	c.Interval = cmp.Or(c.Interval, DefaultPredictInterval)
	c.Window = cmp.Or(c.Window, DefaultPredictWindow)
	c.DiskHorizon = cmp.Or(c.DiskHorizon, DefaultDiskHorizon)
	c.MemoryHorizon = cmp.Or(c.MemoryHorizon, DefaultMemoryHorizon)
	return c
}

// maxSamples bounds a trend: once full, every other sample is dropped, so
// that frequent health checks thin the series rather than shorten it.
const maxSamples = 256

type sample struct {
	at time.Time
	v  float64
}

// trend is a series of samples of one quantity within a sliding window.
// It predicts nothing until its samples span minSpan: a few samples
// taken close together (frequent health checks) would turn any burst of
// writes into an alarm.
type trend struct {
	window, minSpan time.Duration
	s               []sample
}

// enough reports whether the series can be fitted: 3 samples at least,
// spanning minSpan.
func (t *trend) enough() bool {
	return len(t.s) >= 3 && t.s[len(t.s)-1].at.Sub(t.s[0].at) >= max(t.minSpan, 1)
}

// add appends a sample taken at at (not before the last one) and drops
// those older than the window.
func (t *trend) add(at time.Time, v float64) {
	if n := len(t.s); n > 0 && at.Before(t.s[n-1].at) {
		at = t.s[n-1].at
	}
	t.s = append(t.s, sample{at, v})
	cut := 0
	for cut < len(t.s)-1 && at.Sub(t.s[cut].at) > t.window {
		cut++
	}
	t.s = t.s[cut:]
	if len(t.s) > maxSamples {
		kept := t.s[:0]
		for i, x := range t.s {
			if i%2 == 0 || i == len(t.s)-1 {
				kept = append(kept, x)
			}
		}
		t.s = kept
	}
}

// rate is the least-squares slope of the series in units per second; ok
// is false until the series is long enough.
func (t *trend) rate() (perSecond float64, ok bool) {
	if !t.enough() {
		return 0, false
	}
	return slope(t.s)
}

func slope(s []sample) (float64, bool) {
	if len(s) < 3 {
		return 0, false
	}
	var mx, my float64
	for _, x := range s {
		mx += x.at.Sub(s[0].at).Seconds()
		my += x.v
	}
	n := float64(len(s))
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for _, x := range s {
		dx := x.at.Sub(s[0].at).Seconds() - mx
		sxy += dx * (x.v - my)
		sxx += dx * dx
	}
	if sxx == 0 {
		return 0, false
	}
	return sxy / sxx, true
}

// until is how long, at the fitted rate, until the quantity goes from its
// last value to target; ok is false when it does not move toward it.
func (t *trend) until(target float64) (d time.Duration, rate float64, ok bool) {
	rate, ok = t.rate()
	if !ok || len(t.s) == 0 {
		return 0, rate, false
	}
	gap := target - t.s[len(t.s)-1].v
	if rate == 0 || (gap > 0) != (rate > 0) {
		if gap == 0 {
			return 0, rate, true
		}
		return 0, rate, false
	}
	return time.Duration(gap / rate * float64(time.Second)), rate, true
}

// halves are the average rates, in units per second, of the older and
// the newer half of the series' span (the sample nearest the middle ends
// one and starts the other); ok is false until the series is long enough.
func (t *trend) halves() (older, newer float64, ok bool) {
	s := t.s
	if !t.enough() {
		return 0, 0, false
	}
	mid := s[0].at.Add(s[len(s)-1].at.Sub(s[0].at) / 2)
	i := 0
	for i+1 < len(s)-1 && !s[i+1].at.After(mid) {
		i++
	}
	avg := func(a, b sample) float64 {
		dt := b.at.Sub(a.at).Seconds()
		if dt <= 0 {
			return 0
		}
		return (b.v - a.v) / dt
	}
	return avg(s[0], s[i]), avg(s[i], s[len(s)-1]), i > 0
}

// predictor samples the node's free disk space, its memory and its
// agents' failures, and predicts what will fail and when.
type predictor struct {
	cfg    PredictConfig
	now    func() time.Time
	free   func() (int64, error) // bytes available on the data directory's file system
	budget int64                 // memory budget; 0: none
	used   func() int64          // memory in use
	agents func() []agent.Status // nil: no agents
	// breakerAt is how many failures in a row open an agent's breaker.
	breakerAt func(id string) int

	mu      sync.Mutex
	disk    trend
	mem     trend
	errs    map[string]*trend
	freeErr error
}

func newPredictor(cfg PredictConfig) *predictor {
	cfg = cfg.withDefaults()
	tr := trend{window: cfg.Window, minSpan: cfg.Interval}
	return &predictor{cfg: cfg, now: time.Now, disk: tr, mem: tr, errs: map[string]*trend{}}
}

// statfsFree is the free-space reader of a data directory.
func statfsFree(dir string) func() (int64, error) {
	return func() (int64, error) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, err
		}
		return int64(st.Bavail) * st.Bsize, nil
	}
}

// sample takes one sample of everything.
func (p *predictor) sample() {
	at := p.now()
	free, ferr := p.free()
	var used int64
	if p.budget > 0 {
		used = p.used()
	}
	var sts []agent.Status
	if p.agents != nil {
		sts = p.agents()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.freeErr = ferr
	if ferr == nil {
		p.disk.add(at, float64(free))
	}
	if p.budget > 0 {
		p.mem.add(at, float64(used))
	}
	for _, st := range sts {
		tr := p.errs[st.Agent]
		if tr == nil {
			tr = &trend{window: p.cfg.Window, minSpan: p.cfg.Interval}
			p.errs[st.Agent] = tr
		}
		tr.add(at, float64(st.Failures))
	}
}

// round is the background sampler's round.
func (p *predictor) round(context.Context) error {
	p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.freeErr
}

// Prediction is what one trend foresees.
type Prediction struct {
	// Kind is "disk", "memory" or "agent".
	Kind string
	// Agent names the agent of an "agent" prediction.
	Agent string
	// Value is the last sample: free bytes, bytes in use, failures.
	Value float64
	// Rate is the trend in units per second (free bytes: negative when
	// the disk fills); for an agent, its failures per second over the
	// newer half of the window, Before over the older half.
	Rate, Before float64
	// In is how long until the failure at this rate; Known is false when
	// the trend does not lead to it.
	In    time.Duration
	Known bool
	// Warn is true when the failure is foreseen within the horizon.
	Warn bool
	// Samples is how many samples the trend holds.
	Samples int
}

// predictions are the current predictions, disk first, then memory (with
// a budget), then each agent by id.
func (p *predictor) predictions() []Prediction {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Prediction
	if len(p.disk.s) > 0 {
		in, rate, ok := p.disk.until(0)
		out = append(out, Prediction{Kind: "disk", Value: p.disk.s[len(p.disk.s)-1].v, Rate: rate, In: in, Known: ok,
			Warn: ok && in < p.cfg.DiskHorizon, Samples: len(p.disk.s)})
	}
	if p.budget > 0 && len(p.mem.s) > 0 {
		in, rate, ok := p.mem.until(float64(p.budget))
		out = append(out, Prediction{Kind: "memory", Value: p.mem.s[len(p.mem.s)-1].v, Rate: rate, In: in, Known: ok,
			Warn: ok && in < p.cfg.MemoryHorizon, Samples: len(p.mem.s)})
	}
	if p.agents == nil {
		return out
	}
	for _, st := range p.agents() {
		tr := p.errs[st.Agent]
		if tr == nil || len(tr.s) == 0 {
			continue
		}
		pr := Prediction{Kind: "agent", Agent: st.Agent, Value: tr.s[len(tr.s)-1].v, Samples: len(tr.s)}
		before, now, ok := tr.halves()
		pr.Rate, pr.Before = now, before
		// The breaker counts failures in a row: with some already
		// counted and the rate rising, it opens once the rest come.
		if ok && st.Breaker == "closed" && now > before && st.ConsecutiveFailures > 0 {
			left := max(p.breakerAt(st.Agent)-st.ConsecutiveFailures, 0)
			pr.In, pr.Known, pr.Warn = time.Duration(float64(left)/now*float64(time.Second)), true, true
		}
		out = append(out, pr)
	}
	return out
}

// CheckHealth samples once more and reports the predictions: degraded,
// with what is foreseen, when one warns.
func (p *predictor) CheckHealth(context.Context) nexus.ComponentHealth {
	p.sample()
	h := nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{}}
	var warns []string
	agents := map[string]any{}
	for _, pr := range p.predictions() {
		d := map[string]any{"samples": pr.Samples, "warning": pr.Warn}
		switch pr.Kind {
		case "disk":
			d["free_bytes"], d["bytes_per_second"], d["horizon_seconds"] = int64(pr.Value), pr.Rate, p.cfg.DiskHorizon.Seconds()
			if pr.Known {
				d["full_in_seconds"] = pr.In.Seconds()
			}
			if pr.Warn {
				warns = append(warns, fmt.Sprintf("the data directory's file system is full in %s at the current rate (%s free, %s/s used)",
					pr.In.Round(time.Second), bytesText(pr.Value), bytesText(-pr.Rate)))
			}
			h.Details["disk"] = d
		case "memory":
			d["used_bytes"], d["budget_bytes"], d["bytes_per_second"] = int64(pr.Value), p.budget, pr.Rate
			d["horizon_seconds"] = p.cfg.MemoryHorizon.Seconds()
			if pr.Known {
				d["budget_in_seconds"] = pr.In.Seconds()
			}
			if pr.Warn {
				warns = append(warns, fmt.Sprintf("the memory budget (%s) is reached in %s at the current growth (%s in use, %s/s more)",
					bytesText(float64(p.budget)), pr.In.Round(time.Second), bytesText(pr.Value), bytesText(pr.Rate)))
			}
			h.Details["memory"] = d
		case "agent":
			d["failures"], d["errors_per_minute"], d["errors_per_minute_before"] = int64(pr.Value), pr.Rate*60, pr.Before*60
			if pr.Known {
				d["breaker_open_in_seconds"] = pr.In.Seconds()
			}
			if pr.Warn {
				warns = append(warns, fmt.Sprintf("agent %s: errors rising (%.1f/min, from %.1f/min): its breaker opens in %s at this rate",
					pr.Agent, pr.Rate*60, pr.Before*60, pr.In.Round(time.Second)))
			}
			agents[pr.Agent] = d
		}
	}
	if len(agents) > 0 {
		h.Details["agents"] = agents
	}
	p.mu.Lock()
	ferr := p.freeErr
	p.mu.Unlock()
	if ferr != nil {
		warns = append(warns, "cannot read the free space of the data directory: "+ferr.Error())
	}
	if len(warns) > 0 {
		h.Status, h.Error = nexus.StatusDegraded, strings.Join(warns, "; ")
	}
	return h
}

// bytesText is a size for people.
func bytesText(b float64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%.0f B", b)
	}
	div, exp := float64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", b/div, "KMGTP"[exp])
}

// predictCollector exports the predictions to /metrics.
type predictCollector struct {
	p                               *predictor
	diskIn, diskRate, memIn, warn   *prometheus.Desc
	agentRate, agentBefore, agentIn *prometheus.Desc
}

func newPredictCollector(p *predictor) *predictCollector {
	d := prometheus.NewDesc
	return &predictCollector{p: p,
		diskIn:      d("nexus_predict_disk_full_seconds", "Seconds until the data directory's file system is full at the current rate (absent when it is not filling).", nil, nil),
		diskRate:    d("nexus_predict_disk_free_bytes_per_second", "Trend of the free space of the data directory's file system (negative: filling).", nil, nil),
		memIn:       d("nexus_predict_memory_budget_seconds", "Seconds until the memory budget is reached at the current growth (absent when memory is not growing or there is no budget).", nil, nil),
		warn:        d("nexus_predict_warning", "1 when a prediction foresees a failure within its horizon.", []string{"kind", "agent"}, nil),
		agentRate:   d("nexus_predict_agent_errors_per_minute", "An agent's failures per minute over the newer half of the prediction window.", []string{"agent"}, nil),
		agentBefore: d("nexus_predict_agent_errors_per_minute_before", "An agent's failures per minute over the older half of the prediction window.", []string{"agent"}, nil),
		agentIn:     d("nexus_predict_agent_breaker_open_seconds", "Seconds until an agent's breaker opens at its rising error rate (absent unless predicted).", []string{"agent"}, nil),
	}
}

func (c *predictCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.diskIn, c.diskRate, c.memIn, c.warn, c.agentRate, c.agentBefore, c.agentIn} {
		ch <- d
	}
}

// Collect reports the trends as the background sampler and the health
// checks left them.
func (c *predictCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, pr := range c.p.predictions() {
		gauge(c.warn, float64(boolInt(pr.Warn)), pr.Kind, pr.Agent)
		switch pr.Kind {
		case "disk":
			gauge(c.diskRate, pr.Rate)
			if pr.Known {
				gauge(c.diskIn, pr.In.Seconds())
			}
		case "memory":
			if pr.Known {
				gauge(c.memIn, pr.In.Seconds())
			}
		case "agent":
			gauge(c.agentRate, pr.Rate*60, pr.Agent)
			gauge(c.agentBefore, pr.Before*60, pr.Agent)
			if pr.Known {
				gauge(c.agentIn, pr.In.Seconds(), pr.Agent)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// agentBreakers is how many failures in a row open each agent's breaker,
// from the configuration file (agent.DefaultBreakerFailures if unset).
func (na *nodeAgents) breakerAt(id string) int {
	if a := na.configOf(id); a != nil && a.Breaker.Failures > 0 {
		return a.Breaker.Failures
	}
	return agent.DefaultBreakerFailures
}

// sortedStatus is the agents' status by id, or nil without agents.
func (na *nodeAgents) sortedStatus() func() []agent.Status {
	f := na.status()
	if f == nil {
		return nil
	}
	return func() []agent.Status {
		sts := f()
		slices.SortFunc(sts, func(a, b agent.Status) int { return strings.Compare(a.Agent, b.Agent) })
		return sts
	}
}

// newPredictor is the node's predictor: its data directory, its memory
// budget, its agents.
func (n *Node) newPredictor() *predictor {
	p := newPredictor(n.cfg.Predict)
	p.free = statfsFree(n.cfg.Dir)
	p.budget, p.used = memoryBudget(n.cfg.MemoryBudget), goMemory
	p.agents, p.breakerAt = n.agents.sortedStatus(), n.agents.breakerAt
	return p
}
