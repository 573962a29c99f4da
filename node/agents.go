package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/internal/secrets"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/supervisor"
	"github.com/nexus-mem/nexus/tasks"
)

// nodeAgents is the agent work of a running node (docs/AGENTS.md): its own
// agents from the configuration file (runners, pools, the monitor that
// sends their heartbeats and the orchestrator that routes contexts to
// them), the processes it supervises, and the task queue of external
// agents. loadNodeAgents builds the agents before the store is opened, so
// that a bad key source stops serve at once; start runs the rest. On a
// node of a cluster the heartbeats, the lease reaper and the processes
// run while the node leads, and only then (lead).
type nodeAgents struct {
	cfg     *config.Config // nil: serve without --config
	dataDir string
	log     *slog.Logger
	redact  *nexus.Redactor
	runners []*agent.Runner
	pools   []*agent.Pool
	caps    map[string][]string // capabilities by agent id
	keys    map[string]*keyWatch
	monitor *agent.Monitor  // reports the agents; sends their heartbeats on a single node
	faults  *providerRoutes // the chaos proxies of the HTTP agents' providers; nil unless chaos is enabled
	lead    *leaderWork     // nil on a single node; set before the cluster opens

	// Set by start, before anything that calls back into the struct runs.
	store nexus.Store
	bus   *events.Bus
	orch  *orchestrator.Orchestrator
	queue *tasks.Queue

	bg sync.WaitGroup // checkpoints and restores in the background

	// mu guards outages, procs and procsErr.
	mu       sync.Mutex
	outages  map[string]*outage // by runner id, while it cannot answer
	procs    *supervisedSet     // nil when none run (none configured; a node of a cluster that does not lead)
	procsErr error              // why the processes could not be started when the node began to lead
}

// loadNodeAgents builds the agents and pools of the configuration file,
// if any. Errors name the file's entry.
func loadNodeAgents(cfg *config.Config, data string, log *slog.Logger, redact *nexus.Redactor) (*nodeAgents, error) {
	na := &nodeAgents{cfg: cfg, dataDir: data, log: log, redact: redact, caps: map[string][]string{}, keys: map[string]*keyWatch{}, outages: map[string]*outage{}}
	if cfg != nil {
		if err := na.build(); err != nil {
			na.faults.close()
			return nil, fmt.Errorf("%s: %w", cfg.File, err)
		}
	}
	na.monitor = agent.NewMonitor(na.runners...)
	return na, nil
}

// build makes a runner per agent and a pool per pool of the file.
func (na *nodeAgents) build() error {
	byID := map[string]*agent.Runner{}
	for i, a := range na.cfg.Agents {
		c := agentConfigOf(a, na.log, na.changed)
		c.Redactor, c.Env = na.redact, na.listedEnv(a.Env)
		hc, err := na.route(a, c)
		if err != nil {
			return fmt.Errorf("agents[%d] (%s): %w", i, a.ID, err)
		}
		c.HTTPClient = hc
		r, err := agent.New(c)
		if err != nil {
			msg := strings.TrimPrefix(nexus.ErrorMessage(err), "agent "+a.ID+": ")
			return fmt.Errorf("agents[%d] (%s): %s", i, a.ID, msg)
		}
		na.runners = append(na.runners, r)
		na.caps[a.ID] = a.Capabilities
		na.keys[a.ID] = newKeyWatch(agent.KeySource{Env: a.APIKeyEnv, File: a.SecretsFile})
		byID[a.ID] = r
	}
	for _, p := range na.cfg.Pools {
		var members []agent.Member
		for _, m := range p.Members {
			members = append(members, agent.Member{Agent: byID[m.Agent], Weight: m.Weight})
		}
		for _, b := range p.Backups {
			members = append(members, agent.Member{Agent: byID[b], Backup: true})
		}
		pool, err := agent.NewPool(p.Name, na.log, members...)
		if err != nil {
			return fmt.Errorf("pools (%s): %s", p.Name, nexus.ErrorMessage(err))
		}
		na.pools = append(na.pools, pool)
	}
	return nil
}

