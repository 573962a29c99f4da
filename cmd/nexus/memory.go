package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-mem/nexus/gitstore"
	nxmetrics "github.com/nexus-mem/nexus/metrics"
)

// memoryBudget is the process's memory budget: the flag if set, else the
// cgroup (v2) limit if there is one, else 0 (none).
func memoryBudget(flagMiB int) int64 {
	if flagMiB > 0 {
		return int64(flagMiB) << 20
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

// goMemory is the memory the Go runtime holds from the system.
func goMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// watchMemory shrinks the L1 cache to a quarter of its size when the
// process holds more than 90 % of the budget, and gives it back once it
// holds less than 60 %.
func watchMemory(ctx context.Context, store *gitstore.Store, budget, cacheBytes int64, every time.Duration, mets *nxmetrics.Metrics, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	shrunk := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		used := goMemory()
		switch {
		case !shrunk && used > budget*9/10:
			store.SetCacheBytes(cacheBytes/4, true)
			shrunk = true
			mets.RecordMemoryPressure()
			log.Warn("memory pressure: L1 cache shrunk", "used", used, "budget", budget, "cache_bytes", cacheBytes/4)
		case shrunk && used < budget*6/10:
			store.SetCacheBytes(cacheBytes, false)
			shrunk = false
			log.Info("memory pressure over: L1 cache restored", "used", used, "budget", budget, "cache_bytes", cacheBytes)
		}
	}
}
