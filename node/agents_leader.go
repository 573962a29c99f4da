package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// errNotLeading is what the task queue of a node of a cluster answers
// while the node does not lead: requests reach it only in the moment
// leadership changes hands (the API forwards them to the leader).
var errNotLeading = nexus.Errorf(nexus.ENoQuorum, "this node does not lead the cluster, or is taking the task queue over as its new leader: nothing was done; send the request again")

// leaderWork is the agent work that a node of a cluster runs while it
// leads, and only then: the heartbeats of its agents, the lease reaper of
// the task queue and the supervised processes (the orchestrator's
// checkpoints are suspended meanwhile). When the node begins to lead, the
// queue is rebuilt from the store (every entry before is applied by
// then), keeping the claims held and their agents (tasks.Queue.Reload),
// and the agents' states are restored from their checkpoints; when it
// stops leading, the work stops (waiting for it, processes included) and
// the queue is paused. Services are not restartable: each term makes new
// ones.
type leaderWork struct {
	na   *nodeAgents
	ctx  context.Context // the node's
	wait time.Duration   // bounds the processes' stop

	// mu serialises begin, end, activate and retire, and guards what
	// follows.
	mu       sync.Mutex
	active   bool       // the node's agents are started (activate)
	want     bool       // the node leads
	leading  bool       // the work runs
	retired  bool       // the node is shutting down: no work starts again
	led      bool       // the work ran when the node was retired
	services []*service // this term's, or the last one's (stopped)
}

func newLeaderWork(ctx context.Context, na *nodeAgents, wait time.Duration) *leaderWork {
	lw := &leaderWork{na: na, ctx: ctx, wait: wait}
	lw.services = lw.newServices() // never started: listed, not running
	return lw
}

// begin is called when the node begins to lead.
func (lw *leaderWork) begin() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.want = true
	lw.startLocked()
}

// end is called when the node stops leading.
func (lw *leaderWork) end() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.want = false
	if !lw.leading {
		return
	}
	lw.leading = false
	lw.stopLocked()
	lw.na.queue.Pause(errNotLeading)
	lw.na.orch.Suspend()
	lw.na.log.Info("no longer leading: the agent work stopped")
}

// activate is called once the node's agents are started: the work starts
// if the node already leads.
func (lw *leaderWork) activate() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.active = true
	lw.startLocked()
}

// retire stops the work for good (the node shuts down); it reports
// whether the node led when it was first retired.
func (lw *leaderWork) retire() bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if !lw.retired {
		lw.retired, lw.led = true, lw.leading
		if lw.leading {
			lw.stopLocked()
			lw.leading = false
		}
	}
	return lw.led
}

// leads reports whether the work runs.
func (lw *leaderWork) leads() bool {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.leading
}

func (lw *leaderWork) startLocked() {
	if !lw.want || !lw.active || lw.retired || lw.leading {
		return
	}
	lw.leading = true
	na := lw.na
	na.orch.Resume()
	na.restoreAtStart(lw.ctx)
	lw.services = lw.newServices()
	for _, s := range lw.services {
		s.Start(lw.ctx)
	}
	na.log.Info("leading: the agent work started", "agents", len(na.runners))
}

// stopLocked stops the term's services, in reverse order, waiting for
// each.
func (lw *leaderWork) stopLocked() {
	for i := len(lw.services) - 1; i >= 0; i-- {
		lw.services[i].Stop()
	}
}

// newServices makes a term's services: the heartbeats, the lease reaper
// (which first rebuilds the queue) and the supervised processes.
func (lw *leaderWork) newServices() []*service {
	na := lw.na
	return []*service{
		monitorService(agent.NewMonitor(na.runners...)),
		newService("lease reaper", func(ctx context.Context) {
			if na.reloadQueue(ctx) {
				na.queue.Run(ctx, time.Second)
			}
		}),
		newService("supervisor", func(ctx context.Context) {
			na.superviseWhile(ctx, lw.wait)
		}),
	}
}

// stats reports the services of the current (or last) term.
func (lw *leaderWork) stats() []ServiceStats {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	out := make([]ServiceStats, 0, len(lw.services))
	for _, s := range lw.services {
		out = append(out, s.Stats())
	}
	return out
}

// reloadQueue rebuilds the task queue from the store, trying again while
// the store cannot be read (the queue stays paused meanwhile); false when
// ctx ended first.
func (na *nodeAgents) reloadQueue(ctx context.Context) bool {
	wait := 100 * time.Millisecond
	for {
		err := na.queue.Reload(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		na.log.Error("the task queue cannot be rebuilt from the store: it stays paused; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// superviseWhile runs the configured processes until ctx ends, then
// stops them within wait.
func (na *nodeAgents) superviseWhile(ctx context.Context, wait time.Duration) {
	if na.supervises() {
		set, err := startProcesses(na.cfg.Supervisor, na.dataDir, na.log, na.redact, na.processEvent)
		if err != nil {
			err = fmt.Errorf("%s: %w", na.cfg.File, err)
			na.log.Error("the supervised processes cannot be started", "err", err)
		}
		na.setProcs(set, err)
	}
	<-ctx.Done()
	na.stopProcesses(wait)
	na.setProcs(nil, nil)
}

// servesQueue reports whether this node's task queue is the one served:
// always on a single node, while it leads on a node of a cluster.
func (na *nodeAgents) servesQueue() bool {
	return na.queue != nil && (na.lead == nil || na.lead.leads())
}
