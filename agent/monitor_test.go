package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// at waits until d after start on the bubble's clock, then until every
// goroutine of the bubble is blocked.
func at(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d)))
	synctest.Wait()
}

func TestMonitor_Heartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []string
		fakes, rs := fleet(t, 2, func(c *agent.Config) {
			c.HeartbeatInterval, c.HeartbeatFailures, c.BreakerCooldown = 5*time.Second, 3, 20*time.Second
			if c.ID == "a1" {
				c.OnChange = func(_ string, _, to agent.Condition) { changes = append(changes, string(to)) }
			}
		})
		f, r := fakes[0], rs[0]
		pool, err := agent.NewPool("p", nil, agent.Member{Agent: r}, agent.Member{Agent: rs[1], Backup: true})
		if err != nil {
			t.Fatal(err)
		}
		f.setBeats(status(500, "model server down"), nil, nil) // two good beats, then failures
		m := agent.NewMonitor(r, rs[1])
		m.Start()
		t.Cleanup(func() { m.Close() })
		start := time.Now()

		at(start, 12*time.Second)
		if st := r.Status(); st.Condition != agent.Degraded || st.HeartbeatFailures != 1 || st.Breaker != "closed" {
			t.Errorf("after one failed heartbeat: %+v", st)
		}
		at(start, 21*time.Second)
		st := r.Status()
		if st.Condition != agent.Unhealthy || st.Breaker != "open" || st.HeartbeatFailures != 3 ||
			!strings.HasPrefix(st.LastError, "heartbeat: openai at") || st.LastHeartbeat != start.Add(20*time.Second) {
			t.Errorf("after three failed heartbeats: %+v", st)
		}
		h := m.CheckHealth(context.Background())
		if h.Status != nexus.StatusDegraded || !strings.Contains(h.Error, "agent a1 is unhealthy: heartbeat: openai at") ||
			h.Details["unhealthy"] != 1 || h.Details["healthy"] != 1 {
			t.Errorf("health %+v", h)
		}
		// Traffic fails over, and nothing is sent to the unhealthy agent.
		sent := f.count()
		resp, err := pool.Generate(context.Background(), "hi")
		if err != nil || resp.Provenance.FinalAgent != "a2" || f.count() != sent {
			t.Fatalf("while unhealthy: %+v, %v; %d requests to a1", resp, err, f.count()-sent)
		}

		// Half-open probes, as soon as the cooldown ends: a failed one, then
		// a good one.
		at(start, 41*time.Second)
		if got := offsets(start, f.beatTimes()); got != "[0s 5s 10s 15s 20s 40.001s]" {
			t.Errorf("heartbeats at %s", got)
		}
		if st := r.Status(); st.Breaker != "open" {
			t.Errorf("breaker %s after a failed probe", st.Breaker)
		}
		f.setBeats(nil)
		at(start, 61*time.Second)
		if got := offsets(start, f.beatTimes()); got != "[0s 5s 10s 15s 20s 40.001s 1m0.002s]" {
			t.Errorf("heartbeats at %s", got)
		}
		if st := r.Status(); st.Condition != agent.Healthy || st.Breaker != "closed" || st.HeartbeatFailures != 0 {
			t.Errorf("after a good probe: %+v", st)
		}
		if got := strings.Join(changes, ","); got != "degraded,unhealthy,healthy" {
			t.Errorf("condition changes %s", got)
		}
		if h := m.CheckHealth(context.Background()); h.Status != nexus.StatusHealthy || h.Error != "" {
			t.Errorf("health %+v", h)
		}
		if resp, err := pool.Generate(context.Background(), "hi"); err != nil || resp.Provenance.FinalAgent != "a1" {
			t.Errorf("after recovery: %+v, %v", resp, err)
		}
	})
}

func offsets(start time.Time, times []time.Time) string {
	out := make([]time.Duration, len(times))
	for i, at := range times {
		out[i] = at.Sub(start)
	}
	return fmt.Sprint(out)
}

