package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/config"
)

// MustParse parses src as the file nexus.yaml in a temporary directory.
func MustParse(tb testing.TB, src string) *config.Config {
	tb.Helper()
	c, err := config.Parse(filepath.Join(tb.TempDir(), "nexus.yaml"), []byte(src))
	if err != nil {
		tb.Fatalf("parse:\n%v", err)
	}
	return c
}

func TestConfig_LoadExample(t *testing.T) {
	path := filepath.Join("..", "docs", "nexus.example.yaml")
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("the example does not load:\n%v", err)
	}
	if len(c.Agents) != 4 || len(c.Pools) != 1 || len(c.Supervisor.Processes) != 1 {
		t.Fatalf("agents %d, pools %d, processes %d; want 4, 1, 1", len(c.Agents), len(c.Pools), len(c.Supervisor.Processes))
	}
	claude := c.Agents[1]
	if claude.Timeout != 2*time.Minute || claude.Retries.Max != 5 || claude.Retries.Cap != time.Minute {
		t.Errorf("claude did not take the merged x-patient values: %+v %+v", claude.Timeout, claude.Retries)
	}
	dir, _ := filepath.Abs(filepath.Join("..", "docs"))
	if want := filepath.Join(dir, "secrets", "anthropic.key"); claude.SecretsFile != want {
		t.Errorf("secrets_file = %q, want %q (relative to the file)", claude.SecretsFile, want)
	}
	if claude.APIKeyEnv != "ANTHROPIC_API_KEY" || claude.MaxTokens != 4096 {
		t.Errorf("claude: api_key_env %q (the default entry in the secrets file), max_tokens %d (4096 set)", claude.APIKeyEnv, claude.MaxTokens)
	}
	if linter := c.Agents[3]; !reflect.DeepEqual(linter.Probe, []string{linter.Command, "--version"}) {
		t.Errorf("command agent probe %q, want the command with --version", linter.Probe)
	}
	if m := c.Pools[0].Members; m[0].Weight != 3 || m[1].Weight != 1 {
		t.Errorf("member weights %d, %d; want 3 (the agent's) and 1", m[0].Weight, m[1].Weight)
	}
	if p := c.Supervisor.Processes[0]; p.MaxLogSize != 10<<20 || p.Restart.Policy != config.RestartOnFailure {
		t.Errorf("process: %+v", p)
	}
	if !reflect.DeepEqual(c.Objectives, config.DefaultObjectives()) {
		t.Errorf("objectives %v, want the defaults the example documents: %v", c.Objectives, config.DefaultObjectives())
	}
}

func TestConfig_Defaults(t *testing.T) {
	t.Run("empty file", func(t *testing.T) {
		c := MustParse(t, "# nothing yet\n")
		want := config.Defaults()
		c.File = ""
		if !reflect.DeepEqual(*c, want) {
			t.Errorf("got %+v\nwant %+v", *c, want)
		}
	})
	t.Run("agents and processes", func(t *testing.T) {
		c := MustParse(t, `
agents:
  - {id: a, provider: anthropic, model: m}
  - {id: o, provider: openai, model: m}
  - {id: local, provider: openai, model: m, base_url: "http://127.0.0.1:8080/v1"}
  - {id: filed, provider: openai, model: m, base_url: "http://127.0.0.1:8080/v1", secrets_file: keys.env}
supervisor:
  processes:
    - {name: p, command: ./bin/agent}
`)
		want := config.DefaultAgent()
		want.ID, want.Provider, want.Model = "a", config.ProviderAnthropic, "m"
		want.BaseURL, want.APIKeyEnv, want.MaxTokens = config.DefaultAnthropicURL, "ANTHROPIC_API_KEY", 1024
		if !reflect.DeepEqual(c.Agents[0], want) {
			t.Errorf("anthropic agent:\n got %+v\nwant %+v", c.Agents[0], want)
		}
		if a := c.Agents[1]; a.BaseURL != config.DefaultOpenAIURL || a.APIKeyEnv != "OPENAI_API_KEY" {
			t.Errorf("openai agent: base_url %q, api_key_env %q", a.BaseURL, a.APIKeyEnv)
		}
		if a := c.Agents[2]; a.APIKeyEnv != "" || a.MaxTokens != 0 {
			t.Errorf("a local endpoint got api_key_env %q, max_tokens %d; want none", a.APIKeyEnv, a.MaxTokens)
		}
		if a := c.Agents[3]; a.APIKeyEnv != "OPENAI_API_KEY" || a.SecretsFile != filepath.Join(filepath.Dir(c.File), "keys.env") {
			t.Errorf("openai with a secrets file: api_key_env %q, secrets_file %q", a.APIKeyEnv, a.SecretsFile)
		}
		p := c.Supervisor.Processes[0]
		wantP := config.DefaultProcess()
		wantP.Name, wantP.Command = "p", filepath.Join(filepath.Dir(c.File), "bin", "agent")
		if !reflect.DeepEqual(p, wantP) {
			t.Errorf("process:\n got %+v\nwant %+v", p, wantP)
		}
	})
}

