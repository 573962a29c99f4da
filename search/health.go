package search

import (
	"context"

	"github.com/nexus-mem/nexus"
)

// CheckHealth reports the search index: degraded while the embedder
// fails, contexts wait for a vector, or a model change is under way.
func (e *Engine) CheckHealth(context.Context) nexus.ComponentHealth {
	st := e.Stats()
	h := nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{
		"indexed": st.Indexed, "lag": st.Lag, "no_vector": st.NoVector, "model": st.Model,
		"dimension": st.Dimension, "log_failures": st.LogFailures, "fresh": st.Fresh,
		"max_lag": st.MaxLag, "paced_writes": st.Paced, "paced_seconds": st.PacedSeconds, "pace_stalls": st.PaceStalls,
	}}
	if prev := e.Migration(); prev != "" {
		h.Status = nexus.StatusDegraded
		h.Details["migrating_from"] = prev
	}
	if st.Degraded != "" {
		h.Status, h.Error = nexus.StatusDegraded, st.Degraded
	}
	// The in-memory index still answers; the damage is to what the next
	// start would load, which Resave writes again.
	e.CheckFiles(false)
	if d := e.FileDamage(); d != "" {
		h.Status, h.Error = nexus.StatusDegraded, "saved index: "+d+" (searches are answered from memory; the files are written again)"
	}
	return h
}
