package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/search"
)

// stepResult is one component's outcome in a cascading recovery.
type stepResult struct {
	Component string        `json:"component"`
	Status    string        `json:"status"` // ok, recovered, failed, skipped, disabled
	Reason    string        `json:"reason,omitempty"`
	Took      time.Duration `json:"took_ns"`
}

// runRecover checks and recovers a stopped node's components in order:
// git repository → store (catalog) → cache → index → agents. A failure of
// the first two stops the cascade: nothing above them can be trusted.
func runRecover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	from := fs.String("backup", "", "backup (bundle or mirror) to repair damaged objects from (default: --mirror, then DATA/backups newest first)")
	mirror := fs.String("mirror", "", "mirror repository to repair damaged objects from")
	if err := parse(fs, args); err != nil {
		return err
	}
	var steps []stepResult
	step := func(component string, f func() (string, string)) bool {
		start := time.Now()
		status, reason := f()
		steps = append(steps, stepResult{component, status, reason, time.Since(start)})
		return status != "failed"
	}
	var store *gitstore.Store
	defer func() {
		if store != nil {
			store.Close()
		}
	}()
	ok := step(nexus.ComponentGit, func() (string, string) {
		var err error
		var opened []string
		if store, opened, err = openRepairing(ctx, *data, gitstore.Options{Progress: newProgress(stderr, "catalog")}, fixSources(*from, *mirror, *data)); err != nil {
			return "failed", describe(err) + "; restore the newest backup into a new data directory: nexus backup list, then nexus backup restore FILE --data NEWDIR"
		}
		rep, err := store.Fsck(ctx, true)
		if err != nil {
			return "failed", err.Error()
		}
		for _, p := range rep.Problems {
			if p.Kind != "catalog" && p.Kind != "cache" && p.Kind != "chain" {
				did, err := store.RepairFrom(ctx, fixSources(*from, *mirror, *data))
				if err != nil {
					return "failed", fmt.Sprintf("%d problems, first: %s; repair: %v; restore the newest backup into a new data directory (nexus backup restore)", len(rep.Problems), p, err)
				}
				return "recovered", strings.Join(append(opened, did), "; ")
			}
		}
		if len(opened) > 0 {
			return "recovered", strings.Join(opened, "; ") + fmt.Sprintf("; deep check clean (%d objects re-hashed)", rep.Objects)
		}
		return "ok", fmt.Sprintf("%d objects re-hashed, %d commits", rep.Objects, rep.Commits)
	})
	ok = ok && step(nexus.ComponentStore, func() (string, string) {
		status, reason := "ok", fmt.Sprintf("%d contexts", store.Len())
		if err := store.VerifyCatalog(); err != nil {
			if rerr := store.RebuildCatalog(); rerr != nil {
				return "failed", "catalog rebuild failed: " + rerr.Error()
			}
			status, reason = "recovered", "catalog rebuilt from git: "+err.Error()
		}
		list, changed, err := store.MarkOrphans(ctx)
		switch {
		case err != nil:
			return "failed", "marking orphans: " + err.Error()
		case changed:
			status, reason = "recovered", reason+fmt.Sprintf("; %d orphaned contexts marked on refs/nexus/orphans (never relinked)", len(list))
		case len(list) > 0:
			reason += fmt.Sprintf("; %d orphaned contexts (marked)", len(list))
		}
		return status, reason
	})
	if !ok {
		return finishRecover(stdout, steps, *asJSON)
	}
	step(nexus.ComponentCache, func() (string, string) {
		return "ok", "empty at start; entries are checksum-verified on every hit"
	})
	step(nexus.ComponentIndex, func() (string, string) { return recoverIndex(ctx, store, *data, stderr) })
	step(nexus.ComponentAgents, func() (string, string) { return "disabled", "no agents configured" })
	return finishRecover(stdout, steps, *asJSON)
}

// recoverIndex verifies the saved search index and rebuilds it now if it
// is damaged (vectors come from git).
func recoverIndex(ctx context.Context, store *gitstore.Store, data string, stderr io.Writer) (string, string) {
	emb, err := newEmbedder(ctx)
	if err != nil {
		return "failed", err.Error()
	}
	verr := search.VerifySaved(store, emb, indexDir(data))
	if verr == nil {
		if _, err := os.Stat(indexDir(data)); err == nil {
			return "ok", "saved index verified"
		}
	}
	if err := os.RemoveAll(indexDir(data)); err != nil {
		return "failed", err.Error()
	}
	e, err := search.Open(store, emb, search.Options{Dir: indexDir(data), Log: store.SideLog()})
	if err != nil {
		return "failed", err.Error()
	}
	if err := e.CatchUp(ctx, newProgress(stderr, "index")); err != nil {
		e.Close()
		return "failed", err.Error()
	}
	if err := e.Close(); err != nil {
		return "failed", err.Error()
	}
	reason := "no saved index: built"
	if verr != nil {
		reason = "rebuilt: " + verr.Error()
	}
	return "recovered", reason
}

func finishRecover(w io.Writer, steps []stepResult, asJSON bool) error {
	failed := false
	for _, s := range steps {
		failed = failed || s.Status == "failed"
	}
	if asJSON {
		printJSON(w, map[string]any{"steps": steps, "ok": !failed})
	} else {
		for _, s := range steps {
			fmt.Fprintf(w, "%-16s %-9s %8s  %s\n", s.Component, s.Status, s.Took.Round(time.Millisecond), s.Reason)
		}
	}
	if failed {
		return exitCode{fsckDamaged, "recovery failed: the node must not start until the failed component is repaired"}
	}
	return nil
}
