package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/metrics"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/supervisor"
	"github.com/nexus-mem/nexus/tasks"
)

// The agents component of /health and of the cascading recovery: the
// node's own agents (their monitor), the supervised processes and the
// external agents of the task queue, and what the cascade does about
// each (see docs/RECOVERY.md).

// CheckHealth is the agents component: the worst of its three parts, or
// disabled when the node has no agents, supervises no process and no
// external agent ever registered. Details hold the three parts' details.
func (na *nodeAgents) CheckHealth(ctx context.Context) nexus.ComponentHealth {
	out := nexus.ComponentHealth{Status: nexus.StatusDisabled, Details: map[string]any{}, Timestamp: time.Now().UTC()}
	var problems []string
	for _, h := range []nexus.ComponentHealth{na.monitor.CheckHealth(ctx), na.processHealth(ctx), na.externalHealth()} {
		for k, v := range h.Details {
			out.Details[k] = v
		}
		if h.Status == nexus.StatusDisabled {
			continue
		}
		if out.Status == nexus.StatusDisabled || nexus.Rank(h.Status) > nexus.Rank(out.Status) {
			out.Status = h.Status
		}
		if h.Error != "" {
			problems = append(problems, h.Error)
		}
	}
	out.Error = strings.Join(problems, "; ")
	return out
}

// processHealth is the supervisor's health with each process's restarts
// since the node started (on a node of a cluster: since it leads);
// unhealthy when the processes could not be started as the node began
// to lead.
func (na *nodeAgents) processHealth(ctx context.Context) nexus.ComponentHealth {
	na.mu.Lock()
	set, err := na.procs, na.procsErr
	na.mu.Unlock()
	if err != nil {
		return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: err.Error()}
	}
	if set == nil {
		return nexus.ComponentHealth{Status: nexus.StatusDisabled}
	}
	h := set.sup.CheckHealth(ctx)
	if h.Details == nil {
		h.Details = map[string]any{}
	}
	h.Details["processes"] = set.status()
	return h
}

// externalHealth reports the external agents and the tasks by state:
// degraded while tasks wait and no external agent is active. A lost
// agent alone is no problem (an agent that ended its session stops
// heartbeating too); its claims went back to the queue. A node of a
// cluster reports them while it leads (its queue is the one served).
func (na *nodeAgents) externalHealth() nexus.ComponentHealth {
	if !na.servesQueue() {
		return nexus.ComponentHealth{Status: nexus.StatusDisabled}
	}
	fig := na.externalFigures()
	h := nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{
		"external_agents": map[string]int{tasks.Active: fig.Active, tasks.Lost: fig.Lost}, "tasks": fig.Tasks,
	}}
	switch {
	case fig.Active+fig.Lost == 0:
		h.Status = nexus.StatusDisabled
	case fig.Active == 0 && fig.Tasks[tasks.Queued] > 0:
		h.Status = nexus.StatusDegraded
		h.Error = fmt.Sprintf("queued tasks: %d, and no external agent is active (%d lost)", fig.Tasks[tasks.Queued], fig.Lost)
	}
	return h
}

// component is the agents layer of the cascade. It is not critical: the
// cascade goes on whatever it finds.
func (na *nodeAgents) component() recovery.Component {
	return recovery.Component{Name: nexus.ComponentAgents, Health: nexus.HealthFunc(na.CheckHealth),
		Failing: na.failing, Recover: na.recover}
}

// failing lists what the cascade has to act on or to report: an agent
// whose key was rejected (once, or again when its key changed), an
// unhealthy agent whose state it has not restored in this outage, a
// process given up that it has not dealt with.
func (na *nodeAgents) failing(context.Context, nexus.ComponentHealth) string {
	var why []string
	for _, st := range na.monitor.Status() {
		o := na.outage(st.Agent)
		switch {
		case st.Condition == agent.AuthFailed && na.keys[st.Agent].changed():
			why = append(why, fmt.Sprintf("agent %s is auth_failed and its key changed since", st.Agent))
		case st.Condition == agent.AuthFailed && (o == nil || !o.isReported()):
			why = append(why, fmt.Sprintf("agent %s is auth_failed: %s", st.Agent, st.LastError))
		case st.Condition == agent.Unhealthy && (o == nil || !o.isRestored()):
			why = append(why, fmt.Sprintf("agent %s is unhealthy (breaker %s): %s", st.Agent, st.Breaker, st.LastError))
		}
	}
	if set := na.processSet(); set != nil {
		for _, p := range set.status() {
			if p.State == supervisor.StateFailed && !set.isReported(p) {
				why = append(why, fmt.Sprintf("process %s was given up: %s", p.Name, p.Reason))
			}
		}
	}
	return strings.Join(why, "; ")
}