func TestMonitor_AuthFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, agent.Anthropic, testKey)
		r, _ := newRunner(t, f, func(c *agent.Config) {
			c.APIKey, c.HeartbeatInterval = agent.NewSecret("sk-wrong-key-0123456789"), 5*time.Second
		})
		m := agent.NewMonitor(r)
		m.Start()
		t.Cleanup(func() { m.Close() })
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(f.beatTimes()); n != 1 {
			t.Errorf("%d heartbeats sent with a rejected key, want 1", n)
		}
		st := r.Status()
		h := m.CheckHealth(context.Background())
		if st.Condition != agent.AuthFailed || h.Status != nexus.StatusUnhealthy || !strings.Contains(h.Error, "agent a1 is auth_failed: heartbeat:") {
			t.Errorf("status %+v, health %+v", st, h)
		}
		if err := r.Reset(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := len(f.beatTimes()); n != 2 {
			t.Errorf("%d heartbeats after Reset, want 2", n)
		}
	})
}

func TestMonitor_CheckHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		if h := agent.NewMonitor().CheckHealth(ctx); h.Status != nexus.StatusDisabled || h.Timestamp.IsZero() {
			t.Errorf("no agents: %+v", h)
		}
		fakes, rs := fleet(t, 3, func(c *agent.Config) { c.BreakerFailures = 2 })
		m := agent.NewMonitor(rs...)
		if h := m.CheckHealth(ctx); h.Status != nexus.StatusHealthy || h.Details["agents"] != 3 || h.Error != "" {
			t.Errorf("all healthy: %+v", h)
		}
		fakes[1].setAlways(status(502, "bad gateway"))
		fakes[2].setAlways(status(502, "bad gateway"))
		rs[1].Generate(ctx, "hi")
		rs[2].Generate(ctx, "hi")
		rs[2].Generate(ctx, "hi")
		h := m.CheckHealth(ctx)
		by, _ := h.Details["by_agent"].(map[string]any)
		if h.Status != nexus.StatusDegraded || h.Details["degraded"] != 1 || h.Details["unhealthy"] != 1 || len(by) != 3 ||
			!strings.Contains(h.Error, "agent a2 is degraded: anthropic at") || !strings.Contains(h.Error, "agent a3 is unhealthy: openai at") {
			t.Errorf("mixed: %+v", h)
		}
		fakes[0].setAlways(status(401, "no"))
		rs[0].Generate(ctx, "hi")
		rs[1].Generate(ctx, "hi")
		if h := m.CheckHealth(ctx); h.Status != nexus.StatusUnhealthy || h.Details["auth_failed"] != 1 || h.Details["unhealthy"] != 2 {
			t.Errorf("none can answer: %+v", h)
		}
		node := nexus.CheckHealth(ctx, map[string]nexus.HealthChecker{nexus.ComponentAgents: m})
		if node.Status != nexus.StatusUnhealthy || node.Components[nexus.ComponentAgents].Status != nexus.StatusUnhealthy {
			t.Errorf("node health %+v", node)
		}
		if st := m.Status(); len(st) != 3 || st[0].Agent != "a1" || st[0].Condition != agent.AuthFailed {
			t.Errorf("statuses %+v", st)
		}
	})
}

func TestMonitor_StartClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, agent.OpenAI, testKey)
		quiet, _ := newRunner(t, f, func(c *agent.Config) { c.HeartbeatInterval = -1 })
		m := agent.NewMonitor(quiet)
		if err := m.Close(); err != nil {
			t.Errorf("Close before Start: %v", err)
		}
		m.Start()
		m.Start()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(f.beatTimes()); n != 0 {
			t.Errorf("%d heartbeats with heartbeats off", n)
		}
		m.Close()

		r, _ := newRunner(t, f, func(c *agent.Config) { c.HeartbeatInterval = time.Second })
		m = agent.NewMonitor(r)
		m.Start()
		time.Sleep(10*time.Second + time.Millisecond)
		m.Close()
		n := len(f.beatTimes())
		time.Sleep(time.Hour)
		if n != 11 || len(f.beatTimes()) != n {
			t.Errorf("%d heartbeats in 10s at 1s, then %d after Close", n, len(f.beatTimes())-n)
		}
	})
}
