// Package metrics exposes a node's figures to Prometheus.
//
// # Basics
//
// [New] builds a registry whose collectors read their values from the
// node at scrape time through [Sources] (plain functions, so that this
// package knows no other part of Nexus), plus the Go and process
// collectors. [Metrics.Handler] serves it in the Prometheus text format.
//
// # Caveats
//
// A source left nil is not registered: its metrics are absent rather than
// zero, so a missing part is never mistaken for a healthy one.
package metrics

import (
	"context"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nexus-mem/nexus"
)

// CacheFigures are the L1 cache's counters.
type CacheFigures struct {
	Entries, Bytes, Hits, Misses, CorruptDrops int64
}

// IndexFigures are the search index's figures.
type IndexFigures struct {
	Indexed, Lag, NoVector int
	// Fresh counts searchable contexts whose vectors are not yet in the
	// graph (scanned exactly by every semantic search).
	Fresh       int
	LogFailures int64
	// Paced counts writes held back for the index's lag, PacedSeconds
	// the time they waited in all.
	Paced        int64
	PacedSeconds float64
}

// AgentFigures are one of the node's own agents' health and counters,
// counted since the agent was made.
type AgentFigures struct {
	Agent                                                   string
	Status                                                  string // healthy, degraded, unhealthy or auth_failed
	Breaker                                                 string // closed, open or half-open
	Calls, Requests, Retries, Rejected, TokensIn, TokensOut uint64
	// Failures counts failed requests and heartbeats by class (timeout,
	// overload, auth, ...).
	Failures map[string]uint64
}

// ProcessFigures are one supervised process's state and restarts.
type ProcessFigures struct {
	Name     string
	State    string // starting, running, backoff, stopping, stopped, exited, failed
	Restarts int    // since the node started
}

// ExternalFigures are the external agents of the task queue and its tasks.
type ExternalFigures struct {
	Active, Lost int
	Tasks        map[string]int // by state: queued, claimed, completing, done, failed
}

// The states each family of series is reported in: one series per state,
// 1 for the current one and 0 for the others.
var (
	agentStatuses = []string{"healthy", "degraded", "unhealthy", "auth_failed"}
	breakerStates = []string{"closed", "half-open", "open"}
	processStates = []string{"starting", "running", "backoff", "stopping", "stopped", "exited", "failed"}
	taskStates    = []string{"queued", "claimed", "completing", "done", "failed"}
)

// Sources are where the metrics read from; nil fields are left out.
type Sources struct {
	Health   func(ctx context.Context) nexus.Health
	Contexts func() int
	Cache    func() CacheFigures
	Index    func() IndexFigures
	// DataDir is the data directory whose file system's free space is
	// reported.
	DataDir string
	// LastBackup returns when the newest backup was written and its size;
	// ok is false when there is none (the metrics are then absent).
	LastBackup func() (at time.Time, bytes int64, ok bool)
	// Agents, Processes and External report the agent work of the node:
	// its own agents, its supervised processes and the external agents
	// with their tasks.
	Agents    func() []AgentFigures
	Processes func() []ProcessFigures
	External  func() ExternalFigures
	// Services reports the node's background jobs.
	Services func() []ServiceFigures
	// Incidents reports the node's incident records, by component (see
	// [IncidentFigures]).
	Incidents func() []IncidentFigures
}

// ServiceFigures are one background job of a node: whether it runs, and
// its rounds and failed rounds (periodic jobs).
type ServiceFigures struct {
	Name           string
	Running        bool
	Runs, Failures uint64
}

// Metrics is a registry of a node's metrics.
type Metrics struct {
	reg   *prometheus.Registry
	start time.Time

	recoveries  *prometheus.CounterVec   // by component and result
	recoveryDur *prometheus.HistogramVec // by component
	lastFailure *prometheus.GaugeVec     // by component, Unix seconds
	failures    *prometheus.CounterVec   // by component: times found failing
	fsckRuns    *prometheus.CounterVec   // by mode
	fsckProbs   *prometheus.GaugeVec     // by mode: problems found by the last run
	fsckDur     *prometheus.GaugeVec     // by mode: seconds the last run took
	fsckLast    *prometheus.GaugeVec     // by mode: Unix seconds of the last run
	pressure    prometheus.Counter       // memory pressure events
}

