package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nexus-mem/nexus/chaos"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/secrets"
)

// runChaos is `nexus chaos`: fault scenarios against a running node that
// opted in (chaos.enabled), each measured; exit 1 when anything
// acknowledged is lost or a check fails.
func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addClientTLSFlags(fs)
	server := fs.String("server", env("NEXUS_SERVER", ""), "URL of the node to inject faults into (env NEXUS_SERVER); an admin token from NEXUS_TOKEN_FILE or NEXUS_TOKEN")
	duration := fs.Duration("duration", 60*time.Second, "how long injections are started for")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the order, parameters and waits (printed in the report; give it to replay a run)")
	scenarios := fs.String("scenarios", "", "comma-separated scenarios to run (default: every one the node has available)")
	imin := fs.Duration("interval-min", 2*time.Second, "shortest wait between two injections")
	imax := fs.Duration("interval-max", 10*time.Second, "longest wait between two injections")
	timeout := fs.Duration("timeout", 2*time.Minute, "longest wait for the detection, then the recovery, of one injection")
	dryRun := fs.Bool("dry-run", false, "print the plan and the scenarios the node has, inject nothing")
	jsonFile := fs.String("json", "", "write the JSON report to this file (- for stdout)")
	mdFile := fs.String("md", "", "write the Markdown summary to this file (default: stdout unless --json -)")
	spawn := fs.Int("spawn", 0, "start a cluster of this many `nexus serve` of this binary on loopback (3 or more) and run against it instead of --server: the run can then SIGKILL the leader and restart it (kill_leader)")
	spawnDir := fs.String("spawn-dir", "", "with --spawn: where the nodes' data directories and logs go (default: a new temporary directory, removed after a run that passed)")
	spawnConfig := fs.String("spawn-config", "", "with --spawn: the nodes' configuration file, which must set chaos.enabled: true (default: one that sets only that)")
	var spawnArgs []string
	fs.Func("spawn-arg", "with --spawn: a flag given to every node's serve, as --name=value (repeatable)", func(v string) error {
		if !strings.HasPrefix(v, "--") {
			return fmt.Errorf("%q: want --name=value", v)
		}
		spawnArgs = append(spawnArgs, v)
		return nil
	})
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	serverGiven := false
	fs.Visit(func(f *flag.Flag) { serverGiven = serverGiven || f.Name == "server" })
	switch {
	case *spawn != 0 && (*spawn < 3 || serverGiven):
		return usagef("--spawn %d: want 3 or more nodes, and no --server (the run's target is the first spawned node)", *spawn)
	case *spawn == 0 && *server == "":
		return usagef("--server is required: the URL of a node whose configuration sets chaos.enabled: true (or --spawn N)")
	case *spawn == 0 && (*spawnDir != "" || *spawnConfig != "" || len(spawnArgs) > 0):
		return usagef("--spawn-dir, --spawn-config and --spawn-arg go with --spawn")
	}
	if *duration <= 0 {
		return usagef("--duration %s: must be positive", *duration)
	}
	var cf clientFlags
	var procs chaos.Processes
	if *spawn > 0 {
		sc, cleanup, err := spawnFor(ctx, spawnSpec{size: *spawn, dir: *spawnDir, config: *spawnConfig, extra: spawnArgs}, stderr)
		if err != nil {
			return err
		}
		passed := false
		defer func() { cleanup(passed) }()
		defer func() { passed = err == nil }()
		cf, procs = clientFlags{server: sc.nodes[0].url, token: sc.token, tls: clientTLSOf(fs)}, sc
	} else {
		tok, err := secrets.TokenFromEnv()
		if err != nil {
			return usageError{err}
		}
		cf = clientFlags{server: *server, token: tok, tls: clientTLSOf(fs)}
	}
	var names []string
	for n := range strings.SplitSeq(*scenarios, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	rep, err := chaos.Run(ctx, chaos.Options{Client: cf.client(), Duration: *duration, Seed: *seed, Scenarios: names,
		IntervalMin: *imin, IntervalMax: *imax, DryRun: *dryRun, Progress: stderr, Timeout: *timeout,
		ClientFor: func(url string) *httpapi.Client {
			other := cf
			other.server = url
			return other.client()
		}, Processes: procs})
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr)
	if err := writeChaosReport(rep, *jsonFile, *mdFile, stdout); err != nil {
		return err
	}
	if !rep.Passed {
		return exitCode{1, fmt.Sprintf("%d problems: %s", len(rep.Problems), strings.Join(rep.Problems, "; "))}
	}
	return nil
}

// writeChaosReport writes the JSON report and the Markdown summary.
func writeChaosReport(rep *chaos.Report, jsonFile, mdFile string, stdout io.Writer) error {
	if jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if jsonFile == "-" {
			if _, err := stdout.Write(b); err != nil {
				return err
			}
		} else if err := os.WriteFile(jsonFile, b, 0o644); err != nil {
			return err
		}
	}
	switch {
	case mdFile != "":
		f, err := os.Create(mdFile)
		if err != nil {
			return err
		}
		rep.Markdown(f)
		return f.Close()
	case jsonFile != "-":
		return rep.Markdown(stdout)
	}
	return nil
}
