package node

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
	"github.com/nexus-mem/nexus/metrics"
	"github.com/nexus-mem/nexus/recovery"
)

// observe builds the node's recovery cascade, its health check and its
// metrics from its parts.
func (n *Node) observe() {
	n.incidents = newIncidentLog(n)
	n.mgr = recovery.New(nodeComponents(n.store, n.engine, n.repairSources, n.agents.component()), recovery.Options{
		Interval: n.cfg.RecoverInterval, Logger: n.log,
		OnFailure:  func(c string) { n.mets.RecordFailure(c) },
		OnRecovery: func(c string, ok bool, took time.Duration) { n.mets.RecordRecovery(c, ok, took) },
		OnEvent:    n.incidents.event,
		OnFatal: func(s recovery.Step) {
			n.log.Error("a critical component could not be recovered: the node stops", "step", s.String())
			n.stop(&FatalError{Step: s})
		},
	})
	for _, c := range n.incidents.carry(n.store) {
		n.mgr.MarkFailing(c)
	}
	checkers := n.mgr.Checkers()
	checkers[nexus.ComponentBackups] = nexus.HealthFunc(n.backupHealth)
	n.predict = n.newPredictor()
	checkers[nexus.ComponentPredict] = n.predict
	if n.cfg.Cluster.Enabled() {
		// Read once the cluster is open (before anything asks).
		checkers[nexus.ComponentCluster] = nexus.HealthFunc(n.clusterHealth)
	}
	src := metrics.Sources{
		Contexts: n.store.Len,
		Cache: func() metrics.CacheFigures {
			c := n.store.CacheStats()
			return metrics.CacheFigures{Entries: int64(c.Entries), Bytes: c.Bytes, Hits: c.Hits, Misses: c.Misses, CorruptDrops: c.CorruptDrops}
		},
		DataDir:    n.cfg.Dir,
		LastBackup: n.lastBackup,
		Services:   n.serviceFigures,
		Incidents:  func() []metrics.IncidentFigures { return n.incidents.figures(n.store, n.cfg.Cluster.Enabled()) },
	}
	if n.engine != nil {
		src.Index = func() metrics.IndexFigures {
			st := n.engine.Stats()
			return metrics.IndexFigures{Indexed: st.Indexed, Lag: st.Lag, NoVector: st.NoVector, LogFailures: st.LogFailures,
				Fresh: st.Fresh, Paced: st.Paced, PacedSeconds: st.PacedSeconds}
		}
	}
	n.agents.metricSources(&src)
	n.health = func(ctx context.Context) nexus.Health { return nexus.CheckHealth(ctx, checkers) }
	src.Health = n.health
	n.mets = metrics.New(src)
	n.mets.Registry().MustRegister(newPredictCollector(n.predict))
}

// serviceFigures are the background jobs for /metrics.
func (n *Node) serviceFigures() []metrics.ServiceFigures {
	var out []metrics.ServiceFigures
	for _, s := range n.Services() {
		out = append(out, metrics.ServiceFigures{Name: s.Name, Running: s.Running, Runs: s.Runs, Failures: s.Failures})
	}
	return out
}

// newHandler is the node's HTTP API.
func (n *Node) newHandler() http.Handler {
	var searcher nexus.Searcher
	if n.engine != nil {
		searcher = n.engine
	}
	// Every request reaches the memory through the access checks of its
	// principal; the node's own jobs use the store directly.
	store := authz.NewStore(n.data)
	searcher = authz.NewSearcher(searcher, store)
	opts := httpapi.Options{
		PublicNames: n.publicNames(), Limits: n.cfg.Limits.apiLimits(),
		Auth: n.auth, OnAuthFailure: n.authFailed, MaxBodyBytes: n.cfg.maxBody(), Logger: n.log, Ready: n.store.Ready,
		Searcher: searcher, Health: n.health, Metrics: n.mets.Handler(), Events: authz.NewEvents(n.bus),
		Tasks: n.agents.queue, Agents: n.agents.orchestrator(), AgentStatus: n.agents.status(), Processes: n.agents.processes(),
		MCP:      mcpHandler(store, searcher, mcpserver.LocalAgents(n.agents.queue, n.agents.orchestrator()), n.cfg.maxBody(), n.log, n.redact),
		Admin:    n,
		Redactor: n.redact,
		Observe:  newRequestMetrics(n.mets.Registry()).observe,
	}
	n.clusterHandlerOptions(&opts)
	api := httpapi.NewServer(store, opts)
	n.conns = &connLimiter{max: n.cfg.Limits.MaxConnections}
	n.mets.Registry().MustRegister(newLimitCollector(api, n.conns, n.cfg.Limits))
	return api
}

func mcpHandler(store nexus.Store, searcher nexus.Searcher, agents mcpserver.Agents, maxBody int64, log *slog.Logger, redact *nexus.Redactor) http.Handler {
	s := mcpserver.New(store, searcher, mcpserver.Options{Logger: slog.New(atLeast{log.Handler(), slog.LevelWarn}), Agents: agents, Redactor: redact})
	return mcpserver.NewHandler(s, maxBody)
}

// atLeast passes on the records of its handler at level or above.
type atLeast struct {
	slog.Handler
	level slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(attrs), h.level}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.level}
}
