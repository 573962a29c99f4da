package config

import (
	"fmt"
	"io"
	"os"
	"time"
)

// Providers of an agent.
const (
	ProviderOpenAI    = "openai"    // an OpenAI-compatible chat completions endpoint
	ProviderAnthropic = "anthropic" // the Anthropic Messages API
	ProviderCommand   = "command"   // a local command, JSON on stdin and stdout
)

// Restart policies of a supervised process.
const (
	RestartOnFailure = "on-failure" // restart after a non-zero exit or a signal
	RestartAlways    = "always"     // also restart after a clean exit
	RestartNever     = "never"      // run once
)

// MaxFileSize is the largest configuration file Load reads.
const MaxFileSize = 1 << 20

// Config is a node's configuration for agent work.
type Config struct {
	Server     Server     `yaml:"server"`
	Agents     []Agent    `yaml:"agents"`
	Pools      []Pool     `yaml:"pools"`
	Supervisor Supervisor `yaml:"supervisor"`
	Auth       Auth       `yaml:"auth"`
	Cluster    Cluster    `yaml:"cluster"`
	Chaos      Chaos      `yaml:"chaos"`
	// Objectives are the recovery time objectives `nexus drill` checks
	// (default: DefaultObjectives).
	Objectives Objectives `yaml:"objectives"`
	Predict    Predict    `yaml:"predict"`
	// Search chooses the search index's embedder.
	Search Search `yaml:"search"`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
}

// Server holds the node's limits for agent work.
type Server struct {
	// MaxConcurrentCalls bounds the agent calls in flight on the node
	// (default 64).
	MaxConcurrentCalls int `yaml:"max_concurrent_calls"`
	// MaxQueuedTasks bounds the tasks waiting in the queue; a task posted
	// past it is refused (default 10000).
	MaxQueuedTasks int `yaml:"max_queued_tasks"`
	// MaxChainDepth is how many ancestors of a context go into a prompt
	// (default 32).
	MaxChainDepth int `yaml:"max_chain_depth"`
	// AgentLease is how long an external agent stays registered without a
	// heartbeat (default 30s).
	AgentLease time.Duration `yaml:"agent_lease"`
	// TaskLease is how long a claimed task stays with its agent without a
	// renewal (default 5m).
	TaskLease time.Duration `yaml:"task_lease"`
	// TLS is the certificate the node serves HTTPS with; the flags of
	// `nexus serve` win over it.
	TLS TLS `yaml:"tls"`
}

// TLS names the PEM files of the node's HTTPS (paths relative to the
// configuration file's directory); all empty: plain HTTP.
type TLS struct {
	// CertFile is the certificate chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the private key of the leaf.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, if set, holds the CA certificates clients must present
	// a certificate of (mutual TLS).
	ClientCAFile string `yaml:"client_ca_file"`
}

// Cluster makes the node a member of a cluster (docs/CLUSTER.md). The
// flags of `nexus serve` win over it, field by field: a flag (or its
// environment variable) left out takes the file's value.
type Cluster struct {
	// NodeID names the node in its cluster (1-64 of A-Z a-z 0-9 . _ -);
	// without it the node is a single node and the other fields are
	// refused.
	NodeID string `yaml:"node_id"`
	// RaftAddr is where the node listens for its peers (host:port);
	// RaftAdvertise the address they dial, if not RaftAddr.
	RaftAddr      string `yaml:"raft_addr"`
	RaftAdvertise string `yaml:"raft_advertise"`
	// APIURL is the node's API as its peers reach it (default
	// http(s)://ADDR).
	APIURL string `yaml:"api_url"`
	// Bootstrap makes a new cluster of this node alone when it has no
	// raft state yet.
	Bootstrap bool `yaml:"bootstrap"`
	// Join lists the API URLs of members a node with no raft state asks
	// to add it.
	Join []string `yaml:"join"`
	// Timeouts are raft's failure detection: default or fast.
	Timeouts string `yaml:"timeouts"`
	// PeerTLS secures raft and the forwarding of requests with the node's
	// certificate; peers must present one of the client CA.
	PeerTLS bool `yaml:"peer_tls"`
}

// Raft timeouts of a cluster.
const (
	TimeoutsDefault = "default" // a lost leader noticed within 0.5–1 s
	TimeoutsFast    = "fast"    // within 0.25–0.5 s, on a quiet local network
	TimeoutsRaft    = "raft"    // hashicorp/raft's own (1 s): the most patient
)

