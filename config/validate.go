package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/secrets"
)

// isReference reports whether an env value is ${NAME}, the server's
// variable NAME.
func isReference(v string) bool {
	_, ok := secrets.Reference(v)
	return ok
}

const msgKeyValue = "this looks like an API key: keys are never written in the configuration file " +
	"(an HTTP agent names the environment variable or the file that holds its key with api_key_env or secrets_file; " +
	"a process gets only the variables its env lists: pass a key of the server's environment as NAME: ${NAME})"

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	envPattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// isCredentialName reports whether a field name asks for a credential
// written inline (api_key, token, password, ...).
func isCredentialName(key string) bool {
	k := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(key))
	switch k {
	case "key", "authorization", "bearer", "credentials", "credential", "passwd":
		return true
	}
	for _, suffix := range []string{"apikey", "token", "secret", "password", "secretkey", "accesskey"} {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return false
}

// keyPrefixes start the API keys of well-known services.
var keyPrefixes = []string{"sk-", "xai-", "gsk_", "hf_", "ghp_", "gho_", "github_pat_", "glpat-", "xoxb-", "xoxp-", "AKIA", "AIza", "Bearer "}

// looksLikeKey reports whether a value is shaped like a provider's key: a
// known prefix followed by at least 16 key characters.
func looksLikeKey(s string) bool {
	for _, p := range keyPrefixes {
		rest, ok := strings.CutPrefix(s, p)
		if !ok || len(rest) < 16 {
			continue
		}
		if strings.IndexFunc(rest, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		}) < 0 {
			return true
		}
	}
	return false
}

// fill sets the defaults that depend on other fields and makes paths
// absolute.
func (d *decoder) fill(c *Config) {
	weights := map[string]int{}
	for i := range c.Agents {
		a := &c.Agents[i]
		switch a.Provider {
		case ProviderOpenAI:
			if (a.BaseURL == "" && a.APIKeyEnv == "" && a.SecretsFile == "") || (a.SecretsFile != "" && a.APIKeyEnv == "") {
				a.APIKeyEnv = "OPENAI_API_KEY"
			}
			if a.BaseURL == "" {
				a.BaseURL = DefaultOpenAIURL
			}
		case ProviderAnthropic:
			if a.BaseURL == "" {
				a.BaseURL = DefaultAnthropicURL
			}
			if a.APIKeyEnv == "" {
				a.APIKeyEnv = "ANTHROPIC_API_KEY"
			}
			if !d.set(fmt.Sprintf("agents[%d].max_tokens", i)) {
				a.MaxTokens = 1024
			}
		case ProviderCommand:
			if len(a.Probe) == 0 && a.Command != "" {
				a.Probe = []string{a.Command, "--version"}
			}
		}
		a.SecretsFile, a.Dir = d.abs(a.SecretsFile), d.abs(a.Dir)
		if strings.ContainsRune(a.Command, '/') {
			a.Command = d.abs(a.Command)
		}
		if len(a.Probe) > 0 && strings.ContainsRune(a.Probe[0], '/') {
			a.Probe[0] = d.abs(a.Probe[0])
		}
		weights[a.ID] = a.Weight
	}
	for i := range c.Pools {
		for j := range c.Pools[i].Members {
			m := &c.Pools[i].Members[j]
			if !d.set(fmt.Sprintf("pools[%d].members[%d].weight", i, j)) {
				m.Weight = weights[m.Agent]
			}
		}
	}
	c.Supervisor.RunDir = d.abs(c.Supervisor.RunDir)
	t := &c.Server.TLS
	t.CertFile, t.KeyFile, t.ClientCAFile = d.abs(t.CertFile), d.abs(t.KeyFile), d.abs(t.ClientCAFile)
	d.fillAuth(&c.Auth)
	for i := range c.Supervisor.Processes {
		p := &c.Supervisor.Processes[i]
		p.Dir, p.LogDir = d.abs(p.Dir), d.abs(p.LogDir)
		if strings.ContainsRune(p.Command, '/') {
			p.Command = d.abs(p.Command)
		}
	}
}

// abs resolves a path of the file against the file's directory.
func (d *decoder) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.base, p)
}

func (d *decoder) validate(c *Config) {
	d.validateServer(&c.Server)
	ids := map[string]string{} // agent id → path of its first entry
	for i := range c.Agents {
		p := fmt.Sprintf("agents[%d]", i)
		d.validateAgent(p, &c.Agents[i])
		if id := c.Agents[i].ID; id != "" {
			if first, dup := ids[id]; dup {
				d.errorf(p+".id", "agent %q is already defined at %s (line %d)", id, first, d.lineOf(first))
			} else {
				ids[id] = p
			}
		}
	}
	d.validatePools(c.Pools, ids)
	d.validateAuth(&c.Auth)
	d.validateCluster(&c.Cluster)
	d.validateChaos(&c.Chaos)
	d.validateObjectives(c.Objectives)
	d.validatePredict(&c.Predict)
	d.validateSearch(&c.Search)
	names := map[string]string{}
	for i := range c.Supervisor.Processes {
		p := fmt.Sprintf("supervisor.processes[%d]", i)
		d.validateProcess(p, &c.Supervisor.Processes[i])
		if n := c.Supervisor.Processes[i].Name; n != "" {
			if first, dup := names[n]; dup {
				d.errorf(p+".name", "process %q is already defined at %s (line %d)", n, first, d.lineOf(first))
			} else {
				names[n] = p
			}
		}
	}
}