// recover does what the node can for its agents without an operator:
//   - an unhealthy agent's state is restored from the agent_state
//     checkpoint written when it failed (its calls already fail over, and
//     the monitor's half-open probe brings it back);
//   - an auth_failed agent is not reset blindly, its key was rejected: it
//     is reset only when its key source now holds another key (a secrets
//     file that was fixed), and reported otherwise;
//   - a process the supervisor gave up is restarted once per node run;
//     given up again, it is reported.
//
// It returns an error, naming what needs the operator, when anything is
// left.
func (na *nodeAgents) recover(ctx context.Context) (string, error) {
	var did, left []string
	for _, st := range na.monitor.Status() {
		r := na.runner(st.Agent)
		o := na.outage(st.Agent)
		switch st.Condition {
		case agent.AuthFailed:
			if o != nil && o.isReported() && !na.keys[st.Agent].changed() {
				continue // reported already: /health keeps saying it
			}
			msg, err := na.recoverAuth(r, st)
			if err != nil {
				left = append(left, err.Error())
			} else {
				did = append(did, msg)
			}
		case agent.Unhealthy:
			if o == nil || !o.isRestored() {
				did = append(did, na.recoverUnhealthy(ctx, r, st))
			}
		}
	}
	if set := na.processSet(); set != nil {
		for _, p := range set.status() {
			if p.State != supervisor.StateFailed || set.isReported(p) {
				continue
			}
			set.markReported(p)
			if err := set.restartOnce(p); err != nil {
				left = append(left, fmt.Sprintf("process %s was given up (%s) and not restarted: %v; see %s",
					p.Name, p.Reason, err, filepath.Join(set.specs[p.Name].LogDir, p.Name+".log")))
				continue
			}
			did = append(did, fmt.Sprintf("process %s, given up (%s), restarted (once per node run)", p.Name, p.Reason))
		}
	}
	if len(left) > 0 {
		return "", errors.New(strings.Join(append(did, left...), "; "))
	}
	return strings.Join(did, "; "), nil
}

// recoverAuth resets an auth_failed agent whose key changed, or reports it.
func (na *nodeAgents) recoverAuth(r *agent.Runner, st agent.Status) (string, error) {
	k := na.keys[st.Agent]
	if k.changed() {
		if err := k.reset(r); err != nil {
			return "", fmt.Errorf("agent %s: its key changed but the reset failed: %s", st.Agent, nexus.ErrorMessage(err))
		}
		return fmt.Sprintf("agent %s: its key changed since it was rejected: reset, calls resume", st.Agent), nil
	}
	na.beginOutage(r, agent.AuthFailed).markReported()
	return "", fmt.Errorf("agent %s is auth_failed (%s): not reset, the same key would be rejected again; %s",
		st.Agent, st.LastError, k.advice())
}

// recoverUnhealthy restores an unhealthy agent's state and says where its
// calls go meanwhile.
func (na *nodeAgents) recoverUnhealthy(ctx context.Context, r *agent.Runner, st agent.Status) string {
	o := na.beginOutage(r, agent.Unhealthy) // the outage recorded when it failed
	msg, err := na.restoreFrom(ctx, r, o)
	if err != nil {
		msg = "state not restored: " + err.Error()
	}
	o.markRestored()
	return fmt.Sprintf("agent %s, unhealthy (breaker %s): %s; %s", st.Agent, st.Breaker, msg, na.failover(st.Agent))
}

