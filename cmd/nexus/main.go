// Command nexus runs and uses a Nexus memory: `nexus serve` starts the
// server; the other verbs talk to it over HTTP or open a data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/nexus-mem/nexus"
)

// command is one verb of the CLI.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"serve":     {"run the server (embedded store, HTTP API)", runServe},
	"put":       {"store a context (content as argument or stdin)", runPut},
	"get":       {"print a context by id", runGet},
	"chain":     {"print a context and its ancestors", runChain},
	"ls":        {"list contexts with filters", runList},
	"log":       {"print the commit journal", runLog},
	"search":    {"search contexts by meaning and words", runSearch},
	"related":   {"print the contexts nearest to one by meaning", runRelated},
	"reindex":   {"rebuild the search indexes of a data directory (server stopped)", runReindex},
	"fsck":      {"check (and repair derived state of) a data directory (server stopped)", runFsck},
	"restore":   {"move the memory back to a point in time, keeping the rest under refs/recovery/", runRestore},
	"backup":    {"write, list, verify or restore verified git bundles of a store", runBackup},
	"recover":   {"check and recover a stopped node, component by component", runRecover},
	"rekey":     {"wrap the data keys of an encrypted store under a new master key (server stopped)", runRekey},
	"bench":     {"load-test a running server; report throughput and latency", runBench},
	"mcp":       {"serve MCP on stdio for an AI client, backed by the server (started if none runs)", runMCP},
	"chaos":     {"inject faults into a running node that opted in, measure detection and recovery, check every write", runChaos},
	"drill":     {"check the recovery time objectives: run each fault on a disposable copy or a scratch cluster, objective vs measured", runDrill},
	"incidents": {"list the node's incidents (failures and recoveries it recorded), or show one with its post-mortem", runIncidents},
	"audit":     {"print and verify the audit log of admin actions and authentication failures", runAudit},
	"agents":    {"list the node's agents and the external ones; ask them to process a context", runAgents},
	"tasks":     {"list the task queue of external agents, or add a task", runTasks},
	"token":     {"create, list or revoke the principals of a tokens file", runToken},
	"cluster":   {"show a cluster's members, leader and state; add or remove a member, hand over the leadership", runCluster},

	"systemd-unit": {"print a systemd unit that runs this binary's server", runSystemdUnit},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one CLI invocation and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "nexus: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	if err := cmd.run(ctx, args[1:], stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // -h: the flag set printed the verb's usage
		}
		var ue usageError
		var ec exitCode
		if errors.As(err, &ec) {
			fmt.Fprintf(stderr, "nexus %s: %s\n", args[0], ec.msg)
			return ec.code
		}
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "nexus %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "nexus %s: %s\n", args[0], describe(err))
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: nexus <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun `nexus <command> -h` for the flags of a command.")
}

// usageError is a mistake in the command line (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// describe renders an error for a person: a request that reached no
// server says where it went and what to run, anything else as
// nexus.Describe renders it.
func describe(err error) string {
	if msg, ok := unreachable(err); ok {
		return msg
	}
	return nexus.Describe(err)
}

// env returns the environment variable or def.
func env(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// unreachable describes a request that reached no server: where it went,
// why it failed and what to do.
func unreachable(err error) (string, bool) {
	var ue *url.Error
	if nexus.ErrorCode(err) != nexus.EUnavailable || !errors.As(err, &ue) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "", false // the request's own deadline, or an interrupt
	}
	server := ue.URL
	if u, perr := url.Parse(ue.URL); perr == nil {
		server = u.Scheme + "://" + u.Host
	}
	if msg, ok := tlsTrouble(err, server); ok {
		return msg, true
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("no server at %s: connection refused\n"+
			"Start one with `nexus serve` (it listens on %s by default), or point --server (env NEXUS_SERVER) at the running one.", server, defaultAddr), true
	}
	return fmt.Sprintf("the request to the server at %s failed: %v\nCheck --server (env NEXUS_SERVER) and that the server is up (`nexus serve`).", server, ue.Err), true
}
