package agent

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// Kind is the kind of a provider.
type Kind string

// The providers.
const (
	OpenAI    Kind = "openai"    // an OpenAI-compatible chat completions endpoint
	Anthropic Kind = "anthropic" // the Anthropic Messages API
	Command   Kind = "command"   // a local command, JSON on stdin and stdout
)

// Defaults of [Config] fields left at zero.
const (
	DefaultOpenAIURL         = "https://api.openai.com/v1"
	DefaultAnthropicURL      = "https://api.anthropic.com"
	DefaultOpenAIKeyEnv      = "OPENAI_API_KEY"    // only with the default URL
	DefaultAnthropicKeyEnv   = "ANTHROPIC_API_KEY" // whatever the URL
	DefaultAnthropicTokens   = 1024                // Anthropic requires max_tokens
	DefaultTimeout           = 60 * time.Second
	DefaultMaxRetries        = 3
	DefaultRetryBase         = 500 * time.Millisecond
	DefaultRetryMax          = 30 * time.Second
	DefaultBreakerFailures   = 5
	DefaultBreakerCooldown   = 30 * time.Second
	DefaultBreakerProbes     = 1
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultHeartbeatFailures = 3
)

// Config configures one agent. ID, Provider and, for HTTP providers,
// Model are required; every other zero field takes its default.
//
// Config holds no key in clear: APIKey is a [Secret], and String, %v and
// log output describe the configuration without it.
type Config struct {
	// ID names the agent (see [nexus.ValidateAgentID]).
	ID string
	// Provider is [OpenAI], [Anthropic] or [Command].
	Provider Kind
	// Model is sent with every request; required for openai and
	// anthropic, reported in provenance for command.
	Model string

	// BaseURL is the API root of an HTTP provider: requests go to
	// {BaseURL}/chat/completions and {BaseURL}/models for openai (e.g.
	// http://localhost:11434/v1 for Ollama, https://openrouter.ai/api/v1),
	// {BaseURL}/v1/messages and {BaseURL}/v1/models for anthropic.
	// Defaults: [DefaultOpenAIURL], [DefaultAnthropicURL].
	BaseURL string
	// APIKey is the key itself. When zero it is read from Key at
	// construction.
	APIKey Secret
	// Key says where the key is read. Default: ANTHROPIC_API_KEY for
	// anthropic; OPENAI_API_KEY for openai with the default BaseURL; none
	// otherwise (a local server needs none). A command agent gets its key,
	// if one is configured, in its environment as Key.Env.
	Key KeySource

	// Command is the program and arguments of a command agent. It gets a
	// JSON request on stdin and must write a JSON response on stdout (see
	// the package documentation).
	Command []string
	// Probe is the command run as a command agent's heartbeat; it must
	// exit 0. Default: Command[0] --version.
	Probe []string
	// Dir is the working directory of the command; empty: the server's.
	Dir string
	// Env is the command's environment beyond the minimal one it always
	// gets (PATH, HOME, LANG, LC_* and TZ of the server's environment):
	// nothing else of the server's environment, its token and provider
	// keys included, reaches the command. Its values are never printed.
	Env map[string]string

	// System is the system prompt; [DefaultSystem] for Process when empty.
	System string
	// MaxTokens bounds the answer. 0: [DefaultAnthropicTokens] for
	// anthropic, and not sent for openai and command (OpenAI's reasoning
	// models refuse max_tokens).
	MaxTokens int
	// PromptBudget bounds the rendered chain in bytes (see [BuildPrompt]).
	PromptBudget int

	// Timeout bounds one attempt, reading the answer included. Default 60s.
	Timeout time.Duration
	// MaxRetries is how often a failed attempt is retried: 0 means the
	// default 3, a negative number means never.
	MaxRetries int
	// RetryBase and RetryMax shape the backoff with full jitter: retry n
	// waits a random time up to min(RetryMax, RetryBase·2^(n-1)), or what
	// Retry-After asks for. A Retry-After longer than RetryMax is not
	// waited for: the call fails (and a [Pool] fails over). Defaults 500ms
	// and 30s.
	RetryBase time.Duration
	RetryMax  time.Duration
	// BreakerFailures is how many failed attempts in a row open the
	// circuit breaker; BreakerCooldown how long it stays open before
	// letting probes through; BreakerProbes how many probes are let
	// through, and must succeed, to close it. Defaults 5, 30s and 1.
	BreakerFailures int
	BreakerCooldown time.Duration
	BreakerProbes   int

	// RequestsPerSecond, RequestsPerMinute and TokensPerMinute cap what is
	// sent (0: no cap). Requests per second are spread evenly; requests
	// and tokens per minute are buckets holding a minute's worth. Tokens
	// are estimated before a request and charged as the provider counts
	// them after.
	RequestsPerSecond float64
	RequestsPerMinute int
	TokensPerMinute   int

	// HeartbeatInterval is the time between heartbeats of a [Monitor]
	// (default 30s; negative: no heartbeats). HeartbeatFailures failed
	// heartbeats in a row mark the agent unhealthy (default 3).
	HeartbeatInterval time.Duration
	HeartbeatFailures int

	// OnChange, if set, is called after the agent's condition changes, for
	// instance to restore its state from the last agent_state checkpoint
	// once it is healthy again. It must not block.
	OnChange func(id string, from, to Condition)
	// HTTPClient sends the requests; nil: a client of its own.
	HTTPClient *http.Client
	// Logger receives retries, breaker and condition changes; nil discards.
	Logger *slog.Logger
	// Redactor, if set, learns the agent's key when it is read and cleans
	// every error of the agent (a command's stderr included) of all the
	// secrets it knows, so that no other agent's key or the node's token
	// is quoted back.
	Redactor *nexus.Redactor
}

