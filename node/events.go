package node

import (
	"encoding/json"
	"sync/atomic"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/gitstore"
)

// eventHooks connects the store's commit and restore hooks to the event
// bus of GET /v1/events, which is made after the store it follows.
type eventHooks struct {
	bus atomic.Pointer[events.Bus]
	// handed is set when the commit being reported handed its contexts
	// to the bus, which needs no other wake-up for it.
	handed atomic.Bool
}

// added is for gitstore.Options.OnContexts: the bus publishes the
// contexts as the writer has them, without reading them back.
func (h *eventHooks) added(prev nexus.ID, added []gitstore.Added) {
	b := h.bus.Load()
	if b == nil {
		return
	}
	cs := make([]events.Added, len(added))
	for i, a := range added {
		c := a.Context
		cs[i] = events.Added{ID: c.ID, Namespace: c.Namespace, Type: c.Type, AgentID: c.AgentID, JSON: a.JSON}
	}
	b.Added(prev, cs)
	h.handed.Store(true)
}

// commit is for gitstore.Options.OnCommit.
func (h *eventHooks) commit() {
	if h.handed.Swap(false) {
		return
	}
	if b := h.bus.Load(); b != nil {
		b.Notify()
	}
}

// restore is gitstore.Options.OnRestore: the plan becomes a restore event.
func (h *eventHooks) restore(p gitstore.RestorePlan) {
	if b := h.bus.Load(); b != nil {
		b.Restored(restoreEvent(p))
	}
}

func restoreEvent(p gitstore.RestorePlan) events.Restore {
	plan, _ := json.Marshal(p) // a plan always encodes; the bus stands in a minimal one if not
	return events.Restore{LastKept: p.LastKept, FirstGone: p.FirstGone, LastGone: p.LastGone, Plan: plan}
}
