package metrics_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/metrics"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetrics_ReadSourcesAtScrape(t *testing.T) {
	contexts := 7
	m := metrics.New(metrics.Sources{
		Contexts:   func() int { return contexts },
		Cache:      func() metrics.CacheFigures { return metrics.CacheFigures{Hits: 3, Misses: 1, Bytes: 100} },
		Index:      func() metrics.IndexFigures { return metrics.IndexFigures{Indexed: 5, Lag: 2} },
		DataDir:    t.TempDir(),
		LastBackup: func() (time.Time, int64, bool) { return time.Now().Add(-time.Hour), 4096, true },
		Health: func(context.Context) nexus.Health {
			return nexus.CheckHealth(context.Background(), map[string]nexus.HealthChecker{
				nexus.ComponentGit: nexus.HealthFunc(func(context.Context) nexus.ComponentHealth {
					return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: "ref unreadable"}
				}),
			})
		},
	})
	out := scrape(t, m)
	for _, want := range []string{
		"nexus_contexts 7\n", "nexus_cache_hits_total 3\n", "nexus_cache_misses_total 1\n", "nexus_cache_hit_ratio 0.75\n",
		"nexus_index_lag_contexts 2\n", "nexus_index_contexts 5\n",
		`nexus_component_status{component="git_repository",status="unhealthy"} 1`,
		`nexus_component_status{component="git_repository",status="healthy"} 0`,
		`nexus_component_status{component="agents",status="disabled"} 1`,
		"nexus_uptime_seconds ", "nexus_disk_free_bytes ", "nexus_backup_bytes 4096\n", "nexus_backup_age_seconds 3600", "go_goroutines ", "process_cpu_seconds_total ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(out, "nexus_disk_free_bytes -1") {
		t.Error("statfs of the data dir failed")
	}
	m.RecordRecovery("context_manager", true, 20*time.Millisecond)
	m.RecordRecovery("context_manager", false, time.Second)
	m.RecordFsck("deep", 3, 2*time.Second)
	out = scrape(t, m)
	for _, want := range []string{
		`nexus_recovery_total{component="context_manager",result="success"} 1`,
		`nexus_recovery_total{component="context_manager",result="failure"} 1`,
		`nexus_recovery_duration_seconds_count{component="context_manager"} 2`,
		`nexus_recovery_last_failure_timestamp_seconds{component="context_manager"} `,
		`nexus_fsck_problems{mode="deep"} 3`, `nexus_fsck_duration_seconds{mode="deep"} 2`, `nexus_fsck_runs_total{mode="deep"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	contexts = 9
	if !strings.Contains(scrape(t, m), "nexus_contexts 9\n") {
		t.Error("a second scrape did not read the source again")
	}
}

func TestMetrics_NilSourcesAbsent(t *testing.T) {
	out := scrape(t, metrics.New(metrics.Sources{}))
	for _, absent := range []string{"nexus_contexts", "nexus_cache_", "nexus_index_", "nexus_disk_free", "nexus_component_status", "nexus_backup_"} {
		if strings.Contains(out, absent) {
			t.Errorf("scrape has %q without its source", absent)
		}
	}
}