// String describes c without its key or environment values.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent.Config{ID:%q Provider:%s Model:%q", c.ID, c.Provider, c.Model)
	if c.BaseURL != "" {
		fmt.Fprintf(&b, " BaseURL:%q", redactURL(c.BaseURL))
	}
	if !c.APIKey.IsZero() {
		b.WriteString(" APIKey:set")
	}
	if !c.Key.IsZero() {
		fmt.Fprintf(&b, " Key:%q", c.Key.String())
	}
	if len(c.Command) > 0 {
		fmt.Fprintf(&b, " Command:%q", c.Command)
	}
	if len(c.Env) > 0 {
		names := make([]string, 0, len(c.Env))
		for k := range c.Env {
			names = append(names, k)
		}
		sort.Strings(names)
		fmt.Fprintf(&b, " Env:%s", strings.Join(names, ","))
	}
	fmt.Fprintf(&b, " Timeout:%v MaxRetries:%d}", c.Timeout, c.MaxRetries)
	return b.String()
}

// GoString is String, so that %#v does not print the key either.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the key out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalText is String, so that encoders (JSON, YAML) do not write the
// key either.
func (c Config) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Validate reports the first problem of c as an error with code invalid
// that names the agent and the field.
func (c Config) Validate() error {
	if err := nexus.ValidateAgentID(c.ID); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return nexus.Errorf(nexus.EInvalid, "agent %s: %s", c.ID, fmt.Sprintf(format, args...))
	}
	switch c.Provider {
	case OpenAI, Anthropic:
		if strings.TrimSpace(c.Model) == "" {
			return bad("model is required for provider %s", c.Provider)
		}
		if c.BaseURL != "" {
			if err := checkBaseURL(c.BaseURL); err != nil {
				return bad("%s", err)
			}
		}
		if len(c.Command) > 0 || len(c.Probe) > 0 || c.Dir != "" || len(c.Env) > 0 {
			return bad("command, probe, dir and env are for provider command, not %s", c.Provider)
		}
	case Command:
		if len(c.Command) == 0 || strings.TrimSpace(c.Command[0]) == "" {
			return bad("command is required for provider command")
		}
		if len(c.Probe) > 0 && strings.TrimSpace(c.Probe[0]) == "" {
			return bad("probe has an empty program name")
		}
		if c.BaseURL != "" {
			return bad("base_url is for providers openai and anthropic, not command")
		}
		for k := range c.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return bad("env has an invalid variable name %q", k)
			}
		}
	case "":
		return bad("provider is required: one of openai, anthropic, command")
	default:
		return bad("unknown provider %q: want one of openai, anthropic, command", c.Provider)
	}
	return c.validateNumbers(bad)
}

