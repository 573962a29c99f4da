package agent

import (
	"context"
	"time"

	"github.com/nexus-mem/nexus"
)

// Agent is the protocol between the orchestrator and an agent. [Runner]
// (one agent) and [Pool] (several, with failover) implement it.
type Agent interface {
	// ID names the agent in provenance and in its agent_state contexts.
	ID() string
	// Process answers the first context of chain, given the rest as its
	// history. chain is what [nexus.Store.Chain] returns: the context,
	// then its parent, up to the root.
	Process(ctx context.Context, chain []*nexus.Context) (*Response, error)
	// Generate answers a prompt that stands alone.
	Generate(ctx context.Context, prompt string) (*Response, error)
	// State serializes what the agent has learned, for an agent_state
	// checkpoint ([nexus.TypeAgentState]); Restore puts it back.
	State() ([]byte, error)
	Restore(state []byte) error
}

// Response is an agent's answer and where it came from.
type Response struct {
	Content    string     `json:"content"`
	Provenance Provenance `json:"provenance"`
}

// Provenance says who answered a call and at what cost.
type Provenance struct {
	Agent      string        `json:"agent"`       // the agent or pool that was asked
	FinalAgent string        `json:"final_agent"` // the agent that answered
	Model      string        `json:"model"`       // the model that answered, as the provider named it
	TokensIn   int           `json:"tokens_in"`   // prompt tokens, as the provider counted them (estimated if it did not)
	TokensOut  int           `json:"tokens_out"`  // answer tokens, likewise
	Latency    time.Duration `json:"latency_ns"`  // from the call to the answer, waits and failovers included
	Attempts   int           `json:"attempts"`    // requests sent, retries and failovers included
	Trail      []Attempt     `json:"trail"`       // the agents tried, in order; the last one answered
}

// Attempt is what one agent did for a call.
type Attempt struct {
	Agent    string        `json:"agent"`
	Requests int           `json:"requests"`        // requests sent to it; 0 if it was skipped
	Class    Class         `json:"class,omitempty"` // why it failed; empty for the agent that answered
	Error    string        `json:"error,omitempty"`
	Latency  time.Duration `json:"latency_ns"`
}

// Provider sends requests to a model: one attempt each, with no retry
// (the [Runner] around it retries). [NewProvider] makes the built-in ones;
// tests and other backends may implement it.
type Provider interface {
	// Complete sends p and returns the model's answer. Errors should be
	// *Error values with a class; others are classified by [ClassOf].
	Complete(ctx context.Context, p Prompt) (*Completion, error)
	// Heartbeat checks, without spending tokens, that the provider is
	// reachable and accepts the key.
	Heartbeat(ctx context.Context) error
}

// Prompt is what is sent to a model.
type Prompt struct {
	System    string
	Messages  []Message
	MaxTokens int // the most tokens to generate; 0: the provider's default
}

// Message is one turn of a prompt.
type Message struct {
	Role    string `json:"role"` // "user" or "assistant"
	Content string `json:"content"`
}

// Completion is a model's answer to one request.
type Completion struct {
	Content   string
	Model     string // as the provider reported it; empty: the configured one
	TokensIn  int    // 0 if the provider did not say
	TokensOut int
}