func (d *decoder) validateServer(s *Server) {
	d.atLeast("server.max_concurrent_calls", s.MaxConcurrentCalls, 1)
	d.atLeast("server.max_queued_tasks", s.MaxQueuedTasks, 1)
	d.atLeast("server.max_chain_depth", s.MaxChainDepth, 0)
	d.positive("server.agent_lease", s.AgentLease)
	d.positive("server.task_lease", s.TaskLease)
	t := s.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		d.errorf("server.tls.key_file", "required with cert_file")
	case t.KeyFile != "" && t.CertFile == "":
		d.errorf("server.tls.cert_file", "required with key_file")
	case t.ClientCAFile != "" && t.CertFile == "":
		d.errorf("server.tls.cert_file", "required with client_ca_file: client certificates are asked for over TLS")
	}
}

func (d *decoder) validateAgent(p string, a *Agent) {
	d.agentID(p+".id", a.ID)
	switch a.Provider {
	case ProviderOpenAI, ProviderAnthropic:
		d.validateHTTPAgent(p, a)
	case ProviderCommand:
		if a.Command == "" {
			d.errorf(p+".command", "required for a command agent (the program to run)")
		}
		if d.set(p + ".base_url") {
			d.errorf(p+".base_url", "a command agent has no endpoint")
		}
		if a.SecretsFile != "" && a.APIKeyEnv == "" {
			d.errorf(p+".api_key_env", "required with secrets_file for a command agent: the variable its key is passed in")
		}
		if len(a.Probe) > 0 && a.Probe[0] == "" {
			d.errorf(p+".probe", "the first word is the program to run, and it is empty")
		}
		d.keyEnv(p, a.APIKeyEnv)
	case "":
		d.errorf(p+".provider", "required: openai, anthropic or command")
	default:
		d.errorf(p+".provider", "%q is not a provider: openai, anthropic or command", a.Provider)
	}
	d.env(p+".env", a.Env)
	seen := map[string]bool{}
	for i, c := range a.Capabilities {
		cp := fmt.Sprintf("%s.capabilities[%d]", p, i)
		if !namePattern.MatchString(c) {
			d.errorf(cp, "%q is not a capability name (letters, digits, '.', '_' and '-')", c)
		} else if seen[c] {
			d.errorf(cp, "%q is listed twice", c)
		}
		seen[c] = true
	}
	d.positive(p+".timeout", a.Timeout)
	d.atLeast(p+".retries.max", a.Retries.Max, 0)
	d.positive(p+".retries.base", a.Retries.Base)
	if a.Retries.Cap < a.Retries.Base {
		d.errorf(p+".retries.cap", "%v is less than retries.base (%v)", a.Retries.Cap, a.Retries.Base)
	}
	if a.RateLimit.RequestsPerSecond < 0 {
		d.errorf(p+".rate_limit.requests_per_second", "must not be negative (0: no limit), not %v", a.RateLimit.RequestsPerSecond)
	}
	d.atLeast(p+".rate_limit.requests_per_minute", a.RateLimit.RequestsPerMinute, 0)
	d.atLeast(p+".rate_limit.tokens_per_minute", a.RateLimit.TokensPerMinute, 0)
	d.atLeast(p+".breaker.failures", a.Breaker.Failures, 1)
	d.positive(p+".breaker.open_timeout", a.Breaker.OpenTimeout)
	d.atLeast(p+".breaker.half_open_probes", a.Breaker.HalfOpenProbes, 1)
	if a.Heartbeat.Interval < 0 {
		d.errorf(p+".heartbeat.interval", "must not be negative (0: no heartbeats), not %v", a.Heartbeat.Interval)
	}
	d.atLeast(p+".heartbeat.failure_threshold", a.Heartbeat.FailureThreshold, 1)
	d.atLeast(p+".weight", a.Weight, 1)
	d.atLeast(p+".max_tokens", a.MaxTokens, 0)
	if a.PromptBudget < 1<<10 {
		d.errorf(p+".prompt_budget", "must be at least 1KiB, not %v", a.PromptBudget)
	}
}