// agentConfigOf maps an agent of the file to agent.Config. The file's
// zero values mean "off" where agent.Config's mean "default": retries.max
// 0 is no retry, heartbeat.interval 0 is no heartbeat.
func agentConfigOf(a config.Agent, log *slog.Logger, onChange func(id string, from, to agent.Condition)) agent.Config {
	c := agent.Config{
		ID: a.ID, Provider: agent.Kind(a.Provider), Model: a.Model, BaseURL: a.BaseURL,
		Key:   agent.KeySource{Env: a.APIKeyEnv, File: a.SecretsFile},
		Probe: a.Probe, Dir: a.Dir, Env: a.Env,
		System: a.System, MaxTokens: a.MaxTokens, PromptBudget: int(a.PromptBudget),
		Timeout: a.Timeout, MaxRetries: a.Retries.Max, RetryBase: a.Retries.Base, RetryMax: a.Retries.Cap,
		BreakerFailures: a.Breaker.Failures, BreakerCooldown: a.Breaker.OpenTimeout, BreakerProbes: a.Breaker.HalfOpenProbes,
		RequestsPerSecond: a.RateLimit.RequestsPerSecond, RequestsPerMinute: a.RateLimit.RequestsPerMinute,
		TokensPerMinute:   a.RateLimit.TokensPerMinute,
		HeartbeatInterval: a.Heartbeat.Interval, HeartbeatFailures: a.Heartbeat.FailureThreshold,
		OnChange: onChange, Logger: log,
	}
	if a.Command != "" {
		c.Command = append([]string{a.Command}, a.Args...)
	}
	if a.Retries.Max == 0 {
		c.MaxRetries = -1
	}
	if a.Heartbeat.Interval == 0 {
		c.HeartbeatInterval = -1
	}
	return c
}

// start opens the task queue, makes the orchestrator, restores the
// agents' checkpoints and starts the supervised processes; services then
// runs the heartbeats and the lease reaper. On a node of a cluster the
// queue is paused and nothing is restored or started: that waits until
// the node leads (leaderWork). On error, close stops what it started.
func (na *nodeAgents) start(ctx context.Context, store nexus.Store, bus *events.Bus) error {
	na.store, na.bus = store, bus
	server := config.Defaults().Server
	if na.cfg != nil {
		server = na.cfg.Server
	}
	q, err := tasks.Open(ctx, store, tasks.Options{
		AgentLease: server.AgentLease, ClaimLease: server.TaskLease, MaxQueued: server.MaxQueuedTasks,
		OnEvent: na.taskEvent, Logger: na.log,
	})
	if err != nil {
		return err
	}
	na.queue = q
	if na.lead != nil {
		q.Pause(errNotLeading)
	}
	na.orch = orchestrator.New(store, orchestrator.Options{MaxChainDepth: server.MaxChainDepth, MaxConcurrent: server.MaxConcurrentCalls, Logger: na.log})
	for _, r := range na.runners {
		if err := na.orch.Add(r, na.caps[r.ID()]); err != nil {
			return err
		}
	}
	for _, p := range na.pools {
		if err := na.orch.Add(p, nil); err != nil {
			return err
		}
	}
	if na.lead != nil {
		na.orch.Suspend() // until the node leads
		return nil
	}
	na.restoreAtStart(ctx)
	if na.supervises() {
		set, err := startProcesses(na.cfg.Supervisor, na.dataDir, na.log, na.redact, na.processEvent)
		if err != nil {
			return &ConfigError{Err: fmt.Errorf("%s: %w", na.cfg.File, err)}
		}
		na.setProcs(set, nil)
	}
	if len(na.runners)+len(na.procsNames()) > 0 {
		na.log.Info("agents running", "agents", len(na.runners), "pools", len(na.pools), "processes", len(na.procsNames()))
	}
	return nil
}

// supervises reports whether the configuration names processes.
func (na *nodeAgents) supervises() bool {
	return na.cfg != nil && len(na.cfg.Supervisor.Processes) > 0
}

// processSet is the supervised processes running, or nil.
func (na *nodeAgents) processSet() *supervisedSet {
	na.mu.Lock()
	defer na.mu.Unlock()
	return na.procs
}

// setProcs records the supervised processes running (nil: none) and why
// they could not be started.
func (na *nodeAgents) setProcs(set *supervisedSet, err error) {
	na.mu.Lock()
	na.procs, na.procsErr = set, err
	na.mu.Unlock()
}

