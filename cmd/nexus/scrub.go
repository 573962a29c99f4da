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

// scrub runs a deep check every interval until ctx ends.
func scrub(ctx context.Context, store *gitstore.Store, interval time.Duration, mets *metrics.Metrics, log *slog.Logger) {
	every(ctx, interval, func() {
		start := time.Now()
		left, err := checkAndRepair(ctx, store, true, mets, log)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("scrub failed", "err", err)
			}
			return
		}
		log.Info("scrub done", "took", time.Since(start), "problems_left", len(left))
	})
}
