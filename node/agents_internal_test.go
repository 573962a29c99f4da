package node

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/supervisor"
)

// Every field of an agent and a process of the file reaches the package
// that runs it; the file's zeros that mean "off" become agent.Config's.
func TestAgentConfigOf(t *testing.T) {
	cfg, err := config.Parse("/etc/nexus/nexus.yaml", []byte(`
agents:
  - id: coder
    provider: command
    command: bin/agent
    args: [--json]
    env: {LEVEL: strict}
    dir: work
    probe: [bin/agent, --ping]
    api_key_env: CODER_KEY
    secrets_file: keys.env
    system: Be brief.
    max_tokens: 300
    prompt_budget: 8KiB
    timeout: 20s
    retries: {max: 0, base: 1s, cap: 4s}
    rate_limit: {requests_per_second: 1.5, requests_per_minute: 60, tokens_per_minute: 9000}
    breaker: {failures: 7, open_timeout: 45s, half_open_probes: 2}
    heartbeat: {interval: 0, failure_threshold: 4}
  - id: gpt
    provider: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:11434/v1
supervisor:
  processes:
    - name: worker
      command: ./worker
      args: [-v]
      env: {B: "2", A: "1"}
      restart: {policy: always, initial_backoff: 1s, max_backoff: 8s, max_restarts: 3, window: 5m}
      max_log_size: 2MiB
      log_keep: 2
      stop_timeout: 3s
`))
	if err != nil {
		t.Fatal(err)
	}
	got := agentConfigOf(cfg.Agents[0], nil, nil)
	want := agent.Config{
		ID: "coder", Provider: agent.Command, Command: []string{"/etc/nexus/bin/agent", "--json"},
		Key:   agent.KeySource{Env: "CODER_KEY", File: "/etc/nexus/keys.env"},
		Probe: []string{"/etc/nexus/bin/agent", "--ping"}, Dir: "/etc/nexus/work", Env: map[string]string{"LEVEL": "strict"},
		System: "Be brief.", MaxTokens: 300, PromptBudget: 8 << 10, Timeout: 20 * time.Second,
		MaxRetries: -1, RetryBase: time.Second, RetryMax: 4 * time.Second,
		BreakerFailures: 7, BreakerCooldown: 45 * time.Second, BreakerProbes: 2,
		RequestsPerSecond: 1.5, RequestsPerMinute: 60, TokensPerMinute: 9000,
		HeartbeatInterval: -1, HeartbeatFailures: 4,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("command agent:\n got %#v\nwant %#v", got, want)
	}
	got = agentConfigOf(cfg.Agents[1], nil, nil)
	d := config.DefaultAgent()
	if got.MaxRetries != d.Retries.Max || got.HeartbeatInterval != d.Heartbeat.Interval || got.Command != nil ||
		got.BaseURL != "http://127.0.0.1:11434/v1" || got.Key != (agent.KeySource{}) || got.Timeout != d.Timeout {
		t.Errorf("openai agent with defaults: %#v", got)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("mapped config invalid: %v", err)
	}

	spec, _ := processSpec(cfg.Supervisor.Processes[0], "/var/lib/nexus")
	wantSpec := supervisor.Spec{
		Name: "worker", Command: "/etc/nexus/worker", Args: []string{"-v"}, Env: []string{"A=1", "B=2"},
		Policy:     supervisor.Policy{Restart: supervisor.RestartAlways, InitialBackoff: time.Second, MaxBackoff: 8 * time.Second, MaxRestarts: 3, Window: 5 * time.Minute},
		LogDir:     filepath.Join("/var/lib/nexus", "logs"),
		MaxLogSize: 2 << 20, LogKeep: 2, StopTimeout: 3 * time.Second,
	}
	if !reflect.DeepEqual(spec, wantSpec) {
		t.Errorf("process:\n got %#v\nwant %#v", spec, wantSpec)
	}
}