// restoreAtStart puts back each agent's last agent_state checkpoint,
// oldest checkpoint first: a runner's state is also in the checkpoints of
// the pools it belongs to, and the newest of them must be applied last.
// A checkpoint that cannot be restored is logged and the agent starts
// afresh; it does not stop the node.
func (na *nodeAgents) restoreAtStart(ctx context.Context) {
	type saved struct {
		agent string
		at    nexus.ID
	}
	var order []saved
	for _, info := range na.orch.Agents() {
		c, err := orchestrator.LastCheckpoint(ctx, na.store, info.ID)
		if err != nil {
			na.log.Warn("cannot read the agent_state checkpoints", "agent", info.ID, "err", err)
			continue
		}
		if c != nil {
			order = append(order, saved{info.ID, c.ID})
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i].at.String() < order[j].at.String() })
	for _, s := range order {
		if _, err := na.orch.RestoreState(ctx, s.agent); err != nil {
			na.log.Warn("agent state not restored: the agent starts afresh", "agent", s.agent, "err", err)
			continue
		}
		na.log.Info("agent state restored", "agent", s.agent, "checkpoint", s.at.String())
	}
}

// orchestrator is what the HTTP API routes process requests to; nil when
// the node runs no agents, so that the API says so.
func (na *nodeAgents) orchestrator() *orchestrator.Orchestrator {
	if na.orch == nil || na.orch.Len() == 0 {
		return nil
	}
	return na.orch
}

// status is the node's own agents' status for GET /v1/agents; nil when
// there are none.
func (na *nodeAgents) status() func() []agent.Status {
	if len(na.runners) == 0 {
		return nil
	}
	return na.monitor.Status
}

// processes reports the supervised processes, with their restarts since
// the node started, for GET /v1/agents; nil when none are configured.
func (na *nodeAgents) processes() func() []supervisor.Status {
	if !na.supervises() {
		return nil
	}
	return func() []supervisor.Status {
		set := na.processSet()
		if set == nil {
			return nil
		}
		var out []supervisor.Status
		for _, st := range set.status() {
			out = append(out, st.Status)
		}
		return out
	}
}

// services are the agents' background jobs: the monitor that sends the
// heartbeats of the node's agents, and the reaper of lapsed leases.
func (na *nodeAgents) services(wait time.Duration) []*service {
	return []*service{
		monitorService(na.monitor),
		newService("lease reaper", func(ctx context.Context) { na.queue.Run(ctx, time.Second) }),
	}
}

// monitorService sends the heartbeats of m's agents while it runs.
func monitorService(m *agent.Monitor) *service {
	return newService("agent monitor", func(ctx context.Context) {
		m.Start()
		<-ctx.Done()
		m.Close()
	})
}

// processService owns the supervised processes (started by start): when
// it stops, it stops them (SIGTERM, then SIGKILL after their stop
// timeout), within wait.
func (na *nodeAgents) processService(wait time.Duration) *service {
	return newService("supervisor", func(ctx context.Context) {
		<-ctx.Done()
		na.stopProcesses(wait)
	})
}

// stopProcesses stops the supervised processes.
func (na *nodeAgents) stopProcesses(wait time.Duration) {
	set := na.processSet()
	if set == nil {
		return
	}
	na.log.Info("stopping the supervised processes")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := set.sup.Close(ctx); err != nil {
		na.log.Warn("supervised processes did not all stop", "err", err)
	}
}

