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
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/internal/secrets"
	"github.com/nexus-mem/nexus/node"
)

const (
	defaultData = node.DefaultDir
	defaultAddr = node.DefaultAddr
)

// serveConfig is what serve's flags say: the node's settings, and what
// only the command uses.
type serveConfig struct {
	node       node.Config
	cacheMiB   int
	memoryMiB  int
	cpuProfile string
	memProfile string
	configFile string
	cluster    servedCluster
	predict    servedPredict
}

func serveFlags(args []string, stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &serveConfig{node: node.DefaultConfig()}
	n := &c.node
	fs.StringVar(&n.Dir, "data", env("NEXUS_DATA", n.Dir), "data directory (env NEXUS_DATA)")
	fs.StringVar(&n.Addr, "addr", env("NEXUS_ADDR", n.Addr), "listen address host:port (env NEXUS_ADDR)")
	fs.BoolVar(&n.Insecure, "insecure", false, "allow a non-loopback address without a token (NEXUS_TOKEN_FILE or NEXUS_TOKEN), any principal or client certificates")
	fs.StringVar(&n.TokensFile, "tokens-file", env("NEXUS_TOKENS_FILE", ""), "tokens file of principals (default: the config's auth.tokens_file, else DATA/tokens.json if it exists); reread on SIGHUP (env NEXUS_TOKENS_FILE)")
	fs.IntVar(&n.MaxContent, "max-content", n.MaxContent, "largest context content in bytes")
	fs.IntVar(&c.cacheMiB, "cache-mib", int(n.CacheBytes>>20), "L1 cache budget in MiB")
	fs.DurationVar(&n.ShutdownTimeout, "shutdown-timeout", n.ShutdownTimeout, "how long shutdown waits for in-flight requests")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&c.memProfile, "memprofile", "", "write a heap profile (allocations of the whole run included) to this file at exit")
	fs.BoolVar(&n.NoSearch, "no-search", false, "serve without the search indexes (no embedding, no indexing)")
	fs.StringVar(&n.BackupDir, "backup-dir", "", "where scheduled backups go (default DATA/backups)")
	fs.DurationVar(&n.BackupInterval, "backup-interval", n.BackupInterval, "how often to write a verified backup (0: never)")
	fs.IntVar(&n.BackupKeep, "backup-keep", n.BackupKeep, "scheduled backups kept")
	fs.DurationVar(&n.ScrubInterval, "scrub-interval", n.ScrubInterval, "how often to run a deep integrity check in the background (0: never)")
	fs.DurationVar(&n.RecoverInterval, "recover-interval", n.RecoverInterval, "how often the cascading recovery checks every component")
	fs.StringVar(&n.Mirror, "mirror", "", "bare repository path to push every ref to (created if missing); also a source for repairs")
	fs.DurationVar(&n.MirrorInterval, "mirror-interval", n.MirrorInterval, "how often to push to --mirror")
	fs.BoolVar(&n.Encrypt, "encrypt", env("NEXUS_ENCRYPT", "") == "true", "encrypt contexts, vectors and the search index at rest (a new store; an encrypted one needs it) (env NEXUS_ENCRYPT=true)")
	fs.StringVar(&n.KeyFile, "key-file", env("NEXUS_KEY_FILE", ""), "master key file for --encrypt: 32 random bytes, raw or base64, mode 0600 (env NEXUS_KEY_FILE)")
	fs.StringVar(&n.KeyCommand, "key-command", env("NEXUS_KEY_COMMAND", ""), "command printing the master key for --encrypt, e.g. a KMS client (env NEXUS_KEY_COMMAND)")
	fs.StringVar(&n.AuditFile, "audit-file", "", "audit log of admin actions and authentication failures (default DATA/audit.log)")
	fs.StringVar(&n.TLSCert, "tls-cert", env("NEXUS_TLS_CERT", ""), "PEM certificate chain to serve HTTPS with, reloaded when the file changes or on SIGHUP (env NEXUS_TLS_CERT)")
	fs.StringVar(&n.TLSKey, "tls-key", env("NEXUS_TLS_KEY", ""), "PEM key of --tls-cert (env NEXUS_TLS_KEY)")
	fs.StringVar(&n.TLSClientCA, "tls-client-ca", env("NEXUS_TLS_CLIENT_CA", ""), "PEM CA certificates clients must present a certificate of (mutual TLS; env NEXUS_TLS_CLIENT_CA)")
	fs.StringVar(&c.configFile, "config", env("NEXUS_CONFIG", ""), "YAML file of the node's agents, pools, supervised processes and limits (env NEXUS_CONFIG)")
	fs.IntVar(&c.memoryMiB, "memory-budget-mib", 0, "memory budget; over 90 % of it the L1 cache shrinks (default: the cgroup limit, if any)")
	webFlags(fs, n)
	predictFlags(fs, &n.Predict, &c.predict)
	clusterServeFlags(fs, &n.Cluster, &c.cluster)
	if err := parseNoArgs(fs, args); err != nil {
		return nil, err
	}
	n.CacheBytes, n.MemoryBudget = int64(c.cacheMiB)<<20, int64(c.memoryMiB)<<20
	return c, nil
}