// New registers the collectors of src.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), start: time.Now()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.recoveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nexus_recovery_total",
		Help: "Recovery attempts by component and result (success or failure)."}, []string{"component", "result"})
	m.recoveryDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "nexus_recovery_duration_seconds",
		Help: "Duration of recovery attempts.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"component"})
	m.lastFailure = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nexus_recovery_last_failure_timestamp_seconds",
		Help: "When a recovery of the component last failed (Unix seconds)."}, []string{"component"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nexus_component_failures_total",
		Help: "Times a component was found failing by the cascading recovery."}, []string{"component"})
	m.fsckRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nexus_fsck_runs_total", Help: "Integrity checks run, by mode."}, []string{"mode"})
	m.fsckProbs = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nexus_fsck_problems", Help: "Problems found by the last integrity check of each mode."}, []string{"mode"})
	m.fsckDur = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nexus_fsck_duration_seconds", Help: "Duration of the last integrity check of each mode."}, []string{"mode"})
	m.fsckLast = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nexus_fsck_last_run_timestamp_seconds", Help: "When the last integrity check of each mode ran (Unix seconds)."}, []string{"mode"})
	m.pressure = prometheus.NewCounter(prometheus.CounterOpts{Name: "nexus_memory_pressure_events_total",
		Help: "Times the process went over 90 % of its memory budget and shrank its caches."})
	m.reg.MustRegister(m.recoveries, m.recoveryDur, m.lastFailure, m.failures, m.fsckRuns, m.fsckProbs, m.fsckDur, m.fsckLast, m.pressure)
	m.gauge("nexus_uptime_seconds", "Seconds since the node started.", func() float64 { return time.Since(m.start).Seconds() })
	if src.Contexts != nil {
		m.gauge("nexus_contexts", "Contexts stored.", func() float64 { return float64(src.Contexts()) })
	}
	if src.Cache != nil {
		m.counter("nexus_cache_hits_total", "L1 cache hits.", func() float64 { return float64(src.Cache().Hits) })
		m.counter("nexus_cache_misses_total", "L1 cache misses.", func() float64 { return float64(src.Cache().Misses) })
		m.counter("nexus_cache_corrupt_drops_total", "L1 cache entries that failed their checksum and were reloaded from git.",
			func() float64 { return float64(src.Cache().CorruptDrops) })
		m.gauge("nexus_cache_bytes", "Bytes held by the L1 cache.", func() float64 { return float64(src.Cache().Bytes) })
		m.gauge("nexus_cache_hit_ratio", "L1 cache hits over lookups since start (0 before the first lookup).", func() float64 {
			c := src.Cache()
			if c.Hits+c.Misses == 0 {
				return 0
			}
			return float64(c.Hits) / float64(c.Hits+c.Misses)
		})
	}
	if src.Index != nil {
		m.gauge("nexus_index_lag_contexts", "Stored contexts not yet in the search index.", func() float64 { return float64(src.Index().Lag) })
		m.gauge("nexus_index_contexts", "Contexts in the search index.", func() float64 { return float64(src.Index().Indexed) })
		m.gauge("nexus_index_fresh_contexts", "Searchable contexts whose vectors are not yet in the graph (every semantic search scans them exactly).",
			func() float64 { return float64(src.Index().Fresh) })
		m.gauge("nexus_index_waiting_embedding", "Indexed contexts waiting for an embedding (the embedder failed).",
			func() float64 { return float64(src.Index().NoVector) })
		m.counter("nexus_index_vector_log_failures_total", "Embeddings that could not be kept in git.",
			func() float64 { return float64(src.Index().LogFailures) })
		m.counter("nexus_index_paced_writes_total", "Writes held back while the search index was more than search.max_lag contexts behind.",
			func() float64 { return float64(src.Index().Paced) })
		m.counter("nexus_index_paced_seconds_total", "Time writes waited, in all, for the search index's lag to fall to search.max_lag.",
			func() float64 { return src.Index().PacedSeconds })
	}
	if src.DataDir != "" {
		m.gauge("nexus_disk_free_bytes", "Bytes available to the node on the data directory's file system.", func() float64 {
			var st syscall.Statfs_t
			if err := syscall.Statfs(src.DataDir, &st); err != nil {
				return -1
			}
			return float64(st.Bavail) * float64(st.Bsize)
		})
	}
	if src.LastBackup != nil {
		m.reg.MustRegister(&backupCollector{last: src.LastBackup,
			age:  prometheus.NewDesc("nexus_backup_age_seconds", "Seconds since the newest backup was written.", nil, nil),
			size: prometheus.NewDesc("nexus_backup_bytes", "Size of the newest backup.", nil, nil)})
	}
	if src.Agents != nil || src.Processes != nil || src.External != nil {
		m.reg.MustRegister(newAgentCollector(src))
	}
	if src.Services != nil {
		m.reg.MustRegister(newServiceCollector(src.Services))
	}
	if src.Incidents != nil {
		m.reg.MustRegister(newIncidentCollector(src.Incidents))
	}
	if src.Health != nil {
		m.reg.MustRegister(&healthCollector{check: src.Health, desc: prometheus.NewDesc("nexus_component_status",
			"Health of each component: 1 for the status it is in, 0 for the others.", []string{"component", "status"}, nil)})
	}
	return m
}