// failover says where the calls of an agent that cannot answer go.
func (na *nodeAgents) failover(id string) string {
	var pools []string
	if na.cfg != nil {
		for _, p := range na.cfg.Pools {
			for _, m := range p.Members {
				if m.Agent == id {
					pools = append(pools, p.Name)
				}
			}
			for _, b := range p.Backups {
				if b == id {
					pools = append(pools, p.Name)
				}
			}
		}
	}
	probe := "the heartbeat after the breaker's open timeout probes it back"
	if a := na.configOf(id); a != nil && a.Heartbeat.Interval == 0 {
		probe = "the first call after the breaker's open timeout probes it back (it has no heartbeat)"
	}
	if len(pools) == 0 {
		return "calls to it fail at once (unavailable) meanwhile; " + probe
	}
	return fmt.Sprintf("the calls of pool %s fail over to its other members meanwhile; %s", strings.Join(pools, ", "), probe)
}

func (na *nodeAgents) configOf(id string) *config.Agent {
	if na.cfg == nil {
		return nil
	}
	for i := range na.cfg.Agents {
		if na.cfg.Agents[i].ID == id {
			return &na.cfg.Agents[i]
		}
	}
	return nil
}

// outage is what the node keeps of an agent while it cannot answer
// (unhealthy or auth_failed): its state when it failed, checkpointed at
// once, so that restoring it loses nothing.
type outage struct {
	state    []byte        // the agent's state when it failed
	requests uint64        // the requests it had sent then
	saved    chan struct{} // closed once the checkpoint ended
	savedErr error         // set before saved is closed

	// mu guards restored and reported.
	mu       sync.Mutex
	restored bool // the cascade restored its state
	reported bool // the cascade reported it auth_failed
}

func (o *outage) isRestored() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.restored }
func (o *outage) isReported() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.reported }
func (o *outage) markRestored()    { o.mu.Lock(); o.restored = true; o.mu.Unlock() }
func (o *outage) markReported()    { o.mu.Lock(); o.reported = true; o.mu.Unlock() }

// outage returns the record of an agent's current outage, or nil.
func (na *nodeAgents) outage(id string) *outage {
	na.mu.Lock()
	defer na.mu.Unlock()
	return na.outages[id]
}

// beginOutage records an agent that can no longer answer and checkpoints
// its state in the background. A second condition in the same outage
// (unhealthy, then auth_failed) keeps the first record. It returns the
// outage's record.
func (na *nodeAgents) beginOutage(r *agent.Runner, to agent.Condition) *outage {
	na.mu.Lock()
	if o, ok := na.outages[r.ID()]; ok {
		na.mu.Unlock()
		return o
	}
	state, _ := r.State()
	o := &outage{state: state, requests: r.Status().Requests, saved: make(chan struct{})}
	na.outages[r.ID()] = o
	na.mu.Unlock()
	if na.orch == nil {
		o.savedErr = errors.New("the node's agents are not started")
		close(o.saved)
		return o
	}
	na.bg.Add(1)
	go func() {
		defer na.bg.Done()
		defer close(o.saved)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if o.savedErr = na.orch.Checkpoint(ctx, r.ID()); o.savedErr != nil {
			na.log.Warn("agent state checkpoint at its failure failed", "agent", r.ID(), "condition", string(to), "err", o.savedErr)
		}
	}()
	return o
}

// endOutage restores, in the background, the state of an agent that can
// answer again.
func (na *nodeAgents) endOutage(r *agent.Runner) {
	na.mu.Lock()
	o := na.outages[r.ID()]
	delete(na.outages, r.ID())
	na.mu.Unlock()
	if o == nil {
		return
	}
	na.bg.Add(1)
	go func() {
		defer na.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		msg, err := na.restoreFrom(ctx, r, o)
		if err != nil {
			na.log.Warn("agent state not restored after its recovery", "agent", r.ID(), "err", err)
			return
		}
		na.log.Info("agent recovered", "agent", r.ID(), "state", msg)
	}()
}

// restoreFrom puts back the checkpoint written when the agent failed.
// It never rolls an agent back: if that checkpoint could not be written
// (an older one would lose answers), or the agent has sent requests or
// changed state since, its state in memory is kept.
func (na *nodeAgents) restoreFrom(ctx context.Context, r *agent.Runner, o *outage) (string, error) {
	select {
	case <-o.saved:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if o.savedErr != nil {
		return "", fmt.Errorf("its state at the failure could not be checkpointed (%v): kept in memory, not rolled back to an older checkpoint", o.savedErr)
	}
	cur, err := r.State()
	if err != nil {
		return "", err
	}
	if !bytes.Equal(cur, o.state) || r.Status().Requests != o.requests {
		return "state kept in memory: it has been called since it failed", nil
	}
	ok, err := na.orch.RestoreState(ctx, r.ID())
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "no agent_state checkpoint to restore (it never answered)", nil
	}
	return "state restored from the agent_state checkpoint written when it failed", nil
}

