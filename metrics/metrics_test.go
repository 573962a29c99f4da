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
		Contexts: func() int { return contexts },
		Cache:    func() metrics.CacheFigures { return metrics.CacheFigures{Hits: 3, Misses: 1, Bytes: 100} },
		Index: func() metrics.IndexFigures {
			return metrics.IndexFigures{Indexed: 5, Lag: 2, Fresh: 3, Paced: 4, PacedSeconds: 1.5}
		},
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
		"nexus_index_lag_contexts 2\n", "nexus_index_contexts 5\n", "nexus_index_fresh_contexts 3\n",
		"nexus_index_paced_writes_total 4\n", "nexus_index_paced_seconds_total 1.5\n",
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
	for _, absent := range []string{"nexus_contexts", "nexus_cache_", "nexus_index_", "nexus_disk_free", "nexus_component_status", "nexus_backup_", "nexus_agent_", "nexus_supervised_", "nexus_external_", "nexus_tasks"} {
		if strings.Contains(out, absent) {
			t.Errorf("scrape has %q without its source", absent)
		}
	}
}

func TestMetrics_Agents(t *testing.T) {
	figures := []metrics.AgentFigures{
		{Agent: "primary", Status: "unhealthy", Breaker: "open", Calls: 4, Requests: 6, Retries: 2, Rejected: 1, TokensIn: 30, TokensOut: 7,
			Failures: map[string]uint64{"overload": 5, "timeout": 1}},
		{Agent: "backup", Status: "healthy", Breaker: "closed", Calls: 3, Requests: 3},
	}
	restarts := 2
	m := metrics.New(metrics.Sources{
		Agents: func() []metrics.AgentFigures { return figures },
		Processes: func() []metrics.ProcessFigures {
			return []metrics.ProcessFigures{{Name: "coder", State: "backoff", Restarts: restarts}}
		},
		External: func() metrics.ExternalFigures {
			return metrics.ExternalFigures{Active: 2, Lost: 1, Tasks: map[string]int{"queued": 3, "done": 9}}
		},
	})
	out := scrape(t, m)
	for _, want := range []string{
		`nexus_agent_status{agent="primary",status="unhealthy"} 1`, `nexus_agent_status{agent="primary",status="healthy"} 0`,
		`nexus_agent_status{agent="backup",status="healthy"} 1`, `nexus_agent_status{agent="backup",status="auth_failed"} 0`,
		`nexus_agent_breaker_state{agent="primary",state="open"} 1`, `nexus_agent_breaker_state{agent="primary",state="closed"} 0`,
		`nexus_agent_breaker_state{agent="backup",state="closed"} 1`,
		`nexus_agent_calls_total{agent="primary"} 4`, `nexus_agent_requests_total{agent="primary"} 6`,
		`nexus_agent_retries_total{agent="primary"} 2`, `nexus_agent_rejected_total{agent="primary"} 1`,
		`nexus_agent_tokens_total{agent="primary",direction="in"} 30`, `nexus_agent_tokens_total{agent="primary",direction="out"} 7`,
		`nexus_agent_failures_total{agent="primary",class="overload"} 5`, `nexus_agent_failures_total{agent="primary",class="timeout"} 1`,
		`nexus_supervised_process_state{process="coder",state="backoff"} 1`, `nexus_supervised_process_state{process="coder",state="running"} 0`,
		`nexus_supervised_process_restarts_total{process="coder"} 2`,
		`nexus_external_agents{status="active"} 2`, `nexus_external_agents{status="lost"} 1`,
		`nexus_tasks{state="queued"} 3`, `nexus_tasks{state="done"} 9`, `nexus_tasks{state="claimed"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(out, `nexus_agent_failures_total{agent="backup"`) {
		t.Error("a class that never failed has a series")
	}
	restarts = 3
	if out := scrape(t, m); !strings.Contains(out, `nexus_supervised_process_restarts_total{process="coder"} 3`) {
		t.Error("a second scrape did not read the processes again")
	}
}