func TestConfig_ServerTLS(t *testing.T) {
	c := MustParse(t, "server:\n  tls: {cert_file: tls/server.crt, key_file: /etc/nexus/server.key, client_ca_file: ca.pem}\n")
	dir := filepath.Dir(c.File)
	want := config.TLS{CertFile: filepath.Join(dir, "tls", "server.crt"), KeyFile: "/etc/nexus/server.key", ClientCAFile: filepath.Join(dir, "ca.pem")}
	if c.Server.TLS != want {
		t.Errorf("server.tls = %+v, want %+v (relative to the file)", c.Server.TLS, want)
	}
}

func TestConfig_Errors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"duration without unit", `
agents:
  - id: a
    provider: openai
    model: m
  - id: b
    provider: openai
    model: m
    retries:
      max: 2
    capabilities: [x]
    timeout: 5
`, `nexus.yaml:12: agents[1].timeout: "5" is not a duration (e.g. 30s)`},
		{"unknown field", "agents:\n  - {id: a, provider: openai, model: m, temperature: 0.2}\n",
			`nexus.yaml:2: agents[0].temperature: unknown field (known: api_key_env, args, base_url, breaker, capabilities, command, dir, env, heartbeat, id, max_tokens, model, probe, prompt_budget, provider, rate_limit, retries, secrets_file, system, timeout, weight)`},
		{"unknown top-level field", "agent: []\n",
			`nexus.yaml:1: agent: unknown field (known: agents, auth, chaos, cluster, objectives, pools, predict, search, server, supervisor)`},
		{"inline key", "agents:\n  - id: a\n    provider: openai\n    model: m\n    api_key: abc\n",
			`nexus.yaml:5: agents[0].api_key: an API key is never written in the configuration file: name the environment variable that holds it with api_key_env, or a file that holds it with secrets_file`},
		{"key-shaped value", "agents:\n  - {id: a, provider: openai, model: m, api_key_env: sk-proj-abcdefghijklmnopqrstuvwxyz}\n",
			`nexus.yaml:2: agents[0].api_key_env: this looks like an API key: keys are never written in the configuration file (an HTTP agent names the environment variable or the file that holds its key with api_key_env or secrets_file; a process gets only the variables its env lists: pass a key of the server's environment as NAME: ${NAME})`},
		{"credential in env", "agents:\n  - id: c\n    provider: command\n    command: run\n    env:\n      OPENAI_API_KEY: abc\n",
			`nexus.yaml:6: agents[0].env.OPENAI_API_KEY: a credential is never written in the configuration file: set OPENAI_API_KEY in the server's environment and pass it with OPENAI_API_KEY: ${OPENAI_API_KEY}`},
		{"credential in url", "agents:\n  - {id: a, provider: openai, model: m, base_url: 'https://u:p@example.com/v1'}\n",
			`nexus.yaml:2: agents[0].base_url: holds credentials: keys are never written in the configuration file (use api_key_env or secrets_file)`},
		{"duplicate id", "agents:\n  - {id: a, provider: openai, model: m}\n  - {id: a, provider: openai, model: n}\n",
			`nexus.yaml:3: agents[1].id: agent "a" is already defined at agents[0] (line 2)`},
		{"command agent without command", "agents:\n  - id: c\n    provider: command\n",
			`nexus.yaml:2: agents[0].command: required for a command agent (the program to run)`},
		{"command on an http agent", "agents:\n  - {id: a, provider: openai, model: m, command: x}\n",
			`nexus.yaml:2: agents[0].command: only a command agent runs a command (this one is openai)`},
		{"unknown provider", "agents:\n  - {id: a, provider: gemini, model: m}\n",
			`nexus.yaml:2: agents[0].provider: "gemini" is not a provider: openai, anthropic or command`},
		{"model missing", "agents:\n  - {id: a, provider: anthropic}\n",
			`nexus.yaml:2: agents[0].model: required for an anthropic agent`},
		{"command agent with a secrets file but no variable", "agents:\n  - {id: c, provider: command, command: x, secrets_file: k}\n",
			`nexus.yaml:2: agents[0].api_key_env: required with secrets_file for a command agent: the variable its key is passed in`},
		{"query in url", "agents:\n  - {id: a, provider: openai, model: m, base_url: 'https://example.com/v1?key=abc'}\n",
			`nexus.yaml:2: agents[0].base_url: has a query or fragment, where keys hide: keys go in api_key_env or secrets_file`},
		{"bad agent id", "agents:\n  - {id: 'two words', provider: openai, model: m}\n",
			`nexus.yaml:2: agents[0].id: invalid agent_id "two words": want 1-128 of A-Z a-z 0-9 . _ - : @ / +, starting with a letter or digit`},
		{"probe on an http agent", "agents:\n  - {id: a, provider: openai, model: m, probe: [x]}\n",
			`nexus.yaml:2: agents[0].probe: only a command agent runs a command (this one is openai)`},
		{"negative heartbeat", "agents:\n  - {id: a, provider: openai, model: m, heartbeat: {interval: -1s}}\n",
			`nexus.yaml:2: agents[0].heartbeat.interval: must not be negative (0: no heartbeats), not -1s`},
		{"tiny prompt budget", "agents:\n  - {id: a, provider: openai, model: m, prompt_budget: 100}\n",
			`nexus.yaml:2: agents[0].prompt_budget: must be at least 1KiB, not 100B`},
		{"negative retries", "agents:\n  - id: a\n    provider: openai\n    model: m\n    retries: {max: -1}\n",
			`nexus.yaml:5: agents[0].retries.max: must not be negative, not -1`},
		{"negative duration", "agents:\n  - id: a\n    provider: openai\n    model: m\n    breaker:\n      open_timeout: -5s\n",
			`nexus.yaml:6: agents[0].breaker.open_timeout: must be positive, not -5s`},
		{"zero weight", "agents:\n  - {id: a, provider: openai, model: m, weight: 0}\n",
			`nexus.yaml:2: agents[0].weight: must be at least 1, not 0`},
		{"not a number", "agents:\n  - {id: a, provider: openai, model: m, weight: heavy}\n",
			`nexus.yaml:2: agents[0].weight: "heavy" is not a whole number`},
		{"not a list", "agents:\n  - {id: a, provider: openai, model: m, capabilities: code}\n",
			`nexus.yaml:2: agents[0].capabilities: "code" is not a list`},
		{"pool with an unknown agent", "agents:\n  - {id: a, provider: openai, model: m}\npools:\n  - name: p\n    members:\n      - agent: a\n      - agent: b\n",
			`nexus.yaml:7: pools[0].members[1].agent: unknown agent "b" (agents: a)`},
		{"unknown backup", "agents:\n  - {id: a, provider: openai, model: m}\npools:\n  - {name: p, members: [{agent: a}], backups: [z]}\n",
			`nexus.yaml:4: pools[0].backups[0]: unknown agent "z" (agents: a)`},
		{"backup also a member", "agents:\n  - {id: a, provider: openai, model: m}\npools:\n  - {name: p, members: [{agent: a}], backups: [a]}\n",
			`nexus.yaml:4: pools[0].backups[0]: agent "a" is already in this pool`},
		{"pool named like an agent", "agents:\n  - {id: a, provider: openai, model: m}\npools:\n  - {name: a, members: [{agent: a}]}\n",
			`nexus.yaml:4: pools[0].name: "a" is already an agent id: pools and agents share one namespace`},
		{"empty pool", "pools:\n  - name: p\n",
			`nexus.yaml:2: pools[0].members: a pool needs at least one member`},
		{"process without command", "supervisor:\n  processes:\n    - name: p\n",
			`nexus.yaml:3: supervisor.processes[0].command: required: the program to run`},
		{"bad restart policy", "supervisor:\n  processes:\n    - name: p\n      command: x\n      restart: {policy: sometimes}\n",
			`nexus.yaml:5: supervisor.processes[0].restart.policy: "sometimes" is not a restart policy: on-failure, always or never`},
		{"backoff cap below start", "supervisor:\n  processes:\n    - name: p\n      command: x\n      restart:\n        initial_backoff: 1m\n        max_backoff: 1s\n",
			`nexus.yaml:7: supervisor.processes[0].restart.max_backoff: 1s is less than initial_backoff (1m0s)`},
		{"bad size", "supervisor:\n  processes:\n    - {name: p, command: x, max_log_size: 10 parsecs}\n",
			`nexus.yaml:3: supervisor.processes[0].max_log_size: "10 parsecs" is not a size (e.g. 10MiB)`},
		{"duplicate process", "supervisor:\n  processes:\n    - {name: p, command: x}\n    - {name: p, command: y}\n",
			`nexus.yaml:4: supervisor.processes[1].name: process "p" is already defined at supervisor.processes[0] (line 3)`},
		{"bad name", "supervisor:\n  processes:\n    - {name: ../etc, command: x}\n",
			`nexus.yaml:3: supervisor.processes[0].name: "../etc" is not a valid name: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit`},
		{"server limit", "server:\n  max_concurrent_calls: 0\n",
			`nexus.yaml:2: server.max_concurrent_calls: must be at least 1, not 0`},
		{"tls cert without key", "server:\n  tls: {cert_file: server.crt}\n",
			`nexus.yaml:2: server.tls.key_file: required with cert_file`},
		{"tls client CA alone", "server:\n  tls:\n    client_ca_file: ca.pem\n",
			`nexus.yaml:2: server.tls.cert_file: required with client_ca_file: client certificates are asked for over TLS`},
		{"duplicate key", "server:\n  task_lease: 1m\n  task_lease: 2m\n",
			`nexus.yaml:3: mapping key "task_lease" already defined at [2:3]`},
		{"syntax", "agents: [\n",
			`nexus.yaml:1: sequence end token ']' not found`},
		{"two documents", "server: {}\n---\nagents: []\n",
			`nexus.yaml:3: a configuration is one YAML document; this file holds 2`},
		{"alias without anchor", "server:\n  task_lease: *later\nx-later: &later 1m\n",
			`nexus.yaml:2: server.task_lease: alias *later names no anchor defined before it`},
		{"not a mapping", "- a\n- b\n",
			`nexus.yaml:1: a list is not a mapping`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("nexus.yaml", []byte(tc.src))
			if err == nil {
				t.Fatalf("accepted; want %s", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			var es config.Errors
			if !errors.As(err, &es) || len(es) != 1 {
				t.Errorf("error %T with %d entries; want config.Errors with 1", err, len(es))
			}
		})
	}
}