// Agent is one LLM worker the node can call.
type Agent struct {
	// ID names the agent in the API and in provenance (the rules of
	// nexus.ValidateAgentID).
	ID string `yaml:"id"`
	// Provider is openai, anthropic or command.
	Provider string `yaml:"provider"`
	// BaseURL is the endpoint of an HTTP provider (default
	// https://api.openai.com/v1 for openai, https://api.anthropic.com for
	// anthropic).
	BaseURL string `yaml:"base_url"`
	// Model is the model asked for; required for openai and anthropic,
	// recorded in provenance for command.
	Model string `yaml:"model"`
	// APIKeyEnv names the variable holding the key: in the environment,
	// or in SecretsFile when that is set. Default: ANTHROPIC_API_KEY for
	// anthropic; OPENAI_API_KEY for openai when base_url is left out or a
	// secrets file is named; none otherwise (a local server). A command
	// agent gets its key in its environment under this name.
	APIKeyEnv string `yaml:"api_key_env"`
	// SecretsFile is a file holding the key: the key alone, KEY=value
	// lines or a JSON object (APIKeyEnv names the entry); it is read when
	// the agent is built, never here.
	SecretsFile string `yaml:"secrets_file"`
	// Command, Args, Env and Dir run a command agent; the process gets only
	// PATH, HOME, LANG, LC_* and TZ of the server's environment, Env (a
	// value ${NAME} is the server's variable NAME) and its key.
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	// Probe is a command agent's heartbeat, a command that must exit 0
	// (default: the command with --version).
	Probe []string `yaml:"probe"`
	// System is the system prompt (empty: the built-in one).
	System string `yaml:"system"`
	// MaxTokens bounds an answer (default 1024 for anthropic, which
	// requires it; 0: not sent).
	MaxTokens int `yaml:"max_tokens"`
	// PromptBudget bounds the context chain rendered into a prompt
	// (default 64KiB).
	PromptBudget Size `yaml:"prompt_budget"`
	// Capabilities are what the agent is routed for (e.g. summarize,
	// code); a request for a capability goes to any agent that has it.
	Capabilities []string `yaml:"capabilities"`
	// Timeout bounds one call, including reading the answer (default 60s).
	Timeout time.Duration `yaml:"timeout"`
	// Retries of a failed call.
	Retries Retries `yaml:"retries"`
	// RateLimit caps the calls and tokens sent to the agent.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Breaker is the agent's circuit breaker.
	Breaker Breaker `yaml:"breaker"`
	// Heartbeat is how the agent's health is checked between calls.
	Heartbeat Heartbeat `yaml:"heartbeat"`
	// Weight is the agent's share in a pool that gives it no weight of its
	// own (default 1).
	Weight int `yaml:"weight"`
}

// Retries is exponential backoff with full jitter between attempts.
type Retries struct {
	// Max is the number of retries after the first attempt (default 3;
	// 0: never retry).
	Max int `yaml:"max"`
	// Base is the ceiling of the first delay (default 500ms).
	Base time.Duration `yaml:"base"`
	// Cap is the ceiling of every delay, Retry-After included (default 30s).
	Cap time.Duration `yaml:"cap"`
}

// RateLimit caps what is sent to an agent; 0 means no cap.
type RateLimit struct {
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	RequestsPerMinute int     `yaml:"requests_per_minute"`
	TokensPerMinute   int     `yaml:"tokens_per_minute"`
}

// Breaker is a circuit breaker: closed, open after Failures consecutive
// failures, half-open after OpenTimeout.
type Breaker struct {
	// Failures in a row that open the breaker (default 5).
	Failures int `yaml:"failures"`
	// OpenTimeout is how long it stays open before probing (default 30s).
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// HalfOpenProbes are the calls let through while half-open; that many
	// successes close it (default 1).
	HalfOpenProbes int `yaml:"half_open_probes"`
}

// Heartbeat is a health check that costs no tokens: the models endpoint
// of an HTTP provider, process liveness for a command.
type Heartbeat struct {
	// Interval between checks (default 30s; 0: no heartbeats).
	Interval time.Duration `yaml:"interval"`
	// FailureThreshold is the consecutive failed checks that mark the
	// agent down (default 3).
	FailureThreshold int `yaml:"failure_threshold"`
}

// Pool spreads calls over agents by weighted round robin and fails over
// to its backups, in order, when no member can answer.
type Pool struct {
	// Name names the pool; it shares the namespace of agent ids.
	Name    string   `yaml:"name"`
	Members []Member `yaml:"members"`
	Backups []string `yaml:"backups"`
}