func (d *decoder) validateHTTPAgent(p string, a *Agent) {
	if a.Model == "" {
		d.errorf(p+".model", "required for an %s agent", a.Provider)
	}
	for _, f := range []string{"command", "args", "env", "dir", "probe"} {
		if d.set(p + "." + f) {
			d.errorf(p+"."+f, "only a command agent runs a command (this one is %s)", a.Provider)
		}
	}
	u, err := url.Parse(a.BaseURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		d.errorf(p+".base_url", "%q is not an http:// or https:// URL", a.BaseURL)
	case u.User != nil:
		d.errorf(p+".base_url", "holds credentials: keys are never written in the configuration file (use api_key_env or secrets_file)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		d.errorf(p+".base_url", "has a query or fragment, where keys hide: keys go in api_key_env or secrets_file")
	}
	d.keyEnv(p, a.APIKeyEnv)
}

// keyEnv checks the name of the variable holding a key.
func (d *decoder) keyEnv(p, name string) {
	if name != "" && !envPattern.MatchString(name) {
		d.errorf(p+".api_key_env", "%q is not an environment variable name", name)
	}
}

func (d *decoder) validatePools(pools []Pool, agents map[string]string) {
	names := map[string]string{}
	for i, pool := range pools {
		p := fmt.Sprintf("pools[%d]", i)
		d.agentID(p+".name", pool.Name)
		if first, dup := names[pool.Name]; dup && pool.Name != "" {
			d.errorf(p+".name", "pool %q is already defined at %s (line %d)", pool.Name, first, d.lineOf(first))
		} else if _, clash := agents[pool.Name]; clash {
			d.errorf(p+".name", "%q is already an agent id: pools and agents share one namespace", pool.Name)
		} else {
			names[pool.Name] = p
		}
		if len(pool.Members) == 0 {
			d.errorf(p+".members", "a pool needs at least one member")
		}
		in := map[string]bool{}
		for j, m := range pool.Members {
			mp := fmt.Sprintf("%s.members[%d]", p, j)
			d.member(mp+".agent", m.Agent, agents, in)
			if d.set(mp + ".weight") {
				d.atLeast(mp+".weight", m.Weight, 1)
			}
		}
		for j, b := range pool.Backups {
			d.member(fmt.Sprintf("%s.backups[%d]", p, j), b, agents, in)
		}
	}
}

// member checks one agent named in a pool: known, and named once.
func (d *decoder) member(path, id string, agents map[string]string, in map[string]bool) {
	switch {
	case id == "":
		d.errorf(path, "required: the id of an agent")
	case agents[id] == "":
		d.errorf(path, "unknown agent %q (agents: %s)", id, strings.Join(sortedNames(agents), ", "))
	case in[id]:
		d.errorf(path, "agent %q is already in this pool", id)
	}
	in[id] = true
}

func (d *decoder) validateProcess(p string, pr *Process) {
	d.name(p+".name", pr.Name)
	if pr.Command == "" {
		d.errorf(p+".command", "required: the program to run")
	}
	d.env(p+".env", pr.Env)
	r := pr.Restart
	if !slices.Contains([]string{RestartOnFailure, RestartAlways, RestartNever}, r.Policy) {
		d.errorf(p+".restart.policy", "%q is not a restart policy: on-failure, always or never", r.Policy)
	}
	if r.InitialBackoff < 0 {
		d.errorf(p+".restart.initial_backoff", "must not be negative, not %v", r.InitialBackoff)
	}
	d.positive(p+".restart.max_backoff", r.MaxBackoff)
	if r.MaxBackoff > 0 && r.MaxBackoff < r.InitialBackoff {
		d.errorf(p+".restart.max_backoff", "%v is less than initial_backoff (%v)", r.MaxBackoff, r.InitialBackoff)
	}
	d.atLeast(p+".restart.max_restarts", r.MaxRestarts, 0)
	d.positive(p+".restart.window", r.Window)
	if pr.MaxLogSize < 1<<10 {
		d.errorf(p+".max_log_size", "must be at least 1KiB, not %v", pr.MaxLogSize)
	}
	d.atLeast(p+".log_keep", pr.LogKeep, 0)
	d.positive(p+".stop_timeout", pr.StopTimeout)
}

// env checks an environment map: valid names, and no credential written
// as a literal.
func (d *decoder) env(path string, env map[string]string) {
	for name, v := range env {
		p := path + "." + name
		switch {
		case !envPattern.MatchString(name):
			d.errorf(p, "%q is not an environment variable name", name)
		case secrets.IsCredentialName(name) && v != "" && !isReference(v):
			d.errorf(p, "a credential is never written in the configuration file: set %s in the server's environment and pass it with %s: ${%s}", name, name, name)
		}
	}
}

// agentID checks an agent id (or a pool name, which is one).
func (d *decoder) agentID(path, v string) {
	if v == "" {
		d.errorf(path, "required")
		return
	}
	if err := nexus.ValidateAgentID(v); err != nil {
		var e *nexus.Error
		if errors.As(err, &e) {
			err = errors.New(e.Message)
		}
		d.errorf(path, "%v", err)
	}
}

func (d *decoder) name(path, v string) {
	switch {
	case v == "":
		d.errorf(path, "required")
	case !namePattern.MatchString(v):
		d.errorf(path, "%q is not a valid name: letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit", v)
	}
}

func (d *decoder) atLeast(path string, v, min int) {
	if v >= min {
		return
	}
	if v < 0 && min == 0 {
		d.errorf(path, "must not be negative, not %d", v)
		return
	}
	d.errorf(path, "must be at least %d, not %d", min, v)
}

func (d *decoder) positive(path string, v time.Duration) {
	if v <= 0 {
		d.errorf(path, "must be positive, not %v", v)
	}
}

func sortedNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