func (m *Metrics) gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

func (m *Metrics) counter(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

// RecordRecovery counts one recovery attempt of component.
func (m *Metrics) RecordRecovery(component string, ok bool, took time.Duration) {
	result := "success"
	if !ok {
		result = "failure"
		m.lastFailure.WithLabelValues(component).Set(float64(time.Now().Unix()))
	}
	m.recoveries.WithLabelValues(component, result).Inc()
	m.recoveryDur.WithLabelValues(component).Observe(took.Seconds())
}

// RecordFailure counts a component newly found failing.
func (m *Metrics) RecordFailure(component string) { m.failures.WithLabelValues(component).Inc() }

// RecordFsck records an integrity check of mode "fast" or "deep".
func (m *Metrics) RecordFsck(mode string, problems int, took time.Duration) {
	m.fsckRuns.WithLabelValues(mode).Inc()
	m.fsckProbs.WithLabelValues(mode).Set(float64(problems))
	m.fsckDur.WithLabelValues(mode).Set(took.Seconds())
	m.fsckLast.WithLabelValues(mode).Set(float64(time.Now().Unix()))
}

// RecordMemoryPressure counts one shrinking of the caches.
func (m *Metrics) RecordMemoryPressure() { m.pressure.Inc() }

// Registry is where other parts register their own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// healthCollector turns the node's health into one series per component
// and status.
type healthCollector struct {
	check func(ctx context.Context) nexus.Health
	desc  *prometheus.Desc
}

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := c.check(ctx)
	for _, name := range nexus.HealthComponents {
		got := h.Components[name].Status
		for _, st := range []string{nexus.StatusHealthy, nexus.StatusDegraded, nexus.StatusUnhealthy, nexus.StatusDisabled} {
			v := 0.0
			if st == got {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, name, st)
		}
	}
}

// backupCollector reports the newest backup, or nothing when there is none.
type backupCollector struct {
	last      func() (time.Time, int64, bool)
	age, size *prometheus.Desc
}

func (c *backupCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.age; ch <- c.size }

func (c *backupCollector) Collect(ch chan<- prometheus.Metric) {
	at, n, ok := c.last()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, time.Since(at).Seconds())
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n))
}

// agentCollector reports the agent work of the node: one set of series per
// agent and per process, read at scrape time.
type agentCollector struct {
	src Sources

	status, breaker, calls, requests, retries, rejected, tokens, failures *prometheus.Desc
	procState, procRestarts                                               *prometheus.Desc
	external, tasks                                                       *prometheus.Desc
}

