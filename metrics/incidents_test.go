package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/metrics"
)

// The incident figures: counts by status (every status, 0 included), the
// time to recovery as a summary (p50 and p99 by nearest rank, sum,
// count) and a mean, and the last detection; a component with nothing
// resolved has no time to recovery.
func TestMetrics_Incidents(t *testing.T) {
	last := time.Unix(1_700_000_000, 500_000_000)
	var times []time.Duration
	for i := 1; i <= 100; i++ {
		times = append(times, time.Duration(i)*time.Second)
	}
	m := metrics.New(metrics.Sources{Incidents: func() []metrics.IncidentFigures {
		return []metrics.IncidentFigures{
			{Component: "semantic_index", ByStatus: map[string]int{"recovered": 99, "cleared": 1, "open": 2}, RecoveryTimes: times, LastDetected: last},
			{Component: "git_repository", ByStatus: map[string]int{"failed": 1}, LastDetected: last},
		}
	}})
	out := scrape(t, m)
	for _, want := range []string{
		`nexus_incidents{component="semantic_index",status="recovered"} 99` + "\n",
		`nexus_incidents{component="semantic_index",status="cleared"} 1` + "\n",
		`nexus_incidents{component="semantic_index",status="open"} 2` + "\n",
		`nexus_incidents{component="semantic_index",status="failed"} 0` + "\n",
		`nexus_incidents{component="git_repository",status="failed"} 1` + "\n",
		`nexus_time_to_recovery_seconds{component="semantic_index",quantile="0.5"} 50` + "\n",
		`nexus_time_to_recovery_seconds{component="semantic_index",quantile="0.99"} 99` + "\n",
		`nexus_time_to_recovery_seconds_sum{component="semantic_index"} 5050` + "\n",
		`nexus_time_to_recovery_seconds_count{component="semantic_index"} 100` + "\n",
		`nexus_time_to_recovery_mean_seconds{component="semantic_index"} 50.5` + "\n",
		`nexus_component_last_failure_timestamp_seconds{component="git_repository"} 1.7000000005e+09` + "\n",
		"# TYPE nexus_time_to_recovery_seconds summary\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(out, `nexus_time_to_recovery_seconds_count{component="git_repository"}`) ||
		strings.Contains(out, `nexus_time_to_recovery_mean_seconds{component="git_repository"}`) {
		t.Error("a time to recovery for a component with nothing resolved")
	}
}
