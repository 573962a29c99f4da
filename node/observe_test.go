package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// /health reports each component, /metrics the node's figures and its
// background jobs, and an online deep check finds a fresh store clean.
func TestNode_HealthAndMetrics(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.ScrubInterval = time.Hour // a job that runs, with no round yet
	n := nodetest.Open(t, cfg)
	for i := range 5 {
		if _, err := n.Client.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("note ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := n.HTTP.Get(n.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	var h nexus.Health
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || h.Status != nexus.StatusHealthy {
		t.Fatalf("GET /health: %d %+v %v", resp.StatusCode, h, err)
	}
	want := map[string]string{
		nexus.ComponentGit: nexus.StatusHealthy, nexus.ComponentStore: nexus.StatusHealthy, nexus.ComponentCache: nexus.StatusHealthy,
		nexus.ComponentIndex: nexus.StatusHealthy, nexus.ComponentAgents: nexus.StatusDisabled, nexus.ComponentBackups: nexus.StatusDisabled,
		nexus.ComponentPredict: nexus.StatusHealthy,
	}
	if len(h.Components) != len(want) {
		t.Errorf("components %v, want %d", h.Components, len(want))
	}
	for name, st := range want {
		got := h.Components[name]
		if got.Status != st || got.Timestamp.IsZero() {
			t.Errorf("%s: %+v, want %s", name, got, st)
		}
	}
	if c := h.Components[nexus.ComponentStore].Details["contexts"]; c != float64(5) {
		t.Errorf("context_manager details: %v", h.Components[nexus.ComponentStore].Details)
	}
	rep, err := n.Fsck(context.Background(), true)
	if err != nil || !rep.Deep || rep.Commits < 5 || len(rep.Problems) != 0 { // main's 5 and the embeddings log's
		t.Fatalf("online fsck: %+v %v", rep, err)
	}
	if resp, err := n.HTTP.Get(n.URL + "/v1/nowhere"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /v1/nowhere: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	m := metricsText(t, n)
	for _, s := range []string{"nexus_contexts 5\n", "nexus_index_lag_contexts ", "nexus_cache_hit_ratio ", "nexus_disk_free_bytes ",
		`nexus_component_status{component="semantic_index",status="healthy"} 1`, `nexus_component_status{component="backups",status="disabled"} 1`,
		"nexus_uptime_seconds ", `nexus_service_running{service="scrub"} 1`, `nexus_service_runs_total{service="scrub"} 0`,
		`nexus_service_running{service="recovery"} 1`, `nexus_service_running{service="lease reaper"} 1`,
		// Every request, timed by route: the five writes, the health check, the
		// route that made no match (none).
		`nexus_http_requests_total{code="201",route="POST /v1/contexts"} 5`, `nexus_http_requests_total{code="200",route="GET /health"} 1`,
		`nexus_http_request_duration_seconds_count{route="POST /v1/contexts"} 5`, `nexus_http_requests_total{code="404",route="none"} 1`} {
		if !strings.Contains(m, s) {
			t.Errorf("metrics lack %q", s)
		}
	}
}

// Over its memory budget the node shrinks the cache to a quarter and
// says so in /health and /metrics.
func TestNode_MemoryPressure(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.MemoryBudget = 1 << 20 // any process holds more than this
	cfg.MemoryInterval = 10 * time.Millisecond
	n := nodetest.Open(t, cfg)
	nodetest.Wait(t, time.Minute, "the cache to shrink", func() bool {
		mc := n.Health(context.Background()).Components[nexus.ComponentCache]
		return mc.Status == nexus.StatusDegraded && strings.Contains(mc.Error, "memory pressure")
	})
	h := n.Health(context.Background())
	if max := h.Components[nexus.ComponentCache].Details["max_bytes"]; max != int64(16<<20) {
		t.Fatalf("cache budget %v (%T), want a quarter of 64 MiB", max, max)
	}
	if out := metricsText(t, n); !strings.Contains(out, "nexus_memory_pressure_events_total 1") {
		t.Fatal("metrics lack nexus_memory_pressure_events_total 1")
	}
}