func newAgentCollector(src Sources) *agentCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &agentCollector{src: src,
		status:       d("nexus_agent_status", "Condition of each of the node's agents: 1 for the one it is in, 0 for the others.", "agent", "status"),
		breaker:      d("nexus_agent_breaker_state", "Circuit breaker of each agent: 1 for the state it is in, 0 for the others.", "agent", "state"),
		calls:        d("nexus_agent_calls_total", "Calls to each agent (through a pool included).", "agent"),
		requests:     d("nexus_agent_requests_total", "Requests sent to each agent's provider, retries included.", "agent"),
		retries:      d("nexus_agent_retries_total", "Requests that retried a failed one.", "agent"),
		rejected:     d("nexus_agent_rejected_total", "Calls refused unsent: breaker open, auth_failed, rate limit.", "agent"),
		tokens:       d("nexus_agent_tokens_total", "Tokens as the provider counted them (estimated if it did not), in the prompt (in) and the answer (out).", "agent", "direction"),
		failures:     d("nexus_agent_failures_total", "Failed requests and heartbeats of each agent by class (timeout, overload, server, rate_limit, auth, ...).", "agent", "class"),
		procState:    d("nexus_supervised_process_state", "State of each supervised process: 1 for the one it is in, 0 for the others.", "process", "state"),
		procRestarts: d("nexus_supervised_process_restarts_total", "Restarts of each supervised process since the node started.", "process"),
		external:     d("nexus_external_agents", "External agents registered with the task queue, by status (active: lease current; lost: lapsed).", "status"),
		tasks:        d("nexus_tasks", "Tasks of the queue by state.", "state"),
	}
}

func (c *agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.status, c.breaker, c.calls, c.requests, c.retries, c.rejected, c.tokens, c.failures,
		c.procState, c.procRestarts, c.external, c.tasks} {
		ch <- d
	}
}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	oneOf := func(d *prometheus.Desc, name string, states []string, got string) {
		for _, st := range states {
			gauge(d, boolFloat(st == got), name, st)
		}
	}
	if c.src.Agents != nil {
		for _, a := range c.src.Agents() {
			oneOf(c.status, a.Agent, agentStatuses, a.Status)
			oneOf(c.breaker, a.Agent, breakerStates, a.Breaker)
			counter(c.calls, a.Calls, a.Agent)
			counter(c.requests, a.Requests, a.Agent)
			counter(c.retries, a.Retries, a.Agent)
			counter(c.rejected, a.Rejected, a.Agent)
			counter(c.tokens, a.TokensIn, a.Agent, "in")
			counter(c.tokens, a.TokensOut, a.Agent, "out")
			for class, n := range a.Failures {
				counter(c.failures, n, a.Agent, class)
			}
		}
	}
	if c.src.Processes != nil {
		for _, p := range c.src.Processes() {
			oneOf(c.procState, p.Name, processStates, p.State)
			counter(c.procRestarts, uint64(p.Restarts), p.Name)
		}
	}
	if c.src.External != nil {
		e := c.src.External()
		gauge(c.external, float64(e.Active), "active")
		gauge(c.external, float64(e.Lost), "lost")
		for _, st := range taskStates {
			gauge(c.tasks, float64(e.Tasks[st]), st)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// serviceCollector reports the node's background jobs.
type serviceCollector struct {
	list                    func() []ServiceFigures
	running, runs, failures *prometheus.Desc
}

func newServiceCollector(list func() []ServiceFigures) *serviceCollector {
	l := []string{"service"}
	return &serviceCollector{list: list,
		running:  prometheus.NewDesc("nexus_service_running", "1 while a background job of the node runs.", l, nil),
		runs:     prometheus.NewDesc("nexus_service_runs_total", "Rounds of a periodic background job.", l, nil),
		failures: prometheus.NewDesc("nexus_service_failures_total", "Rounds of a periodic background job that failed.", l, nil)}
}

func (c *serviceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.running
	ch <- c.runs
	ch <- c.failures
}

func (c *serviceCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.list() {
		running := 0.0
		if s.Running {
			running = 1
		}
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, running, s.Name)
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.CounterValue, float64(s.Runs), s.Name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(s.Failures), s.Name)
	}
}
