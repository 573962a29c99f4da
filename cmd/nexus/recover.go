package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
)

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
	server := serverFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if c, err := adminClient(fs, *server, "backup", "mirror"); c != nil || err != nil {
		if err != nil {
			return err
		}
		return recoverOnline(ctx, c, *asJSON, stdout)
	}
	var steps []recovery.Step
	step := func(component string, f func() (string, string)) bool {
		start := time.Now()
		status, reason := f()
		steps = append(steps, recovery.Step{Component: component, Status: status, Reason: reason, Took: time.Since(start), At: start.UTC()})
		return status != recovery.Failed
	}
	var store *gitstore.Store
	defer func() {
		if store != nil {
			store.Close()
		}
	}()
	var openErr error
	ok := step(nexus.ComponentGit, func() (string, string) {
		var err error
		var opened []string
		if store, opened, err = openRepairing(ctx, *data, gitstore.Options{Progress: newProgress(stderr, "catalog")}, fixSources(*from, *mirror, *data)); err != nil {
			openErr = err
			return recovery.Failed, describe(err) + "; restore the newest backup into a new data directory: nexus backup list, then nexus backup restore FILE --data NEWDIR"
		}
		rep, err := store.Fsck(ctx, true)
		if err != nil {
			return recovery.Failed, err.Error()
		}
		for _, p := range rep.Problems {
			if p.Kind != "catalog" && p.Kind != "cache" && p.Kind != "chain" {
				did, err := store.RepairFrom(ctx, fixSources(*from, *mirror, *data))
				if err != nil {
					return recovery.Failed, fmt.Sprintf("%d problems, first: %s; repair: %v; restore the newest backup into a new data directory (nexus backup restore)", len(rep.Problems), p, err)
				}
				return recovery.Recovered, strings.Join(append(opened, did), "; ")
			}
		}
		if len(opened) > 0 {
			return recovery.Recovered, strings.Join(opened, "; ") + fmt.Sprintf("; deep check clean (%d objects re-hashed)", rep.Objects)
		}
		return recovery.OK, fmt.Sprintf("%d objects re-hashed, %d commits", rep.Objects, rep.Commits)
	})
	if errors.Is(openErr, gitstore.ErrInUse) {
		return inUse("recover", openErr)
	}
	ok = ok && step(nexus.ComponentStore, func() (string, string) {
		status, reason := recovery.OK, fmt.Sprintf("%d contexts", store.Len())
		if err := store.VerifyCatalog(); err != nil {
			if rerr := store.RebuildCatalog(); rerr != nil {
				return recovery.Failed, "catalog rebuild failed: " + rerr.Error()
			}
			status, reason = recovery.Recovered, "catalog rebuilt from git: "+err.Error()
		}
		list, changed, err := store.MarkOrphans(ctx)
		switch {
		case err != nil:
			return recovery.Failed, "marking orphans: " + err.Error()
		case changed:
			status, reason = recovery.Recovered, reason+fmt.Sprintf("; %d orphaned contexts marked on refs/nexus/orphans (never relinked)", len(list))
		case len(list) > 0:
			reason += fmt.Sprintf("; %d orphaned contexts (marked)", len(list))
		}
		return status, reason
	})
	if !ok {
		return finishRecover(stdout, steps, *asJSON)
	}
	step(nexus.ComponentCache, func() (string, string) {
		return recovery.OK, "empty at start; entries are checksum-verified on every hit"
	})
	step(nexus.ComponentIndex, func() (string, string) { return recoverIndex(ctx, store, *data, stderr) })
	step(nexus.ComponentAgents, func() (string, string) { return recovery.Disabled, "no agents configured" })
	return finishRecover(stdout, steps, *asJSON)
}

// recoverIndex verifies the saved search index and rebuilds it now if it
// is damaged (vectors come from git).
func recoverIndex(ctx context.Context, store *gitstore.Store, data string, stderr io.Writer) (string, string) {
	emb, err := newEmbedder(ctx)
	if err != nil {
		return recovery.Failed, err.Error()
	}
	verr := search.VerifySaved(store, emb, indexDir(data))
	if verr == nil {
		if _, err := os.Stat(indexDir(data)); err == nil {
			return recovery.OK, "saved index verified"
		}
	}
	if err := os.RemoveAll(indexDir(data)); err != nil {
		return recovery.Failed, err.Error()
	}
	e, err := search.Open(store, emb, search.Options{Dir: indexDir(data), Log: store.SideLog()})
	if err != nil {
		return recovery.Failed, err.Error()
	}
	if err := e.CatchUp(ctx, newProgress(stderr, "index")); err != nil {
		e.Close()
		return recovery.Failed, err.Error()
	}
	if err := e.Close(); err != nil {
		return recovery.Failed, err.Error()
	}
	reason := "no saved index: built"
	if verr != nil {
		reason = "rebuilt: " + verr.Error()
	}
	return recovery.Recovered, reason
}

func finishRecover(w io.Writer, steps []recovery.Step, asJSON bool) error {
	failed := false
	for _, s := range steps {
		failed = failed || s.Status == recovery.Failed
	}
	if asJSON {
		printJSON(w, map[string]any{"steps": steps, recovery.OK: !failed})
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

// recoverOnline runs a running node's cascading recovery through its
// admin API.
func recoverOnline(ctx context.Context, c *httpapi.Client, asJSON bool, stdout io.Writer) error {
	res, err := c.Recover(ctx)
	if err != nil {
		return err
	}
	err = finishRecover(stdout, res.Steps, asJSON)
	if res.Stopping {
		return exitCode{fsckDamaged, "a critical component could not be recovered: the node stops; once it has, run `nexus recover --data DIR` on its data directory"}
	}
	return err
}
