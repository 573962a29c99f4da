package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A node injects nothing unless its configuration file opts in, and says
// which setting to change.
func TestNode_Chaos_refusedWithoutOptIn(t *testing.T) {
	ctx := context.Background()
	for name, file := range map[string]string{"no file": "", "chaos off": "chaos:\n  enabled: false\n"} {
		cfg := nodetest.Config(t)
		if file != "" {
			withFile(t, &cfg, file)
		}
		n := nodetest.Open(t, cfg)
		_, err := n.Client.ChaosScenarios(ctx)
		if nexus.ErrorCode(err) != nexus.EConflict || !strings.Contains(nexus.ErrorMessage(err), "set chaos.enabled: true") {
			t.Errorf("%s: GET /v1/admin/chaos: %v", name, err)
		}
		_, err = n.Client.Chaos(ctx, "index_damage", nil)
		if nexus.ErrorCode(err) != nexus.EConflict || !strings.Contains(nexus.ErrorMessage(err), "set chaos.enabled: true") {
			t.Errorf("%s: POST /v1/admin/chaos: %v", name, err)
		}
	}
}

// The scenarios a node cannot run say why; bad requests get a clear
// error with a code, and nothing is injected.
func TestNode_Chaos_availabilityAndBadInput(t *testing.T) {
	ctx := context.Background()
	cfg := nodetest.Config(t) // no memory budget, no supervised process
	withFile(t, &cfg, "chaos:\n  enabled: true\n")
	n := nodetest.Open(t, cfg)
	st, err := n.Client.ChaosScenarios(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range st.Scenarios {
		got[s.Name] = s.Component + " " + s.Reason
		if s.Available != (s.Reason == "") {
			t.Errorf("%+v: available and a reason", s)
		}
	}
	want := map[string]string{
		"corrupt_object":   "git_repository ",
		"index_damage":     "semantic_index ",
		"memory_pressure":  "memory_cache the node has no memory budget (--memory-budget, or a cgroup memory limit): no governor to put under pressure",
		"kill_process":     "agents the node supervises no running process (supervisor.processes in its configuration file)",
		"disk_fill":        "git_repository ",
		"provider_fail":    "agents the node has no agent with an HTTP provider (openai or anthropic) in its configuration file",
		"provider_latency": "agents the node has no agent with an HTTP provider (openai or anthropic) in its configuration file",
		"leader_isolate":   "cluster not a node of a cluster",
		"raft_latency":     "cluster not a node of a cluster",
	}
	if len(got) != len(want) || st.Cluster || !st.Enabled {
		t.Fatalf("status %+v", st)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for _, c := range []struct {
		scenario string
		params   map[string]string
		code     nexus.Code
		msg      string
	}{
		{"", nil, nexus.EInvalid, `field "scenario" is required`},
		{"meteor", nil, nexus.EInvalid, `unknown chaos scenario "meteor"`},
		{"kill_process", nil, nexus.EConflict, "not available on this node: the node supervises no running process"},
		{"index_damage", map[string]string{"mode": "shred"}, nexus.EInvalid, `mode "shred": want delete or damage`},
		{"disk_fill", map[string]string{"hold": "forever"}, nexus.EInvalid, `hold "forever"`},
		{"disk_fill", map[string]string{"hold": "1h"}, nexus.EInvalid, `hold "1h"`},
		{"disk_fill", map[string]string{"floor": "-1"}, nexus.EInvalid, `floor "-1"`},
		// A floor above the free space: nothing to fill, refused.
		{"disk_fill", map[string]string{"floor": "9000000000000000000"}, nexus.EConflict, "already at or below the floor"},
	} {
		_, err := n.Client.Chaos(ctx, c.scenario, c.params)
		if nexus.ErrorCode(err) != c.code || !strings.Contains(nexus.ErrorMessage(err), c.msg) {
			t.Errorf("%s %v: %v, want %s %q", c.scenario, c.params, err, c.code, c.msg)
		}
	}
}

// provider_fail and provider_latency put a real fault in the node's chaos
// proxy between an agent and its provider (a fake speaking the OpenAI
// wire format): the agent's heartbeats fail, it turns unhealthy (its
// breaker opens), and once the hold ends it is healthy again (breaker
// closed) with no help. Bad parameters are refused.
func TestNode_Chaos_provider(t *testing.T) {
	ctx := context.Background()
	llm := agenttest.NewProvider(t, "llm")
	cfg := nodetest.Config(t)
	withFile(t, &cfg, fmt.Sprintf(`chaos:
  enabled: true
agents:
  - id: writer
    provider: openai
    base_url: %s
    model: %s
    timeout: 500ms
    retries: {max: 0}
    breaker: {failures: 1, open_timeout: 300ms}
    heartbeat: {interval: 100ms, failure_threshold: 2}
  - id: quiet
    provider: openai
    base_url: %s
    model: %s
    heartbeat: {interval: 0}
`, llm.URL, agenttest.Model, llm.URL, agenttest.Model))
	n := nodetest.Open(t, cfg)
	st, err := n.Client.ChaosScenarios(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Scenarios {
		if (s.Name == "provider_fail" || s.Name == "provider_latency") && (!s.Available || s.Component != "agents") {
			t.Fatalf("%+v: want available, component agents", s)
		}
	}
	sub, err := n.Client.Subscribe(ctx, nexus.EventFilter{AgentID: "writer"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, c := range []struct {
		scenario string
		params   map[string]string
		what     string
	}{
		{"provider_fail", map[string]string{"hold": "1s"}, "every connection of agent writer to its provider 127.0.0.1:"},
		// 2 × 400ms: a round trip takes longer than the timeout (500ms);
		// held long enough for two heartbeats to time out.
		{"provider_latency", map[string]string{"hold": "3s", "delay": "400ms"}, "delayed by 400ms each way"},
	} {
		inj, err := n.Client.Chaos(ctx, c.scenario, c.params)
		if err != nil {
			t.Fatalf("%s: %v", c.scenario, err)
		}
		if inj.Component != "agents" || inj.FoundBy != "health" || !strings.Contains(inj.What, c.what) || inj.Details["agent"] != "writer" || !inj.Until.After(inj.InjectedAt) {
			t.Fatalf("%s: %+v", c.scenario, inj)
		}
		down := nodetest.AwaitEvent(t, sub, eventWait, c.scenario+": writer unhealthy", func(typ string, d map[string]any) bool {
			return typ == "agent" && d["status"] == "unhealthy"
		})
		if detail, _ := down["detail"].(map[string]any); detail["breaker"] != "open" || down["reason"] == "" {
			t.Fatalf("%s: unhealthy event %v", c.scenario, down)
		}
		nodetest.AwaitEvent(t, sub, eventWait, c.scenario+": writer healthy again", func(typ string, d map[string]any) bool {
			return typ == "agent" && d["status"] == "healthy"
		})
		if time.Now().Before(inj.Until) {
			t.Fatalf("%s: healthy again before the fault ended at %s", c.scenario, inj.Until)
		}
		h := n.Node.Health(ctx).Components[nexus.ComponentAgents]
		if by, _ := h.Details["by_agent"].(map[string]any); by["writer"].(map[string]any)["breaker"] != "closed" {
			t.Fatalf("%s: after recovery %+v", c.scenario, h)
		}
	}
	for _, c := range []struct {
		params map[string]string
		code   nexus.Code
		msg    string
	}{
		{map[string]string{"agent": "quiet"}, nexus.EInvalid, `agent "quiet": want one of writer`},
		{map[string]string{"agent": "nobody"}, nexus.EInvalid, `agent "nobody"`},
		{map[string]string{"delay": "2m"}, nexus.EInvalid, `delay "2m"`},
		{map[string]string{"hold": "-1s"}, nexus.EInvalid, `hold "-1s"`},
	} {
		_, err := n.Client.Chaos(ctx, "provider_latency", c.params)
		if nexus.ErrorCode(err) != c.code || !strings.Contains(nexus.ErrorMessage(err), c.msg) {
			t.Errorf("provider_latency %v: %v, want %s %q", c.params, err, c.code, c.msg)
		}
	}
}

// The provider scenarios are unavailable, with the reason, on a node
// whose agents send no heartbeats (nothing would notice) or are command
// agents.
func TestNode_Chaos_providerUnavailable(t *testing.T) {
	ctx := context.Background()
	for file, reason := range map[string]string{
		"agents:\n  - id: quiet\n    provider: openai\n    base_url: http://127.0.0.1:9/v1\n    model: m\n    heartbeat: {interval: 0}\n": "no agent with an HTTP provider sends heartbeats",
		"agents:\n  - id: local\n    provider: command\n    command: /bin/true\n":                                                         "the node has no agent with an HTTP provider (openai or anthropic)",
	} {
		cfg := nodetest.Config(t)
		withFile(t, &cfg, "chaos:\n  enabled: true\n"+file)
		n := nodetest.Open(t, cfg)
		st, err := n.Client.ChaosScenarios(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st.Scenarios {
			if (s.Name == "provider_fail" || s.Name == "provider_latency") && (s.Available || !strings.Contains(s.Reason, reason)) {
				t.Errorf("%s: %+v, want unavailable: %s", file, s, reason)
			}
		}
		_, err = n.Client.Chaos(ctx, "provider_fail", nil)
		if nexus.ErrorCode(err) != nexus.EConflict || !strings.Contains(nexus.ErrorMessage(err), reason) {
			t.Errorf("%s: provider_fail: %v", file, err)
		}
	}
}
