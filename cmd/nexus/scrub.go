package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/metrics"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
)

// checkAndRepair runs an integrity check and repairs what is derived: a
// catalog that disagrees with git is rebuilt (a recovery attempt in the
// metrics). It returns the problems it could not repair.
func checkAndRepair(ctx context.Context, store *gitstore.Store, deep bool, mets *metrics.Metrics, log *slog.Logger) ([]gitstore.Problem, error) {
	mode := "fast"
	if deep {
		mode = "deep"
	}
	rep, err := store.Fsck(ctx, deep)
	if err != nil {
		return nil, err
	}
	mets.RecordFsck(mode, len(rep.Problems), rep.Took)
	var left []gitstore.Problem
	catalog := false
	for _, p := range rep.Problems {
		switch p.Kind {
		case "catalog", "cache": // the cache drops bad entries itself
			catalog = catalog || p.Kind == "catalog"
		case "chain":
			log.Warn("orphaned context (reported, not relinked)", "problem", p.String())
		default:
			left = append(left, p)
		}
	}
	if catalog {
		start := time.Now()
		err := store.RebuildCatalog()
		mets.RecordRecovery(nexus.ComponentStore, err == nil, time.Since(start))
		if err != nil {
			left = append(left, gitstore.Problem{Kind: "catalog", Message: "rebuild failed: " + err.Error()})
		} else {
			log.Warn("catalog disagreed with git and was rebuilt", "took", time.Since(start))
		}
	}
	for _, p := range left {
		log.Error("integrity problem", "mode", mode, "problem", p.String())
	}
	return left, nil
}

// startupCheck refuses to serve a store whose fast check finds damage it
// cannot repair.
func startupCheck(ctx context.Context, store *gitstore.Store, mets *metrics.Metrics, log *slog.Logger) error {
	left, err := checkAndRepair(ctx, store, false, mets, log)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		var b strings.Builder
		for _, p := range left {
			b.WriteString("\n  " + p.String())
		}
		return fmt.Errorf("the store is damaged; not serving:%s\nrun `nexus recover --data DIR` (and restore a backup if it says so)", b.String())
	}
	return nil
}

// scrub runs a deep check of the repository and of the saved index every
// interval until ctx ends, then the cascading recovery, which repairs
// what the checks found.
func scrub(ctx context.Context, store *gitstore.Store, engine *search.Engine, interval time.Duration, mets *metrics.Metrics, mgr *recovery.Manager, log *slog.Logger) {
	every(ctx, interval, func() {
		rep, err := store.Fsck(ctx, true)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("scrub failed", "err", err)
			}
			return
		}
		mets.RecordFsck("deep", len(rep.Problems), rep.Took)
		for _, p := range rep.Problems {
			log.Warn("scrub found a problem", "problem", p.String())
		}
		if engine != nil {
			if err := engine.CheckFiles(true); err != nil {
				log.Warn("scrub found the saved index damaged", "err", err)
			}
		}
		steps := mgr.Run(ctx)
		log.Info("scrub done", "took", rep.Took, "problems", len(rep.Problems), "recovery", summarize(steps))
	})
}

// summarize lists the steps of a cascade that did something.
func summarize(steps []recovery.Step) string {
	var out []string
	for _, s := range steps {
		if s.Status != recovery.OK && s.Status != recovery.Disabled {
			out = append(out, s.Component+" "+string(s.Status))
		}
	}
	if len(out) == 0 {
		return "nothing to recover"
	}
	return strings.Join(out, ", ")
}

func fsckMode(deep bool) string {
	if deep {
		return "deep"
	}
	return "fast"
}