// All problems of a file are reported at once, in file order.
func TestConfig_ManyErrors(t *testing.T) {
	_, err := config.Parse("nexus.yaml", []byte(`
agents:
  - id: a
    provider: openai
    timeout: soon
  - id: b
    provider: command
pools:
  - {name: p, members: [{agent: c}]}
`))
	want := strings.Join([]string{
		`nexus.yaml:5: agents[0].timeout: "soon" is not a duration (e.g. 30s)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("decoding stage: got\n%v\nwant\n%s", err, want)
	}
	_, err = config.Parse("nexus.yaml", []byte(`
agents:
  - id: a
    provider: openai
  - id: b
    provider: command
pools:
  - {name: p, members: [{agent: c}]}
`))
	want = strings.Join([]string{
		`nexus.yaml:3: agents[0].model: required for an openai agent`,
		`nexus.yaml:5: agents[1].command: required for a command agent (the program to run)`,
		`nexus.yaml:8: pools[0].members[0].agent: unknown agent "c" (agents: a, b)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Fatalf("validation stage: got\n%v\nwant\n%s", err, want)
	}
}

// Aliases and merge keys work, and a file whose aliases expand past the
// budget is refused instead of eating the machine.
func TestConfig_Aliases(t *testing.T) {
	c := MustParse(t, `
x-caps: &caps [a, b]
x-env: &env {A: "1"}
agents:
  - id: c
    provider: command
    command: run
    capabilities: *caps
    env: {<<: *env, B: "2"}
`)
	if a := c.Agents[0]; !reflect.DeepEqual(a.Capabilities, []string{"a", "b"}) || !reflect.DeepEqual(a.Env, map[string]string{"A": "1", "B": "2"}) {
		t.Errorf("capabilities %v, env %v", a.Capabilities, a.Env)
	}
	var b strings.Builder
	b.WriteString("x-l0: &l0 [" + strings.Repeat("x,", 9) + "x]\n")
	for i := 1; i < 7; i++ {
		b.WriteString("x-l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" + strings.Repeat("*l"+string(rune('0'+i-1))+",", 9) + "*l" + string(rune('0'+i-1)) + "]\n")
	}
	b.WriteString("agents:\n  - {id: a, provider: command, command: x, args: *l6}\n")
	_, err := config.Parse("nexus.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "agents[0].args") {
		t.Fatalf("got %v; want a refusal of agents[0].args", err)
	}
}

func TestConfig_TooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte("# "+strings.Repeat("x", config.MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v; want a refusal of the size", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v; want ErrNotExist", err)
	}
}

func TestConfig_ParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want config.Size
		bad  bool
	}{
		{"1024", 1024, false}, {"10MiB", 10 << 20, false}, {"1.5 KB", 1500, false}, {"2gib", 2 << 30, false},
		{"10 parsecs", 0, true}, {"MiB", 0, true}, {"1e400", 0, true}, {"99999999999GiB", 0, true},
	} {
		got, err := config.ParseSize(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
	}
	if s := config.Size(10 << 20).String(); s != "10MiB" {
		t.Errorf("String() = %q", s)
	}
}

func TestConfig_EnvReference(t *testing.T) {
	c := MustParse(t, "agents:\n  - id: c\n    provider: command\n    command: run\n    env:\n      OPENAI_API_KEY: ${OPENAI_API_KEY}\n"+
		"supervisor:\n  processes:\n    - name: p\n      command: run\n      env: {HF_TOKEN: '${HF_TOKEN}'}\n")
	if got := c.Agents[0].Env["OPENAI_API_KEY"]; got != "${OPENAI_API_KEY}" {
		t.Fatalf("agent env = %q", got)
	}
	if got := c.Supervisor.Processes[0].Env["HF_TOKEN"]; got != "${HF_TOKEN}" {
		t.Fatalf("process env = %q", got)
	}
}
