package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/node"
)

const (
	defaultData = node.DefaultDir
	defaultAddr = node.DefaultAddr
)

type serveConfig struct {
	data, addr   string
	insecure     bool
	maxContent   int
	cacheMiB     int
	shutdownWait time.Duration
	cpuProfile   string
	noSearch     bool
	backupDir    string
	backupEvery  time.Duration
	backupKeep   int
	scrubEvery   time.Duration
	memoryMiB    int
	recoverEvery time.Duration
	mirror       string
	mirrorEvery  time.Duration
	configFile   string
}

func serveFlags(args []string, stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &serveConfig{}
	fs.StringVar(&c.data, "data", env("NEXUS_DATA", defaultData), "data directory (env NEXUS_DATA)")
	fs.StringVar(&c.addr, "addr", env("NEXUS_ADDR", defaultAddr), "listen address host:port (env NEXUS_ADDR)")
	fs.BoolVar(&c.insecure, "insecure", false, "allow a non-loopback address without NEXUS_TOKEN")
	fs.IntVar(&c.maxContent, "max-content", 1<<20, "largest context content in bytes")
	fs.IntVar(&c.cacheMiB, "cache-mib", 64, "L1 cache budget in MiB")
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.BoolVar(&c.noSearch, "no-search", false, "serve without the search indexes (no embedding, no indexing)")
	fs.StringVar(&c.backupDir, "backup-dir", "", "where scheduled backups go (default DATA/backups)")
	fs.DurationVar(&c.backupEvery, "backup-interval", 24*time.Hour, "how often to write a verified backup (0: never)")
	fs.IntVar(&c.backupKeep, "backup-keep", 3, "scheduled backups kept")
	fs.DurationVar(&c.scrubEvery, "scrub-interval", 24*time.Hour, "how often to run a deep integrity check in the background (0: never)")
	fs.DurationVar(&c.recoverEvery, "recover-interval", 10*time.Second, "how often the cascading recovery checks every component")
	fs.StringVar(&c.mirror, "mirror", "", "bare repository path to push every ref to (created if missing); also a source for repairs")
	fs.DurationVar(&c.mirrorEvery, "mirror-interval", 10*time.Minute, "how often to push to --mirror")
	fs.StringVar(&c.configFile, "config", env("NEXUS_CONFIG", ""), "YAML file of the node's agents, pools, supervised processes and limits (env NEXUS_CONFIG)")
	fs.IntVar(&c.memoryMiB, "memory-budget-mib", 0, "memory budget; over 90 % of it the L1 cache shrinks (default: the cgroup limit, if any)")
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected arguments %q", fs.Args())
	}
	return c, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := serveFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	nc, err := cfg.nodeConfig(ctx, stderr)
	if err != nil {
		return err
	}
	n, err := node.Open(ctx, nc)
	if err != nil {
		var ce *node.ConfigError
		if errors.As(err, &ce) {
			return usageError{err}
		}
		return err
	}
	ln, err := net.Listen("tcp", nc.Addr)
	if err != nil {
		n.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", nc.Addr, err)
	}
	fmt.Fprintf(stdout, "nexus listening on http://%s (data %s, %d contexts)\n", ln.Addr(), nc.Dir, n.Len())
	err = n.Serve(ctx, ln)
	if cerr := n.Close(context.Background()); err == nil {
		err = cerr
	}
	var fatal *node.FatalError
	if errors.As(err, &fatal) {
		return exitCode{fsckDamaged, fmt.Sprintf("the node stopped: %s\nrun `nexus recover --data %s` (it says what to restore if it cannot repair)", fatal.Step, nc.Dir)}
	}
	return err
}

// nodeConfig is the node the flags, the environment and the
// configuration file describe.
func (c *serveConfig) nodeConfig(ctx context.Context, stderr io.Writer) (node.Config, error) {
	nc := node.DefaultConfig()
	nc.Dir, nc.Addr, nc.Token, nc.Insecure = c.data, c.addr, os.Getenv("NEXUS_TOKEN"), c.insecure
	nc.MaxContent, nc.CacheBytes, nc.MemoryBudget = c.maxContent, int64(c.cacheMiB)<<20, int64(c.memoryMiB)<<20
	nc.ShutdownTimeout, nc.NoSearch = c.shutdownWait, c.noSearch
	nc.BackupDir, nc.BackupInterval, nc.BackupKeep = c.backupDir, c.backupEvery, c.backupKeep
	nc.ScrubInterval, nc.RecoverInterval = c.scrubEvery, c.recoverEvery
	nc.Mirror, nc.MirrorInterval = c.mirror, c.mirrorEvery
	nc.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	nc.Progress = func(what string) func(done, total int) { return newProgress(stderr, what) }
	nc.Failpoint = failpointFromEnv()
	if err := nc.Validate(); err != nil {
		return nc, usageError{err}
	}
	if c.configFile != "" {
		f, err := config.Load(c.configFile)
		if err != nil {
			return nc, usageError{err}
		}
		nc.File = f
	}
	if !c.noSearch {
		emb, err := newEmbedder(ctx)
		if err != nil {
			return nc, err
		}
		nc.Embedder = emb
	}
	return nc, nil
}

// failpointFromEnv arms a crash point for tests: NEXUS_FAILPOINT=point or
// point:probability makes the process SIGKILL itself at that point of a
// group commit (points: pack-written, ref-moved, catalog-updated).
func failpointFromEnv() func(string) error {
	spec := os.Getenv("NEXUS_FAILPOINT")
	if spec == "" {
		return nil
	}
	point, prob, _ := strings.Cut(spec, ":")
	p := 1.0
	if v, err := strconv.ParseFloat(prob, 64); err == nil {
		p = v
	}
	return func(at string) error {
		if at == point && rand.Float64() < p {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}
}