// keyWatch tells whether an agent's key source holds another key than the
// one the agent was built (or last reset) with. Only a SHA-256 of the key
// is kept.
type keyWatch struct {
	src agent.KeySource

	// mu guards inUse.
	mu    sync.Mutex
	inUse [sha256.Size]byte
}

func newKeyWatch(src agent.KeySource) *keyWatch {
	k := &keyWatch{src: src}
	k.inUse, _ = k.current()
	return k
}

func (k *keyWatch) current() ([sha256.Size]byte, error) {
	s, err := k.src.Load()
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256([]byte(s.Value())), nil
}

// changed reports whether the source now holds another key; a source
// that cannot be read has not changed.
func (k *keyWatch) changed() bool {
	if k == nil || k.src.File == "" { // the server's environment does not change
		return false
	}
	cur, err := k.current()
	k.mu.Lock()
	defer k.mu.Unlock()
	return err == nil && cur != k.inUse
}

// reset resets r, which reads its key again, and remembers that key.
func (k *keyWatch) reset(r *agent.Runner) error {
	cur, err := k.current()
	if err != nil {
		return err
	}
	if err := r.Reset(); err != nil {
		return err
	}
	k.mu.Lock()
	k.inUse = cur
	k.mu.Unlock()
	return nil
}

// advice says how the operator fixes a rejected key.
func (k *keyWatch) advice() string {
	switch {
	case k == nil || k.src.IsZero():
		return "the agent sends no key: give it api_key_env (and secrets_file), then restart the node"
	case k.src.File != "":
		return fmt.Sprintf("put a valid key in %s (entry %s): the agent is reset at the next cascade", k.src.File, k.src.Env)
	}
	return fmt.Sprintf("set a valid key in %s in the server's environment, then restart the node", k.src.Env)
}

// agentFigures are the node's agents for /metrics.
func (na *nodeAgents) agentFigures() []metrics.AgentFigures {
	var out []metrics.AgentFigures
	for i, st := range na.monitor.Status() {
		f := metrics.AgentFigures{Agent: st.Agent, Status: string(st.Condition), Breaker: st.Breaker,
			Calls: st.Calls, Requests: st.Requests, Retries: st.Retries, Rejected: st.Rejected,
			TokensIn: st.TokensIn, TokensOut: st.TokensOut, Failures: map[string]uint64{}}
		for c, n := range na.runners[i].FailuresByClass() {
			f.Failures[string(c)] = n
		}
		out = append(out, f)
	}
	return out
}

// processFigures are the supervised processes for /metrics.
func (na *nodeAgents) processFigures() []metrics.ProcessFigures {
	set := na.processSet()
	if set == nil {
		return nil
	}
	var out []metrics.ProcessFigures
	for _, p := range set.status() {
		out = append(out, metrics.ProcessFigures{Name: p.Name, State: string(p.State), Restarts: p.Restarts})
	}
	return out
}

// externalFigures are the external agents and the tasks, for /metrics and
// /health: none on a node of a cluster that does not lead.
func (na *nodeAgents) externalFigures() metrics.ExternalFigures {
	fig := metrics.ExternalFigures{Tasks: map[string]int{}}
	if !na.servesQueue() {
		return fig
	}
	h := na.queue.Health()
	agents, _ := h["external_agents"].(map[string]int)
	fig.Active, fig.Lost = agents[tasks.Active], agents[tasks.Lost]
	if t, ok := h["tasks"].(map[string]int); ok {
		fig.Tasks = t
	}
	return fig
}

// metricSources adds the agent work of the node to src: its own agents
// when it has some, its processes when it supervises some, the external
// agents and tasks always.
func (na *nodeAgents) metricSources(src *metrics.Sources) {
	if len(na.runners) > 0 {
		src.Agents = na.agentFigures
	}
	if na.cfg != nil && len(na.cfg.Supervisor.Processes) > 0 {
		src.Processes = na.processFigures
	}
	src.External = na.externalFigures
}
