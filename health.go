package nexus

import (
	"context"
	"time"
)

// Health statuses, from best to worst.
const (
	StatusHealthy   = "healthy"   // working as intended
	StatusDegraded  = "degraded"  // serving, with a part impaired (e.g. keyword-only search)
	StatusUnhealthy = "unhealthy" // not serving its function
	StatusDisabled  = "disabled"  // not configured on this node
)

// The components of a node, in the order cascading recovery visits them.
const (
	ComponentGit    = "git_repository"
	ComponentStore  = "context_manager"
	ComponentCache  = "memory_cache"
	ComponentIndex  = "semantic_index"
	ComponentAgents = "agents"
	// ComponentBackups is the backup and mirror schedules: reported by
	// /health, not part of the cascade.
	ComponentBackups = "backups"
	// ComponentCluster is a cluster node's raft: role, leader, quorum;
	// reported by /health on cluster nodes only.
	ComponentCluster = "cluster"
	// ComponentPredict is the node's predictions: the trends of its free
	// disk space, its memory and its agents' errors, degraded when one
	// predicts a failure within its horizon; reported by /health, not
	// part of the cascade.
	ComponentPredict = "predictions"
)

// Components lists the components in recovery order.
var Components = []string{ComponentGit, ComponentStore, ComponentCache, ComponentIndex, ComponentAgents}

// HealthComponents lists what a node's health reports: the components of
// the cascade, then the backups and the predictions.
var HealthComponents = append(append([]string(nil), Components...), ComponentBackups, ComponentPredict)

// ComponentHealth is the state of one component: a status, details when
// it works, the error when it does not, and when it was checked.
type ComponentHealth struct {
	Status    string         `json:"status"`
	Details   map[string]any `json:"details,omitempty"`
	Error     string         `json:"error,omitempty"`
	Timestamp time.Time      `json:"timestamp"`
}

// Health is the state of a node: the worst status of its components.
type Health struct {
	Status     string                     `json:"status"`
	Components map[string]ComponentHealth `json:"components"`
	Timestamp  time.Time                  `json:"timestamp"`
}

// HealthChecker reports the health of one component.
type HealthChecker interface {
	CheckHealth(ctx context.Context) ComponentHealth
}

// Rank orders statuses from best (0) to worst; disabled counts as healthy.
func Rank(status string) int {
	switch status {
	case StatusHealthy, StatusDisabled:
		return 0
	case StatusDegraded:
		return 1
	}
	return 2
}

// CheckHealth runs the checkers of every component (nil: disabled) and
// returns the node's health.
func CheckHealth(ctx context.Context, checkers map[string]HealthChecker) Health {
	now := time.Now().UTC()
	h := Health{Status: StatusHealthy, Components: map[string]ComponentHealth{}, Timestamp: now}
	names := HealthComponents
	if checkers[ComponentCluster] != nil {
		names = append(names[:len(names):len(names)], ComponentCluster)
	}
	for _, name := range names {
		c := ComponentHealth{Status: StatusDisabled, Timestamp: now}
		if ch := checkers[name]; ch != nil {
			c = ch.CheckHealth(ctx)
			if c.Timestamp.IsZero() {
				c.Timestamp = now
			}
		}
		h.Components[name] = c
		if Rank(c.Status) > Rank(h.Status) {
			h.Status = c.Status
		}
	}
	return h
}

// HealthFunc adapts a function to [HealthChecker].
type HealthFunc func(ctx context.Context) ComponentHealth

// CheckHealth calls f.
func (f HealthFunc) CheckHealth(ctx context.Context) ComponentHealth { return f(ctx) }
