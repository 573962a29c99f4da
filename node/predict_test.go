package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/crashfs"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A real node whose data directory is on a 64 MiB tmpfs: a file grows
// there 128 KiB at a time, and /health warns that the file system fills
// (predictions degraded, with the time to full) while most of it is
// still free, long before a write meets ENOSPC; /metrics says the same.
func TestPredict_RealDiskFills(t *testing.T) {
	mnt := crashfs.Tmpfs(t, "64m")
	cfg := nodetest.Config(t)
	cfg.Dir, cfg.NoSearch = filepath.Join(mnt, "data"), true
	// Predictions need samples spanning an interval: 20 ms here, where
	// filling the 64 MiB takes hundreds of health checks.
	cfg.Predict = node.PredictConfig{Interval: 20 * time.Millisecond, Window: time.Minute, DiskHorizon: time.Hour}
	n := nodetest.Open(t, cfg)

	health := func() nexus.Health {
		t.Helper()
		resp, err := n.HTTP.Get(n.URL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h nexus.Health
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := health(); h.Components[nexus.ComponentPredict].Status != nexus.StatusHealthy {
		t.Fatalf("predictions before anything grows: %+v", h.Components[nexus.ComponentPredict])
	}
	f, err := os.Create(filepath.Join(mnt, "growing"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 128<<10)
	for i := 1; ; i++ {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("ENOSPC after %d KiB, and /health never warned", i*128)
			}
			t.Fatal(err)
		}
		h := health()
		p := h.Components[nexus.ComponentPredict]
		if p.Status == nexus.StatusHealthy {
			continue
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(mnt, &st); err != nil {
			t.Fatal(err)
		}
		free := int64(st.Bavail) * st.Bsize
		disk, _ := p.Details["disk"].(map[string]any)
		in, _ := disk["full_in_seconds"].(float64)
		if p.Status != nexus.StatusDegraded || h.Status != nexus.StatusDegraded || disk["warning"] != true ||
			in <= 0 || in >= time.Hour.Seconds() || !strings.Contains(p.Error, "the data directory's file system is full in ") {
			t.Fatalf("after %d KiB: /health %s, predictions %+v", i*128, h.Status, p)
		}
		if free < 32<<20 {
			t.Fatalf("warned only with %d bytes free of 64 MiB", free)
		}
		t.Logf("warned after %d KiB written, %d MiB free: %s", i*128, free>>20, p.Error)
		break
	}
	resp, err := n.HTTP.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`nexus_predict_warning{agent="",kind="disk"} 1`, "nexus_predict_disk_full_seconds ",
		`nexus_component_status{component="predictions",status="degraded"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A real agent whose provider (a fake speaking the OpenAI wire format)
// starts failing: its heartbeats fail one after another while its breaker
// stays closed (it opens only after many), the failures per minute rise,
// and the predictions component warns that the breaker will open, with
// the time left at this rate.
func TestPredict_RealAgentErrorsRise(t *testing.T) {
	llm := newLLMFake(t, "writer", "")
	cfg := nodetest.Config(t)
	cfg.NoSearch = true
	const interval = 200 * time.Millisecond
	// The disk is shared with other processes: only the agents warn here.
	cfg.Predict = node.PredictConfig{Interval: interval, Window: time.Minute, DiskHorizon: -1, MemoryHorizon: -1}
	withFile(t, &cfg, fmt.Sprintf(`agents:
  - id: writer
    provider: openai
    base_url: %s
    model: fake-model
    retries: {max: 0}
    breaker: {failures: 100000}
    heartbeat: {interval: 20ms, failure_threshold: 100000}
`, llm.baseURL()))
	n := nodetest.Open(t, cfg)
	opened := time.Now()
	predictions := func() (nexus.ComponentHealth, map[string]any) {
		p := n.Node.Health(context.Background()).Components[nexus.ComponentPredict]
		agents, _ := p.Details["agents"].(map[string]any)
		w, _ := agents["writer"].(map[string]any)
		return p, w
	}
	// A healthy stretch first: the older half of the window is flat.
	nodetest.Wait(t, time.Minute, "a flat trend of the writer's failures over three intervals", func() bool {
		p, w := predictions()
		if p.Status != nexus.StatusHealthy || w["failures"] != int64(0) {
			t.Fatalf("before the provider fails: %+v", p)
		}
		return time.Since(opened) > 3*interval
	})
	llm.fail(503)
	var p nexus.ComponentHealth
	var w map[string]any
	nodetest.Wait(t, time.Minute, "the predictions warn of the writer's rising errors", func() bool {
		p, w = predictions()
		return p.Status != nexus.StatusHealthy
	})
	in, _ := w["breaker_open_in_seconds"].(float64)
	if p.Status != nexus.StatusDegraded || w["warning"] != true || in <= 0 ||
		!strings.Contains(p.Error, "agent writer: errors rising") || !strings.Contains(p.Error, "its breaker opens in") {
		t.Fatalf("predictions: %+v", p)
	}
	a := n.Node.Health(context.Background()).Components[nexus.ComponentAgents]
	by, _ := a.Details["by_agent"].(map[string]any)
	if wa, _ := by["writer"].(map[string]any); wa["breaker"] != "closed" {
		t.Fatalf("the breaker is not closed: the warning came after the fact: %+v", a)
	}
	t.Logf("warned: %s", p.Error)
}
