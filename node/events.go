package node

import (
	"encoding/json"
	"sync/atomic"

	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/gitstore"
)

// eventHooks connects the store's commit and restore hooks to the event
// bus of GET /v1/events, which is made after the store it follows.
type eventHooks struct {
	bus atomic.Pointer[events.Bus]
}

// commit is for gitstore.Options.OnCommit.
func (h *eventHooks) commit() {
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