// close stops the heartbeats and writes the last checkpoints, after the
// HTTP server drained and before the store closes. A node of a cluster
// first stops the work it runs as the leader; one that does not lead
// writes no checkpoint (its writes would fail, and its agents' states are
// the leader's to keep).
func (na *nodeAgents) close(wait time.Duration) {
	leading := true
	if na.lead != nil {
		leading = na.lead.retire()
	}
	na.monitor.Close()
	na.bg.Wait()
	defer na.faults.close()
	if na.orch == nil || !leading {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := na.orch.Close(ctx); err != nil {
		na.log.Warn("agent state checkpoints at shutdown failed", "err", err)
	}
}

// nodeAgentEvent is the data of an "agent" event: a change of status of
// one of the node's agents (source node) or of an external agent (source
// external), with the agent's whole status so that the next event repairs
// one a subscriber missed.
type nodeAgentEvent struct {
	Agent  string    `json:"agent"`
	Source string    `json:"source"`
	Status string    `json:"status"`
	From   string    `json:"from,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
	Detail any       `json:"detail"`
}

// nodeTaskEvent is the data of a "task" event: a task's transition.
type nodeTaskEvent struct {
	Task        string    `json:"task"`
	Status      string    `json:"status"`
	Agent       string    `json:"agent,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at"`
	Namespace   string    `json:"namespace,omitempty"`
	Capability  string    `json:"capability,omitempty"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	Attempt     int       `json:"attempt,omitempty"`
	Result      nexus.ID  `json:"result,omitzero"`
	Error       string    `json:"error,omitempty"`
}

// nodeProcessEvent is the data of a "process" event: a supervised
// process's new status.
type nodeProcessEvent struct {
	processStatus
	At time.Time `json:"at"`
}

// publish puts an event on the bus, the node's secrets redacted from its
// data. It never blocks for long: the bus only appends to its ring.
func (na *nodeAgents) publish(typ string, data any, about nexus.EventFilter) {
	if na.bus == nil {
		return
	}
	b, err := json.Marshal(data)
	if err == nil {
		_, err = na.bus.Publish(nexus.Event{Type: typ, Data: na.redact.RedactBytes(b)}, about)
	}
	if err != nil && nexus.ErrorCode(err) != nexus.EUnavailable { // unavailable: shutting down
		na.log.Warn("event not published", "type", typ, "err", err)
	}
}

// changed is agent.Config.OnChange: it publishes the change and, around
// an outage, checkpoints and restores the agent's state in the background.
func (na *nodeAgents) changed(id string, from, to agent.Condition) {
	r := na.runner(id)
	if r == nil {
		return
	}
	st := r.Status()
	st.Condition = to
	reason := ""
	if to != agent.Healthy {
		reason = st.LastError
	}
	na.publish("agent", nodeAgentEvent{Agent: id, Source: "node", Status: string(to), From: string(from),
		Reason: reason, At: time.Now().UTC(), Detail: st}, nexus.EventFilter{AgentID: id})
	switch to {
	case agent.Unhealthy, agent.AuthFailed:
		na.beginOutage(r, to)
	default:
		na.endOutage(r)
	}
}

// listedEnv resolves an agent's env (${NAME} is the server's variable)
// and registers the keys it passes with the node's redactor.
func (na *nodeAgents) listedEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return env
	}
	list, keys := secrets.ListedEnv(env)
	na.redact.Add(keys...)
	out := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func (na *nodeAgents) runner(id string) *agent.Runner {
	for _, r := range na.runners {
		if r.ID() == id {
			return r
		}
	}
	return nil
}

// taskEvent is tasks.Options.OnEvent: external agents' status changes
// become "agent" events, task transitions "task" events.
func (na *nodeAgents) taskEvent(e tasks.Event) {
	if e.Kind == "agent" {
		ev := nodeAgentEvent{Agent: e.ID, Source: "external", Status: e.Status, Reason: e.Reason, At: e.At}
		if a, err := na.queue.Agent(e.ID); err == nil {
			ev.Detail = a
		}
		na.publish("agent", ev, nexus.EventFilter{AgentID: e.ID})
		return
	}
	ev := nodeTaskEvent{Task: e.ID, Status: e.Status, Agent: e.Agent, Reason: e.Reason, At: e.At}
	about := nexus.EventFilter{AgentID: e.Agent}
	if id, err := nexus.ParseID(e.ID); err == nil && na.queue != nil {
		if t, err := na.queue.Get(context.Background(), id); err == nil {
			ev.Namespace, ev.Capability, ev.Attempts, ev.MaxAttempts = t.Namespace, t.Capability, t.Attempts, t.MaxAttempts
			ev.Attempt, ev.Result, ev.Error = t.Attempt, t.Result, t.Error
			about.Namespace = t.Namespace
		}
	}
	na.publish("task", ev, about)
}

// processEvent is supervisor.Options.OnChange.
func (na *nodeAgents) processEvent(st processStatus) {
	about := nexus.EventFilter{}
	if nexus.ValidateAgentID(st.Name) == nil {
		about.AgentID = st.Name
	}
	na.publish("process", nodeProcessEvent{processStatus: st, At: time.Now().UTC()}, about)
}

func (na *nodeAgents) procsNames() []string {
	set := na.processSet()
	if set == nil {
		return nil
	}
	return set.names
}

// supervisedSet is the node's supervised processes: the supervisor, the
// specs it was given, and what the recovery cascade did to them.
type supervisedSet struct {
	sup   *supervisor.Supervisor
	specs map[string]supervisor.Spec
	names []string

	// mu guards base, restarted and reported.
	mu        sync.Mutex
	base      map[string]int       // restarts of the runs before the cascade restarted it
	restarted map[string]bool      // restarted once by the recovery cascade
	reported  map[string]time.Time // the exit of the give-up the cascade dealt with
}