// Member is an agent in a pool.
type Member struct {
	Agent string `yaml:"agent"`
	// Weight is the member's share (default: the agent's weight).
	Weight int `yaml:"weight"`
}

// Supervisor lists the local processes the node runs and restarts.
type Supervisor struct {
	// RunDir holds the pid files (default: chosen by the server).
	RunDir    string    `yaml:"run_dir"`
	Processes []Process `yaml:"processes"`
}

// Process is one supervised command.
type Process struct {
	// Name names the process in status and in file names; same rules as
	// an agent id.
	Name    string   `yaml:"name"`
	Command string   `yaml:"command"`
	Args    []string `yaml:"args"`
	// Env is the process's environment beyond PATH, HOME, LANG, LC_* and
	// TZ of the server's; a value ${NAME} is the server's variable NAME.
	Env map[string]string `yaml:"env"`
	// Dir is the working directory (default: the server's).
	Dir     string  `yaml:"dir"`
	Restart Restart `yaml:"restart"`
	// LogDir receives NAME.log, stdout and stderr together (default:
	// chosen by the server).
	LogDir string `yaml:"log_dir"`
	// MaxLogSize is the size at which NAME.log is rotated (default 10 MiB).
	MaxLogSize Size `yaml:"max_log_size"`
	// LogKeep is how many rotated files are kept besides NAME.log
	// (default 5).
	LogKeep int `yaml:"log_keep"`
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL
	// (default 10s).
	StopTimeout time.Duration `yaml:"stop_timeout"`
}

// Restart is a restart policy with exponential backoff.
type Restart struct {
	// Policy is on-failure (default), always or never.
	Policy string `yaml:"policy"`
	// InitialBackoff is the delay before the first restart; it doubles with
	// each restart inside Window (default 100ms).
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	// MaxBackoff caps the delay (default 30s).
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxRestarts within Window, after which the process is given up
	// (default 5).
	MaxRestarts int `yaml:"max_restarts"`
	// Window is the sliding window restarts are counted in (default 1m).
	Window time.Duration `yaml:"window"`
}

// Defaults is a configuration with every default and nothing configured;
// the defaults of list entries are shown by DefaultAgent and
// DefaultProcess.
func Defaults() Config {
	return Config{Server: Server{
		MaxConcurrentCalls: 64, MaxQueuedTasks: 10000, MaxChainDepth: 32,
		AgentLease: 30 * time.Second, TaskLease: 5 * time.Minute,
	}, Chaos: Chaos{DiskFloor: DefaultDiskFloor}, Objectives: DefaultObjectives()}
}

// DefaultAgent is an agent entry before the file's fields are applied.
// Defaults that depend on the provider (base_url, api_key_env) are filled
// in afterwards.
func DefaultAgent() Agent {
	return Agent{
		Timeout:      60 * time.Second,
		PromptBudget: 64 << 10,
		Retries:      Retries{Max: 3, Base: 500 * time.Millisecond, Cap: 30 * time.Second},
		Breaker:      Breaker{Failures: 5, OpenTimeout: 30 * time.Second, HalfOpenProbes: 1},
		Heartbeat:    Heartbeat{Interval: 30 * time.Second, FailureThreshold: 3},
		Weight:       1,
	}
}

// DefaultProcess is a supervised process entry before the file's fields
// are applied.
func DefaultProcess() Process {
	return Process{
		Restart: Restart{
			Policy: RestartOnFailure, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second,
			MaxRestarts: 5, Window: time.Minute,
		},
		MaxLogSize: 10 << 20, LogKeep: 5, StopTimeout: 10 * time.Second,
	}
}

// Default base URLs of the HTTP providers.
const (
	DefaultOpenAIURL    = "https://api.openai.com/v1"
	DefaultAnthropicURL = "https://api.anthropic.com"
)

// Load reads, decodes and validates the configuration file at path.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, Errors{{File: path, Msg: fmt.Sprintf("the file is larger than %d bytes", MaxFileSize)}}
	}
	return Parse(path, data)
}

// Parse decodes and validates a configuration held in memory; name is the
// file's path, used in messages and to resolve relative paths.
func Parse(name string, data []byte) (*Config, error) {
	d, err := newDecoder(name)
	if err != nil {
		return nil, err
	}
	c := Defaults()
	c.File = name
	d.decodeFile(data, &c)
	if len(d.errs) == 0 {
		d.fill(&c)
		d.validate(&c)
	}
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	return &c, nil
}
