package node

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The request metrics count each request once under its route and
// status, however often the series was looked up before.
func TestRequestMetrics_counts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newRequestMetrics(reg)
	for range 3 {
		m.observe("GET /v1/contexts/{id}", 200, time.Millisecond)
	}
	m.observe("GET /v1/contexts/{id}", 404, time.Millisecond)
	m.observe("", 401, time.Millisecond)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, x := range f.GetMetric() {
			key := f.GetName()
			for _, l := range x.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			if c := x.GetCounter(); c != nil {
				got[key] = c.GetValue()
			}
			if h := x.GetHistogram(); h != nil {
				got[key] = float64(h.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"nexus_http_requests_total code=200 route=GET /v1/contexts/{id}":  3,
		"nexus_http_requests_total code=404 route=GET /v1/contexts/{id}":  1,
		"nexus_http_requests_total code=401 route=none":                   1,
		"nexus_http_request_duration_seconds route=GET /v1/contexts/{id}": 4,
		"nexus_http_request_duration_seconds route=none":                  1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

// BenchmarkRequestMetrics is the metrics of one request: the series
// looked up by their labels every time ("labels", as before) or once
// ("cached", observe).
func BenchmarkRequestMetrics(b *testing.B) {
	m := newRequestMetrics(prometheus.NewRegistry())
	b.Run("labels", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.total.WithLabelValues("GET /v1/contexts/{id}", strconv.Itoa(200)).Inc()
			m.took.WithLabelValues("GET /v1/contexts/{id}").Observe(0.0001)
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.observe("GET /v1/contexts/{id}", 200, 100*time.Microsecond)
		}
	})
}
