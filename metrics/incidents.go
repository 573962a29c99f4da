package metrics

import (
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// IncidentFigures are one component's incidents among the node's newest
// incident records (the records the memory keeps of each failure and its
// recovery, read at scrape time).
type IncidentFigures struct {
	Component string
	// ByStatus counts the incidents by status: open, failed, recovered,
	// cleared.
	ByStatus map[string]int
	// RecoveryTimes are the times from detection to resolution of the
	// incidents resolved (recovered or cleared).
	RecoveryTimes []time.Duration
	// LastDetected is when the newest incident was detected.
	LastDetected time.Time
}

// incidentStatuses are the statuses always reported, 0 included.
var incidentStatuses = []string{"open", "failed", "recovered", "cleared"}

// incidentCollector reports the incident figures: counts by status, the
// time to recovery (a summary: p50, p99, sum and count; and the mean),
// and the last detection of each component.
type incidentCollector struct {
	list                               func() []IncidentFigures
	count, ttr, ttrMean, lastDetection *prometheus.Desc
}

func newIncidentCollector(list func() []IncidentFigures) *incidentCollector {
	l := []string{"component"}
	return &incidentCollector{list: list,
		count: prometheus.NewDesc("nexus_incidents", "Incidents among the node's newest incident records, by component and status.",
			[]string{"component", "status"}, nil),
		ttr: prometheus.NewDesc("nexus_time_to_recovery_seconds",
			"Time from detection to resolution of the resolved incidents among the node's newest incident records.", l, nil),
		ttrMean: prometheus.NewDesc("nexus_time_to_recovery_mean_seconds",
			"Mean time from detection to resolution of the resolved incidents among the node's newest incident records.", l, nil),
		lastDetection: prometheus.NewDesc("nexus_component_last_failure_timestamp_seconds",
			"When the component was last found failing (Unix seconds), from the incident records.", l, nil),
	}
}

func (c *incidentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.ttr
	ch <- c.ttrMean
	ch <- c.lastDetection
}

func (c *incidentCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.list() {
		for _, st := range incidentStatuses {
			ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(f.ByStatus[st]), f.Component, st)
		}
		if !f.LastDetected.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lastDetection, prometheus.GaugeValue, float64(f.LastDetected.UnixNano())/1e9, f.Component)
		}
		if len(f.RecoveryTimes) == 0 {
			continue
		}
		secs := make([]float64, len(f.RecoveryTimes))
		sum := 0.0
		for i, d := range f.RecoveryTimes {
			secs[i] = d.Seconds()
			sum += secs[i]
		}
		slices.Sort(secs)
		q := map[float64]float64{0.5: nearestRank(secs, 0.5), 0.99: nearestRank(secs, 0.99)}
		ch <- prometheus.MustNewConstSummary(c.ttr, uint64(len(secs)), sum, q, f.Component)
		ch <- prometheus.MustNewConstMetric(c.ttrMean, prometheus.GaugeValue, sum/float64(len(secs)), f.Component)
	}
}

// nearestRank is the p-quantile of sorted by the nearest-rank method:
// the smallest value with at least p of the values at or below it.
func nearestRank(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
