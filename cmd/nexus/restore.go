package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

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
	server := serverFlag(fs)
	if err := parse(fs, args); err != nil {
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
		return restoreOnline(ctx, c, t, *dry, *asJSON, stdout)
	}
	store, err := gitstore.Open(*data, gitstore.Options{Progress: newProgress(stderr, "catalog")})
	if errors.Is(err, gitstore.ErrInUse) {
		return inUse("restore", err)
	}
	if err != nil {
		return err
	}
	defer store.Close()
	plan, err := store.RestoreTo(ctx, t, *dry)
	if err != nil {
		return err
	}
	if !plan.DryRun && plan.RolledBack > 0 {
		// The index's last context is gone: remove it so the next start
		// rebuilds it (vectors come back from git).
		if err := os.RemoveAll(indexDir(*data)); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(stdout, plan)
	}
	printPlan(stdout, plan)
	return nil
}

func printPlan(w io.Writer, p *gitstore.RestorePlan) {
	verb := "rolled back"
	if p.DryRun {
		verb = "would roll back"
	}
	switch {
	case p.RolledBack == 0:
		fmt.Fprintf(w, "nothing to roll back: every context (%d) was written at or before %s\n", p.Kept, p.At.Format("2006-01-02T15:04:05.999999999Z07:00"))
	case p.DryRun:
		fmt.Fprintf(w, "%s %d contexts (%s … %s); %d kept; main would move from %s\n", verb, p.RolledBack, p.FirstGone, p.LastGone, p.Kept, p.From)
	default:
		fmt.Fprintf(w, "%s %d contexts (%s … %s); %d kept; main %s -> %s\nthe old head is kept as %s (git log %s)\n",
			verb, p.RolledBack, p.FirstGone, p.LastGone, p.Kept, p.From[:12], p.To[:12], p.RecoveryRef, p.RecoveryRef)
	}
}

// restoreOnline restores a running node through its admin API; the node
// rebuilds its index by itself.
func restoreOnline(ctx context.Context, c *httpapi.Client, at time.Time, dry, asJSON bool, stdout io.Writer) error {
	plan, err := c.Restore(ctx, at, dry)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, plan)
	}
	printPlan(stdout, plan)
	return nil
}