// writeHeapProfile writes the heap profile, whose allocation samples
// cover the whole run, to path.
func writeHeapProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "nexus: writing the heap profile: %v\n", err)
	}
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
	if cfg.memProfile != "" {
		defer writeHeapProfile(cfg.memProfile, stderr)
	}
	// SIGHUP rereads the principals; caught from the start, so that one
	// sent while the node opens does not end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	nc, done, err := cfg.nodeConfig(ctx, stderr)
	if err != nil {
		return err
	}
	n, err := node.Open(ctx, nc)
	done()
	if err != nil {
		var ce *node.ConfigError
		if errors.As(err, &ce) {
			return usageError{err}
		}
		return err
	}
	stopHUP := reloadTLSOnHangup(n, nc)
	defer stopHUP()
	ln, err := net.Listen("tcp", nc.Addr)
	if err != nil {
		n.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", nc.Addr, err)
	}
	fmt.Fprintf(stdout, "nexus listening on %s://%s (data %s, %d contexts)\n", scheme(nc), ln.Addr(), nc.Dir, n.Len())
	stopReload := reloadOn(hup, n)
	err = n.Serve(ctx, ln)
	stopReload()
	if cerr := n.Close(context.Background()); err == nil {
		err = cerr
	}
	var fatal *node.FatalError
	if errors.As(err, &fatal) {
		return exitCode{fsckDamaged, fmt.Sprintf("the node stopped: %s\nrun `nexus recover --data %s` (it says what to restore if it cannot repair)", fatal.Step, nc.Dir)}
	}
	return err
}

// webFlags are the flags of the node's browser safety and limits.
func webFlags(fs *flag.FlagSet, n *node.Config) {
	fs.Func("public-name", "a name beyond loopback clients reach the node by, host or host:port (repeatable); requests under any other Host are refused", func(v string) error {
		n.PublicNames = append(n.PublicNames, v)
		return nil
	})
	l := &n.Limits
	fs.Int64Var(&l.PageBytes, "max-page-bytes", l.PageBytes, "bytes of contexts in one page of a listing, chain or children (a page ends early with a cursor)")
	fs.Float64Var(&l.RateLimit, "rate-limit", l.RateLimit, "requests per second of each principal (0: no limit)")
	fs.IntVar(&l.RateBurst, "rate-burst", l.RateBurst, "requests a principal may send at once beyond --rate-limit")
	fs.IntVar(&l.MaxConnections, "max-connections", l.MaxConnections, "client connections open at once (0: no limit)")
	fs.IntVar(&l.MaxStreams, "max-streams", l.MaxStreams, "event streams open at once (0: no limit)")
	fs.IntVar(&l.MaxStreamsPerPrincipal, "max-streams-per-principal", l.MaxStreamsPerPrincipal, "event streams of one principal (0: no limit)")
	fs.IntVar(&l.MaxExactContexts, "max-exact-contexts", l.MaxExactContexts, "largest store an exact search may scan (0: no limit)")
}

// reloadOn reloads n's principals on every signal of hup until the
// returned function is called (n logs the outcome).
func reloadOn(hup <-chan os.Signal, n *node.Node) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				n.Reload()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}

// nodeConfig is the node the flags, the environment and the
// configuration file describe; done finishes the progress lines of its
// opening.
func (c *serveConfig) nodeConfig(ctx context.Context, stderr io.Writer) (node.Config, func(), error) {
	nc := c.node
	tok, err := secrets.TokenFromEnv()
	if err != nil {
		return nc, nil, usageError{err}
	}
	nc.Token = tok
	nc.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	nc.Failpoint = failpointFromEnv()
	if c.configFile != "" {
		f, err := config.Load(c.configFile)
		if err != nil {
			return nc, nil, usageError{err}
		}
		nc.File = f
		tlsFromFile(&nc, f.Server.TLS)
		c.predict.fromFile(&nc.Predict, f)
	}
	if err := c.cluster.clusterOf(&nc, nc.File); err != nil {
		return nc, nil, err
	}
	if err := nc.Validate(); err != nil {
		return nc, nil, usageError{err}
	}
	if !nc.NoSearch {
		emb, err := newEmbedder(ctx)
		if err != nil {
			return nc, nil, err
		}
		nc.Embedder = emb
	}
	ps := &progresses{w: stderr}
	nc.Progress = ps.make
	return nc, ps.finish, nil
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
