package agent

import (
	"encoding/json"
	"time"

	"github.com/nexus-mem/nexus"
)

// stateVersion is the version of the state format written by State.
const stateVersion = 1

// memory is what an agent keeps across restarts.
type memory struct {
	Answers     int64     `json:"answers"`
	TokensIn    int64     `json:"tokens_in"`
	TokensOut   int64     `json:"tokens_out"`
	LastContext nexus.ID  `json:"last_context,omitzero"`
	LastAnswer  time.Time `json:"last_answer,omitzero"`
}

// runnerState is the JSON of [Runner.State].
type runnerState struct {
	Version  int    `json:"version"`
	Agent    string `json:"agent"`
	Provider Kind   `json:"provider,omitempty"`
	Model    string `json:"model,omitempty"`
	memory
	// ProviderState is what a command agent returned as its state.
	ProviderState json.RawMessage `json:"provider_state,omitempty"`
}

// poolState is the JSON of [Pool.State]: its members' states by id.
type poolState struct {
	Version int                        `json:"version"`
	Pool    string                     `json:"pool"`
	Members map[string]json.RawMessage `json:"members"`
}

// stateful is a provider with a state of its own (a command agent's).
type stateful interface {
	providerState() json.RawMessage
	restoreProvider(json.RawMessage)
}

// remember records an answer to q.
func (r *Runner) remember(q request, comp *Completion) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mem.Answers++
	r.mem.TokensIn += int64(comp.TokensIn)
	r.mem.TokensOut += int64(comp.TokensOut)
	r.mem.LastAnswer = time.Now().UTC()
	if len(q.chain) > 0 {
		r.mem.LastContext = q.chain[0].ID
	}
}

// State returns the agent's state as JSON: the answers it gave, the
// tokens they took, the last context it answered and, for a command agent,
// the state its command returned. It is what an agent_state checkpoint
// holds.
func (r *Runner) State() ([]byte, error) {
	s := runnerState{Version: stateVersion, Agent: r.id, Provider: r.cfg.Provider, Model: r.cfg.Model}
	r.mu.Lock()
	s.memory = r.mem
	r.mu.Unlock()
	if p, ok := r.engine.Load().provider.(stateful); ok {
		s.ProviderState = p.providerState()
	}
	return json.Marshal(s)
}

// Restore puts back a state from [Runner.State]. A state of another agent
// or format version is refused with code invalid, and nothing changes.
func (r *Runner) Restore(state []byte) error {
	s, err := r.parseState(state)
	if err != nil {
		return err
	}
	r.applyState(s)
	return nil
}

func (r *Runner) parseState(state []byte) (runnerState, error) {
	var s runnerState
	if err := json.Unmarshal(state, &s); err != nil {
		return s, nexus.Errorf(nexus.EInvalid, "agent %s: the state is not an agent state: %v", r.id, err)
	}
	if s.Version != stateVersion {
		return s, nexus.Errorf(nexus.EInvalid, "agent %s: state version %d, want %d", r.id, s.Version, stateVersion)
	}
	if s.Agent != r.id {
		return s, nexus.Errorf(nexus.EInvalid, "agent %s: the state is agent %q's", r.id, clip(s.Agent, 128))
	}
	return s, nil
}

func (r *Runner) applyState(s runnerState) {
	r.mu.Lock()
	r.mem = s.memory
	r.mu.Unlock()
	if p, ok := r.engine.Load().provider.(stateful); ok {
		p.restoreProvider(s.ProviderState)
	}
}
