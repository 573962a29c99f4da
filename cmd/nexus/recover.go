package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/recovery"
)

// runRecover runs a node's cascade over its stopped data directory:
// git repository → store (catalog) → cache → index → agents. A failure of
// the first two stops the cascade: nothing above them can be trusted.
func runRecover(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA); the server must be stopped")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	from := fs.String("backup", "", "backup (bundle or mirror) to repair damaged objects from (default: --mirror, then DATA/backups newest first)")
	mirror := fs.String("mirror", "", "mirror repository to repair damaged objects from")
	whole := fs.Bool("cluster", false, "recover every member of the cluster the --server node belongs to, coordinated by its leader")
	keys := keyFlags(fs)
	server := serverFlag(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	c, err := adminClient(fs, *server, "backup", "mirror")
	if err != nil {
		return err
	}
	if *whole {
		if c == nil {
			return usagef("--cluster acts through a running node: give --server (or NEXUS_SERVER), not --data")
		}
		return recoverCluster(ctx, c, *asJSON, stdout)
	}
	if c != nil {
		return recoverOnline(ctx, c, *asJSON, stdout)
	}
	if err := needStore(*data); err != nil {
		return err
	}
	cfg, done, err := offlineConfig(ctx, *data, fixSources(*from, *mirror, *data), keys, stderr)
	if err != nil {
		return err
	}
	var steps []recovery.Step
	err = auditedOffline(ctx, *data, "recover", nil, func() (audit.Fields, error) {
		if steps, err = node.RecoverOffline(ctx, cfg); err != nil {
			return nil, err
		}
		return stepFields(steps), nil
	})
	done()
	if errors.Is(err, gitstore.ErrInUse) {
		return inUse("recover", err)
	}
	if err != nil {
		return err
	}
	return finishRecover(stdout, steps, *asJSON)
}

func finishRecover(w io.Writer, steps []recovery.Step, asJSON bool) error {
	failed := false
	for _, s := range steps {
		failed = failed || s.Status == recovery.Failed
	}
	if asJSON {
		printJSON(w, map[string]any{"steps": steps, string(recovery.OK): !failed})
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

// recoverCluster has the cluster's leader recover every member, phase by
// phase, and prints each member's result.
func recoverCluster(ctx context.Context, c *httpapi.Client, asJSON bool, stdout io.Writer) error {
	rep, err := c.RecoverCluster(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		printJSON(stdout, rep)
	} else {
		fmt.Fprintf(stdout, "plan %s\n", rep.Plan)
		for _, p := range rep.Phases {
			for _, r := range p.Nodes {
				state := "ok"
				if !r.OK {
					state = "FAILED: " + r.Error
				}
				fmt.Fprintf(stdout, "%-8s %-12s %s\n", p.Name, r.ID, state)
			}
		}
		if rep.Consistent {
			fmt.Fprintf(stdout, "consistent: every member at %s\n", rep.Head)
		}
	}
	switch {
	case rep.Stopped != "":
		return exitCode{fsckDamaged, "cluster recovery stopped at " + rep.Stopped}
	case !rep.Consistent:
		return exitCode{fsckDamaged, "cluster recovery ended without every member at the leader's head; run `nexus cluster status`"}
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