func (c Config) validateNumbers(bad func(string, ...any) error) error {
	for _, f := range []struct {
		name  string
		value float64
	}{
		{"max_tokens", float64(c.MaxTokens)}, {"prompt_budget", float64(c.PromptBudget)},
		{"timeout", float64(c.Timeout)}, {"retry base", float64(c.RetryBase)}, {"retry cap", float64(c.RetryMax)},
		{"breaker failures", float64(c.BreakerFailures)}, {"breaker cooldown", float64(c.BreakerCooldown)},
		{"breaker probes", float64(c.BreakerProbes)}, {"requests_per_second", c.RequestsPerSecond},
		{"requests_per_minute", float64(c.RequestsPerMinute)}, {"tokens_per_minute", float64(c.TokensPerMinute)},
		{"heartbeat failures", float64(c.HeartbeatFailures)},
	} {
		if f.value < 0 || math.IsNaN(f.value) || math.IsInf(f.value, 0) {
			return bad("%s is negative or not a number", f.name)
		}
	}
	if c.RetryMax > 0 && c.RetryBase > c.RetryMax {
		return bad("retry base %v exceeds the retry cap %v", c.RetryBase, c.RetryMax)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults. It does
// not read the key.
func (c Config) withDefaults() Config {
	c.Model = strings.TrimSpace(c.Model)
	switch c.Provider {
	case OpenAI:
		if (c.BaseURL == "" && c.Key.IsZero()) || (c.Key.File != "" && c.Key.Env == "") {
			c.Key.Env = DefaultOpenAIKeyEnv
		}
		c.BaseURL = cmp.Or(c.BaseURL, DefaultOpenAIURL)
	case Anthropic:
		c.BaseURL = cmp.Or(c.BaseURL, DefaultAnthropicURL)
		c.MaxTokens = cmp.Or(c.MaxTokens, DefaultAnthropicTokens)
		if c.Key.Env == "" {
			c.Key.Env = DefaultAnthropicKeyEnv
		}
	case Command:
		if len(c.Probe) == 0 && len(c.Command) > 0 {
			c.Probe = []string{c.Command[0], "--version"}
		}
	}
	c.PromptBudget = cmp.Or(c.PromptBudget, DefaultPromptBudget)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.MaxRetries = max(cmp.Or(c.MaxRetries, DefaultMaxRetries), 0)
	c.RetryBase = cmp.Or(c.RetryBase, DefaultRetryBase)
	c.RetryMax = cmp.Or(c.RetryMax, max(DefaultRetryMax, c.RetryBase))
	c.BreakerFailures = cmp.Or(c.BreakerFailures, DefaultBreakerFailures)
	c.BreakerCooldown = cmp.Or(c.BreakerCooldown, DefaultBreakerCooldown)
	c.BreakerProbes = cmp.Or(c.BreakerProbes, DefaultBreakerProbes)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.HeartbeatFailures = cmp.Or(c.HeartbeatFailures, DefaultHeartbeatFailures)
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Command, c.Probe = slices.Clone(c.Command), slices.Clone(c.Probe)
	return c
}

// checkBaseURL accepts an http or https URL with a host and no query or
// fragment (where a key might hide).
func checkBaseURL(base string) error {
	u, err := url.Parse(strings.TrimSpace(base))
	switch {
	case err != nil:
		return fmt.Errorf("base_url does not parse as a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("base_url %q is not http or https", redactURL(base))
	case u.Host == "":
		return fmt.Errorf("base_url %q has no host", redactURL(base))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("base_url %q has a query or fragment; put keys in the key source, not the URL", redactURL(base))
	}
	return nil
}

// redactURL returns s with any password replaced and without its query
// and fragment, or "(unparsable URL)".
func redactURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "(unparsable URL)"
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	return u.Redacted()
}
