package node

import (
	"context"
	"log/slog"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"

	"github.com/nexus-mem/nexus/gitstore"
	nxmetrics "github.com/nexus-mem/nexus/metrics"
)

// memoryBudget is the process's memory budget: the setting if positive,
// none if negative, else the cgroup (v2) limit if there is one, else 0
// (none).
func memoryBudget(set int64) int64 {
	if set != 0 {
		return max(set, 0)
	}
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil { // "max": no limit
		return 0
	}
	return n
}

// goMemory is the memory the Go runtime holds from the system: all it
// mapped, less the heap it released back (still mapped, not resident),
// so that the governor sees the end of a burst of allocations.
func goMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()) - int64(s[1].Value.Uint64())
}

// governor shrinks the L1 cache to a quarter of its size when the process
// holds more than 90 % of the budget, and gives it its size back once it
// holds less than 60 %.
type governor struct {
	store      *gitstore.Store
	budget     int64
	cacheBytes int64
	used       func() int64
	mets       *nxmetrics.Metrics
	log        *slog.Logger

	shrunk bool // only check touches it, from one goroutine
}

// check is one look at the memory in use.
func (g *governor) check(context.Context) error {
	used := g.used()
	switch {
	case !g.shrunk && used > g.budget*9/10:
		g.store.SetCacheBytes(g.cacheBytes/4, true)
		g.shrunk = true
		g.mets.RecordMemoryPressure()
		g.log.Warn("memory pressure: L1 cache shrunk", "used", used, "budget", g.budget, "cache_bytes", g.cacheBytes/4)
	case g.shrunk && used < g.budget*6/10:
		g.store.SetCacheBytes(g.cacheBytes, false)
		g.shrunk = false
		g.log.Info("memory pressure over: L1 cache restored", "used", used, "budget", g.budget, "cache_bytes", g.cacheBytes)
	}
	return nil
}
