package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped (or use POST /v1/admin/restore)")
	at := fs.String("at", "", "restore the memory as it was at this time (RFC 3339)")
	dry := fs.Bool("dry-run", false, "only say what would be rolled back")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	keys := keyFlags(fs)
	server := serverFlag(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *at == "" {
		return usagef("--at is required")
	}
	t, err := parseTime("at", *at)
	if err != nil {
		return err
	}
	if c, err := adminClient(fs, *server); c != nil || err != nil {
		if err != nil {
			return err
		}
		return restoreOnline(ctx, c, restoreRequest{t, *dry, *asJSON}, stdout)
	}
	if err := needStore(*data); err != nil {
		return err
	}
	catalog := startProgress(stderr, "catalog")
	store, err := gitstore.Open(*data, gitstore.Options{Progress: catalog.report, Encrypt: keys.encryption()})
	catalog.finish()
	if errors.Is(err, gitstore.ErrInUse) {
		return inUse("restore", err)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	var plan *gitstore.RestorePlan
	err = auditedOffline(ctx, *data, "restore", restoreParams(t, *dry), func() (audit.Fields, error) {
		if plan, err = store.RestoreTo(ctx, t, *dry); err != nil {
			return nil, err
		}
		if !plan.DryRun && plan.RolledBack > 0 {
			// The index's last context is gone: remove it so the next start
			// rebuilds it (vectors come back from git).
			if err := os.RemoveAll(indexDir(*data)); err != nil {
				return nil, err
			}
		}
		return restoreResult(plan), nil
	})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, plan)
	}
	target, err := targetOf(ctx, store, plan)
	if err != nil {
		return err
	}
	printPlan(stdout, plan, target)
	return nil
}

// targetOf returns the journal entry of the commit main moves (or would
// move) to; nil when nothing is rolled back.
func targetOf(ctx context.Context, store nexus.Store, p *gitstore.RestorePlan) (*nexus.LogEntry, error) {
	if p.RolledBack == 0 {
		return nil, nil
	}
	page, err := store.Log(ctx, nexus.LogFilter{Cursor: p.To, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("read the target commit %s: %w", p.To, err)
	}
	return &page.Entries[0], nil
}

func printPlan(w io.Writer, p *gitstore.RestorePlan, target *nexus.LogEntry) {
	if p.RolledBack == 0 {
		fmt.Fprintf(w, "nothing to roll back: every context (%d) was written at or before %s\n", p.Kept, p.At.Format(time.RFC3339Nano))
		return
	}
	to := fmt.Sprintf("%s (%s, %s: %s)", p.To[:12], target.Time.UTC().Format(time.RFC3339), target.AgentID, target.Summary)
	if p.DryRun {
		fmt.Fprintf(w, "would roll back %d contexts (%s … %s); %d kept\nmain would move from %s to %s\n",
			p.RolledBack, p.FirstGone, p.LastGone, p.Kept, p.From[:12], to)
		return
	}
	fmt.Fprintf(w, "rolled back %d contexts (%s … %s); %d kept\nmain moved from %s to %s\nthe old head is kept as %s (git log %s)\n",
		p.RolledBack, p.FirstGone, p.LastGone, p.Kept, p.From[:12], to, p.RecoveryRef, p.RecoveryRef)
}

// restoreRequest is what restore was asked.
type restoreRequest struct {
	at          time.Time
	dry, asJSON bool
}

// restoreOnline restores a running node through its admin API; the node
// rebuilds its index by itself.
func restoreOnline(ctx context.Context, c *httpapi.Client, req restoreRequest, stdout io.Writer) error {
	plan, err := c.Restore(ctx, req.at, req.dry)
	if err != nil {
		return err
	}
	if req.asJSON {
		return printJSON(stdout, plan)
	}
	target, err := targetOf(ctx, c, plan)
	if err != nil {
		return err
	}
	printPlan(stdout, plan, target)
	return nil
}