// processStatus is a supervised process's status with its restarts since
// the node started.
type processStatus struct {
	supervisor.Status
	// RestartedByRecovery says the recovery cascade started it again once
	// after it was given up.
	RestartedByRecovery bool `json:"restarted_by_recovery,omitempty"`
}

// startProcesses starts the processes of the file: pid files in run_dir
// (default DATA/run), logs in log_dir (default DATA/logs).
func startProcesses(sc config.Supervisor, data string, log *slog.Logger, redact *nexus.Redactor, onChange func(processStatus)) (*supervisedSet, error) {
	set := &supervisedSet{specs: map[string]supervisor.Spec{}, base: map[string]int{}, restarted: map[string]bool{},
		reported: map[string]time.Time{}}
	sup, err := supervisor.New(supervisor.Options{
		RunDir: cmp.Or(sc.RunDir, filepath.Join(data, "run")), Logger: log,
		OnChange: func(st supervisor.Status) { onChange(set.adjust(st)) },
	})
	if err != nil {
		return nil, err
	}
	set.sup = sup
	for i, p := range sc.Processes {
		spec, keys := processSpec(p, data)
		redact.Add(keys...)
		set.specs[p.Name] = spec
		set.names = append(set.names, p.Name)
		if err := sup.Start(spec); err != nil {
			sup.Close(context.Background())
			msg := strings.TrimPrefix(err.Error(), "supervisor: start "+p.Name+": ")
			return nil, fmt.Errorf("supervisor.processes[%d] (%s) cannot be started: %s", i, p.Name, msg)
		}
	}
	return set, nil
}

// processSpec maps a process of the file to a supervisor.Spec, its env
// resolved (${NAME} is the server's variable); keys are the credentials
// that env passes, for the node's redactor.
func processSpec(p config.Process, data string) (_ supervisor.Spec, keys []string) {
	env, keys := secrets.ListedEnv(p.Env)
	return supervisor.Spec{
		Name: p.Name, Command: p.Command, Args: p.Args, Env: env, Dir: p.Dir,
		Policy: supervisor.Policy{
			Restart: supervisor.Restart(p.Restart.Policy), InitialBackoff: p.Restart.InitialBackoff,
			MaxBackoff: p.Restart.MaxBackoff, MaxRestarts: p.Restart.MaxRestarts, Window: p.Restart.Window,
		},
		LogDir:     cmp.Or(p.LogDir, filepath.Join(data, "logs")),
		MaxLogSize: int64(p.MaxLogSize), LogKeep: p.LogKeep, StopTimeout: p.StopTimeout,
	}, keys
}

// adjust adds the restarts of earlier runs to a status.
func (s *supervisedSet) adjust(st supervisor.Status) processStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Restarts += s.base[st.Name]
	return processStatus{Status: st, RestartedByRecovery: s.restarted[st.Name]}
}

// status lists every process with its restarts since the node started.
func (s *supervisedSet) status() []processStatus {
	var out []processStatus
	for _, st := range s.sup.Status() {
		out = append(out, s.adjust(st))
	}
	return out
}

// isReported says whether the cascade already dealt with this give-up.
func (s *supervisedSet) isReported(p processStatus) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.reported[p.Name]
	return ok && at.Equal(exitTime(p))
}

func (s *supervisedSet) markReported(p processStatus) {
	s.mu.Lock()
	s.reported[p.Name] = exitTime(p)
	s.mu.Unlock()
}

func exitTime(p processStatus) time.Time {
	if p.LastExit == nil {
		return time.Time{}
	}
	return p.LastExit.At
}

// restartOnce starts a given-up process again, once per node run: a
// process that fails again after it is left failed for the operator.
func (s *supervisedSet) restartOnce(st processStatus) error {
	s.mu.Lock()
	if s.restarted[st.Name] {
		s.mu.Unlock()
		return errors.New("already restarted once by the recovery")
	}
	s.restarted[st.Name] = true
	prev := s.base[st.Name]
	s.base[st.Name] = st.Restarts + 1 // the cascade's restart counts too
	s.mu.Unlock()
	if err := s.sup.Start(s.specs[st.Name]); err != nil {
		s.mu.Lock()
		s.base[st.Name] = prev
		s.mu.Unlock()
		return err
	}
	return nil
}
