package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

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
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := needStore(*data); err != nil {
		return err
	}
	cfg, done, err := offlineConfig(ctx, *data, fixSources(*from, *mirror, *data), stderr)
	if err != nil {
		return err
	}
	steps, err := node.RecoverOffline(ctx, cfg)
	done()
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
