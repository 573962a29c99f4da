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
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
	"github.com/nexus-mem/nexus/metrics"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/search"
)

const (
	defaultData = "./nexus-data"
	defaultAddr = "127.0.0.1:7411"
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
	if c.maxContent <= 0 || c.cacheMiB <= 0 {
		return nil, usagef("--max-content and --cache-mib must be positive")
	}
	if c.backupEvery < 0 || c.backupKeep < 1 || c.scrubEvery < 0 {
		return nil, usagef("--backup-interval and --scrub-interval must be ≥ 0 and --backup-keep ≥ 1")
	}
	if c.backupDir == "" {
		c.backupDir = backupDir(c.data)
	}
	return c, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := serveFlags(args, stderr)
	if err != nil {
		return err
	}
	token := os.Getenv("NEXUS_TOKEN")
	if err := checkExposure(cfg.addr, token, cfg.insecure); err != nil {
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
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	agents, err := loadNodeAgents(cfg.configFile, cfg.data, logger)
	if err != nil {
		return err
	}
	var engine *search.Engine
	var notify atomic.Pointer[search.Engine] // set once the engine exists
	var hooks eventHooks                     // feed the event bus once it exists
	store, repaired, err := openRepairing(ctx, cfg.data, gitstore.Options{
		MaxContent: cfg.maxContent, CacheBytes: int64(cfg.cacheMiB) << 20, Logger: logger,
		Progress: newProgress(stderr, "catalog"), Failpoint: failpointFromEnv(),
		OnCommit: func() {
			if e := notify.Load(); e != nil {
				e.Notify()
			}
			hooks.commit()
		},
		OnRestore: hooks.restore,
	}, repairSources(cfg.mirror, cfg.backupDir)())
	if err != nil {
		return err
	}
	for _, r := range repaired {
		logger.Warn("repaired at start", "what", r)
	}
	var searcher nexus.Searcher
	if !cfg.noSearch {
		emb, err := newEmbedder(ctx)
		if err != nil {
			store.Close()
			return err
		}
		e, err := search.Open(store, emb, search.Options{
			Dir: indexDir(cfg.data), Log: store.SideLog(), Resolve: resolveEmbedder,
			Logger: logger, Progress: newProgress(stderr, "index"),
		})
		if err != nil {
			store.Close()
			return err
		}
		engine, searcher = e, e
		notify.Store(e)
		logger.Info("search enabled", "model", emb.Model(), "dimension", emb.Dimension())
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		closeAll(engine, store)
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	bus, err := hooks.start(ctx, store, logger)
	if err != nil {
		ln.Close()
		closeAll(engine, store)
		return err
	}
	var mets *metrics.Metrics
	mgr := recovery.New(nodeComponents(store, engine, repairSources(cfg.mirror, cfg.backupDir), agents.component()), recovery.Options{
		Interval: cfg.recoverEvery, Logger: logger,
		OnFailure:  func(c string) { mets.RecordFailure(c) },
		OnRecovery: func(c string, ok bool, took time.Duration) { mets.RecordRecovery(c, ok, took) },
		OnFatal: func(s recovery.Step) {
			logger.Error("a critical component could not be recovered: the node stops", "step", s.String())
			stop(&fatalStop{s})
		},
	})
	health, mets := observe(mgr.Checkers(), store, engine, agents, cfg.data, cfg.backupDir)
	if err := startupCheck(ctx, store, mets, logger); err != nil {
		ln.Close()
		closeAll(engine, store)
		return err
	}
	if err := agents.start(ctx, store, bus); err != nil {
		agents.close(cfg.shutdownWait)
		ln.Close()
		closeAll(engine, store)
		return err
	}
	go mgr.Watch(ctx)
	if cfg.scrubEvery > 0 {
		go scrub(ctx, store, engine, cfg.scrubEvery, mets, mgr, logger)
	}
	if cfg.mirror != "" && cfg.mirrorEvery > 0 {
		go scheduleMirror(ctx, store, cfg.mirror, cfg.mirrorEvery, logger)
	}
	if budget := memoryBudget(cfg.memoryMiB); budget > 0 {
		go watchMemory(ctx, store, budget, int64(cfg.cacheMiB)<<20, 2*time.Second, mets, logger)
	}
	srv := &http.Server{
		Handler: httpapi.NewServer(store, httpapi.Options{
			Token: token, MaxBodyBytes: int64(cfg.maxContent)*6 + 256<<10, Logger: logger, Ready: store.Ready,
			Searcher: searcher, Health: health, Metrics: mets.Handler(), Events: bus, Admin: &nodeAdmin{store, mgr, mets},
			Tasks: agents.queue, Agents: agents.orchestrator(), AgentStatus: agents.status(), Processes: agents.processes(),
			MCP: mcpHandler(store, searcher, mcpserver.LocalAgents(agents.queue, agents.orchestrator()), int64(cfg.maxContent)*6+256<<10, logger),
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	if cfg.backupEvery > 0 {
		go scheduleBackups(ctx, store, cfg.backupDir, cfg.backupEvery, cfg.backupKeep, logger)
	}
	logger.Info("nexus serving", "addr", "http://"+ln.Addr().String(), "data", cfg.data, "contexts", store.Len(), "head", store.Head())
	fmt.Fprintf(stdout, "nexus listening on http://%s (data %s, %d contexts)\n", ln.Addr(), cfg.data, store.Len())
	err = serveUntilDone(ctx, srv, ln, agents, engine, store, cfg.shutdownWait, logger)
	var fs *fatalStop
	if errors.As(context.Cause(ctx), &fs) {
		return exitCode{fsckDamaged, fmt.Sprintf("the node stopped: %s\nrun `nexus recover --data %s` (it says what to restore if it cannot repair)", fs.step, cfg.data)}
	}
	return err
}

// nodeAdmin is what the admin routes of a running node do.
type nodeAdmin struct {
	store *gitstore.Store
	mgr   *recovery.Manager
	mets  *metrics.Metrics
}

func (a *nodeAdmin) Fsck(ctx context.Context, deep bool) (*gitstore.FsckReport, error) {
	rep, err := a.store.Fsck(ctx, deep)
	if err == nil {
		a.mets.RecordFsck(fsckMode(deep), len(rep.Problems), rep.Took)
		a.mgr.Trigger() // the cascade repairs what the check found
	}
	return rep, err
}

// Restore moves main back; the index sees its last context gone and
// rebuilds.
func (a *nodeAdmin) Restore(ctx context.Context, at time.Time, dry bool) (*gitstore.RestorePlan, error) {
	return a.store.RestoreTo(ctx, at, dry)
}

func (a *nodeAdmin) Recover(ctx context.Context) (httpapi.RecoverResult, error) {
	return httpapi.RecoverResult{Steps: a.mgr.Run(ctx), Stopping: a.mgr.Fatal()}, nil
}

// fatalStop is why a node stopped itself: a critical component failed.
type fatalStop struct{ step recovery.Step }

func (f *fatalStop) Error() string { return f.step.String() }

// observe builds the node's health check and metrics from its parts.
func observe(checkers map[string]nexus.HealthChecker, store *gitstore.Store, engine *search.Engine, agents *nodeAgents, data, backups string) (func(context.Context) nexus.Health, *metrics.Metrics) {
	src := metrics.Sources{
		Contexts: store.Len,
		Cache: func() metrics.CacheFigures {
			c := store.CacheStats()
			return metrics.CacheFigures{Entries: int64(c.Entries), Bytes: c.Bytes, Hits: c.Hits, Misses: c.Misses, CorruptDrops: c.CorruptDrops}
		},
		DataDir: data,
		LastBackup: func() (time.Time, int64, bool) {
			list, err := gitstore.ListBackups(backups)
			if err != nil || len(list) == 0 {
				return time.Time{}, 0, false
			}
			return list[0].Time, list[0].Bytes, true
		},
	}
	if engine != nil {
		src.Index = func() metrics.IndexFigures {
			st := engine.Stats()
			return metrics.IndexFigures{Indexed: st.Indexed, Lag: st.Lag, NoVector: st.NoVector, LogFailures: st.LogFailures}
		}
	}
	agents.metricSources(&src)
	health := func(ctx context.Context) nexus.Health { return nexus.CheckHealth(ctx, checkers) }
	src.Health = health
	return health, metrics.New(src)
}

// closeAll closes the search engine (if any), then the store.
func closeAll(engine *search.Engine, store *gitstore.Store) error {
	var err error
	if engine != nil {
		err = engine.Close()
	}
	if serr := store.Close(); err == nil {
		err = serr
	}
	return err
}

// serveUntilDone serves until ctx ends, then stops the supervised
// processes (while the server still answers them), stops accepting, waits
// for in-flight requests (so acknowledged writes finish), stops the agents
// (their last checkpoints go to the store) and closes the store.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, agents *nodeAgents, engine *search.Engine, store *gitstore.Store, wait time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
		agents.stopProcesses(wait)
		log.Info("shutting down: draining in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), wait)
		serveErr = srv.Shutdown(sctx)
		cancel()
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	agents.close(wait)
	if err := closeAll(engine, store); err != nil && serveErr == nil {
		serveErr = err
	}
	log.Info("stopped", "head", store.Head())
	return serveErr
}

// checkExposure refuses to listen beyond loopback without a token.
func checkExposure(addr, token string, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("invalid --addr %q: %v", addr, err)
	}
	if isLoopback(host) || token != "" || insecure {
		return nil
	}
	return usagef("listening on %q exposes the memory beyond this machine: set NEXUS_TOKEN (clients send it as a bearer token) or pass --insecure", addr)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
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
