package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/mcpserver"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/tasks"
)

// serveLog is the file in the data directory that a server started by
// `nexus mcp` writes its output to.
const serveLog = "serve.log"

type mcpConfig struct {
	server, token, data string
	agent, namespace    string
	noStart             bool
	startTimeout        time.Duration
	tls                 *tls.Config // nil: plain HTTP only
}

func mcpFlags(args []string, stderr io.Writer) (*mcpConfig, error) {
	fs := flag.NewFlagSet("mcp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &mcpConfig{}
	fs.StringVar(&c.server, "server", env("NEXUS_SERVER", "http://"+defaultAddr), "server URL (env NEXUS_SERVER)")
	tokenFlag(fs, &c.token, stderr)
	fs.StringVar(&c.data, "data", env("NEXUS_DATA", defaultData), "data directory of the server started when none answers (env NEXUS_DATA)")
	fs.BoolVar(&c.noStart, "no-start", false, "never start a server: fail with what to run instead")
	fs.DurationVar(&c.startTimeout, "start-timeout", 2*time.Minute, "how long to wait for a started server to be ready")
	fs.StringVar(&c.agent, "agent", env("NEXUS_AGENT", mcpserver.DefaultAgent), "agent id of contexts stored without one (env NEXUS_AGENT)")
	fs.StringVar(&c.namespace, "ns", os.Getenv("NEXUS_NAMESPACE"), "namespace of contexts stored without one (env NEXUS_NAMESPACE)")
	tf := addClientTLSFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus mcp [flags]\n\nServes the Model Context Protocol on stdin/stdout for one MCP client, backed by the\nserver at --server; if none answers there, starts `nexus serve --data DIR` in the background.")
		fs.PrintDefaults()
	}
	if err := parseNoArgs(fs, args); err != nil {
		return nil, err
	}
	if c.startTimeout <= 0 {
		return nil, usagef("--start-timeout must be positive")
	}
	u, err := url.Parse(c.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("invalid --server %q: want a URL such as http://%s", c.server, defaultAddr)
	}
	c.server = strings.TrimRight(c.server, "/")
	if u.Scheme == "https" || *tf != (clientTLS{}) {
		if c.tls, err = tf.config(); err != nil {
			return nil, err
		}
	}
	if c.data, err = filepath.Abs(c.data); err != nil {
		return nil, usagef("invalid --data: %v", err)
	}
	return c, nil
}

// runMCP serves MCP over stdio. Stdout carries the protocol alone; logs go
// to stderr.
func runMCP(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := mcpFlags(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var opts []httpapi.ClientOption
	if cfg.token != "" {
		opts = append(opts, httpapi.WithToken(cfg.token))
	}
	probe := &http.Client{Timeout: 5 * time.Second}
	if cfg.tls != nil {
		opts = append(opts, httpapi.WithTLS(cfg.tls))
		probe.Transport = &http.Transport{TLSClientConfig: cfg.tls}
	}
	st := &starter{cfg: cfg, log: log, probe: probe}
	up, err := st.answers(ctx)
	if err != nil {
		return err
	}
	if addr, local := st.localAddr(); !up && (cfg.noStart || !local) {
		return st.notRunning(addr, local)
	}
	if !up {
		// Start the server while the client initializes: opening a large
		// store can outlast the client's patience for the handshake. Tool
		// calls made meanwhile wait for it (see reviving).
		go func() {
			if err := st.ensure(ctx); err != nil {
				log.Error("starting the server failed; the next tool call tries again", "err", err)
			}
		}()
	}
	c := &reviving{Client: httpapi.NewClient(cfg.server, opts...), st: st}
	sdkLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := mcpserver.New(c, c, mcpserver.Options{Agent: cfg.agent, Namespace: cfg.namespace, Logger: sdkLog})
	err = s.Run(ctx, &mcp.StdioTransport{})
	if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil // the client closed stdin, or we were told to stop
	}
	return err
}

// starter makes sure a server answers at cfg.server, starting one for
// cfg.data when none does and the address is on this machine.
type starter struct {
	cfg   *mcpConfig
	log   *slog.Logger
	probe *http.Client
	mu    sync.Mutex // one start at a time
}

// ensure returns nil once a server answers.
func (s *starter) ensure(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	up, err := s.answers(ctx)
	if up || err != nil {
		return err
	}
	addr, local := s.localAddr()
	if s.cfg.noStart || !local {
		return s.notRunning(addr, local)
	}
	return s.start(ctx, addr)
}

// answers reports whether a Nexus server answers /readyz at cfg.server. A
// wrong token is an error; a server that answers but is not ready counts
// as up, and its tools report why.
func (s *starter) answers(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.server+"/readyz", nil)
	if err != nil {
		return false, usagef("invalid --server %q: %v", s.cfg.server, err)
	}
	if s.cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.cfg.token)
	}
	resp, err := s.probe.Do(req)
	if err != nil {
		if msg, ok := tlsTrouble(err, s.cfg.server); ok {
			return false, errors.New(msg) // a server answers, but not to us
		}
		return false, nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return false, fmt.Errorf("the server at %s refuses the token: set NEXUS_TOKEN_FILE (or NEXUS_TOKEN) to the token it was started with", s.cfg.server)
	case http.StatusBadRequest:
		if bytes.HasPrefix(head, []byte("Client sent an HTTP request to an HTTPS server")) {
			return false, fmt.Errorf("the server at %s speaks HTTPS: use an https:// --server URL (with --ca if its CA is not a system root)", s.cfg.server)
		}
	case http.StatusServiceUnavailable:
		s.log.Warn("the server answers but is not ready; see its /health", "server", s.cfg.server)
	}
	return true, nil
}

// localAddr returns the host:port of cfg.server and whether a server for
// it can be started here: plain HTTP on a loopback address.
func (s *starter) localAddr() (string, bool) {
	u, _ := url.Parse(s.cfg.server) // checked by mcpFlags
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port), u.Scheme == "http" && node.IsLoopback(u.Hostname()) && u.Path == ""
}

// notRunning tells the user what to run.
func (s *starter) notRunning(addr string, local bool) error {
	if !local {
		return fmt.Errorf("no Nexus server answers at %s, and nexus mcp starts one only for a plain http:// address on this machine: start the server there, or point --server (NEXUS_SERVER) at a running one", s.cfg.server)
	}
	return fmt.Errorf("no Nexus server answers at %s. Start one with:\n\n    nexus serve --data %s --addr %s\n\nor run nexus mcp without --no-start to start it in the background", s.cfg.server, s.cfg.data, addr)
}

// start runs `nexus serve` for cfg.data on addr as a detached process
// (its own session, output to DATA/serve.log) and waits until a server
// answers. Several `nexus mcp` may race to start one: the data directory
// lock and the listening address let one server win, and the others' end
// at once while their starters wait for the winner.
func (s *starter) start(ctx context.Context, addr string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find this executable to start the server: %w", err)
	}
	if err := os.MkdirAll(s.cfg.data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	logPath := filepath.Join(s.cfg.data, serveLog)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the server log: %w", err)
	}
	defer lf.Close() // the child has its own descriptor
	cmd := exec.Command(exe, "serve", "--data", s.cfg.data, "--addr", addr)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = withToken(os.Environ(), s.cfg.token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives us, deaf to the terminal's signals
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start nexus serve: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.log.Info("no server answered: started one", "pid", cmd.Process.Pid, "data", s.cfg.data, "addr", addr, "log", logPath)
	return s.waitReady(ctx, cmd.Process.Pid, exited, logPath)
}

// waitReady polls until a server answers. If the started one exits, a
// server that holds the data directory (the winner of a race) is still
// waited for; otherwise the start failed and its log says why.
func (s *starter) waitReady(ctx context.Context, pid int, exited <-chan error, logPath string) error {
	deadline := time.Now().Add(s.cfg.startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		up, err := s.answers(ctx)
		if up || err != nil {
			return err
		}
		select {
		case err := <-exited:
			exited = nil
			if !s.winnerHolds() {
				return fmt.Errorf("nexus serve (pid %d) stopped (%v) before it was ready; %s ends with:\n%s", pid, err, logPath, tail(logPath, 15))
			}
			s.log.Info("another process holds the data directory: waiting for its server", "data", s.cfg.data)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server started for %s did not answer at %s within %s; see %s", s.cfg.data, s.cfg.server, s.cfg.startTimeout, logPath)
		}
	}
}

// winnerHolds reports whether another server holds the data directory,
// allowing it a moment to write its pid after taking the lock.
func (s *starter) winnerHolds() bool {
	for range 5 {
		if lockHeld(s.cfg.data) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// lockHeld reports whether a live process holds the lock of data dir: the
// store writes the holder's pid into DIR/LOCK and truncates it on close.
func lockHeld(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "LOCK"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-n):], []byte("\n")))
}

// reviving is the client `nexus mcp` serves from. A call that finds no
// server listening (connection refused) starts one, as at startup, and is
// tried once more: a refused connection never carried the request, so even
// a write is safe to repeat.
type reviving struct {
	*httpapi.Client
	st *starter
}

var (
	_ nexus.Store      = (*reviving)(nil)
	_ nexus.Searcher   = (*reviving)(nil)
	_ mcpserver.Agents = (*reviving)(nil)
)

// again runs f, and once more after ensuring a server if it was refused.
func again[T any](ctx context.Context, r *reviving, f func() (T, error)) (T, error) {
	v, err := f()
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		return v, err
	}
	if serr := r.st.ensure(ctx); serr != nil {
		return v, nexus.WrapError(nexus.EUnavailable, err, "%s", serr.Error())
	}
	return f()
}

func (r *reviving) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	return again(ctx, r, func() (*nexus.Context, error) { return r.Client.Put(ctx, d) })
}

func (r *reviving) Get(ctx context.Context, id nexus.ID) (*nexus.Context, error) {
	return again(ctx, r, func() (*nexus.Context, error) { return r.Client.Get(ctx, id) })
}

func (r *reviving) Chain(ctx context.Context, id nexus.ID, limit int) ([]*nexus.Context, error) {
	return again(ctx, r, func() ([]*nexus.Context, error) { return r.Client.Chain(ctx, id, limit) })
}

func (r *reviving) Children(ctx context.Context, id nexus.ID) ([]*nexus.Context, error) {
	return again(ctx, r, func() ([]*nexus.Context, error) { return r.Client.Children(ctx, id) })
}

func (r *reviving) List(ctx context.Context, f nexus.Filter) (*nexus.Page, error) {
	return again(ctx, r, func() (*nexus.Page, error) { return r.Client.List(ctx, f) })
}

func (r *reviving) Log(ctx context.Context, f nexus.LogFilter) (*nexus.LogPage, error) {
	return again(ctx, r, func() (*nexus.LogPage, error) { return r.Client.Log(ctx, f) })
}

func (r *reviving) Search(ctx context.Context, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	return again(ctx, r, func() (*nexus.SearchResult, error) { return r.Client.Search(ctx, req) })
}

func (r *reviving) Related(ctx context.Context, id nexus.ID, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	return again(ctx, r, func() (*nexus.SearchResult, error) { return r.Client.Related(ctx, id, req) })
}

func (r *reviving) RegisterAgent(ctx context.Context, id, name string, caps []string) (tasks.Agent, error) {
	return again(ctx, r, func() (tasks.Agent, error) { return r.Client.RegisterAgent(ctx, id, name, caps) })
}

func (r *reviving) Heartbeat(ctx context.Context, id string) (tasks.Agent, error) {
	return again(ctx, r, func() (tasks.Agent, error) { return r.Client.Heartbeat(ctx, id) })
}

func (r *reviving) CreateTask(ctx context.Context, n tasks.NewTask) (tasks.Task, error) {
	return again(ctx, r, func() (tasks.Task, error) { return r.Client.CreateTask(ctx, n) })
}

func (r *reviving) ClaimTask(ctx context.Context, agentID string) (tasks.Task, bool, error) {
	type claim struct {
		t  tasks.Task
		ok bool
	}
	c, err := again(ctx, r, func() (claim, error) {
		t, ok, err := r.Client.ClaimTask(ctx, agentID)
		return claim{t, ok}, err
	})
	return c.t, c.ok, err
}

func (r *reviving) CompleteTask(ctx context.Context, id nexus.ID, agentID, claim string, ans tasks.Answer) (tasks.Task, *nexus.Context, error) {
	type done struct {
		t tasks.Task
		c *nexus.Context
	}
	d, err := again(ctx, r, func() (done, error) {
		t, c, err := r.Client.CompleteTask(ctx, id, agentID, claim, ans)
		return done{t, c}, err
	})
	return d.t, d.c, err
}

func (r *reviving) FailTask(ctx context.Context, id nexus.ID, agentID, claim string, f tasks.Failure) (tasks.Task, error) {
	return again(ctx, r, func() (tasks.Task, error) { return r.Client.FailTask(ctx, id, agentID, claim, f) })
}

func (r *reviving) Process(ctx context.Context, req orchestrator.Request) (*orchestrator.Answer, error) {
	return again(ctx, r, func() (*orchestrator.Answer, error) { return r.Client.Process(ctx, req) })
}

// mcpHandler is the /mcp endpoint of `nexus serve`: the MCP tools over the
// node's own store and searcher (nil: no search tools), and the agent and
// task tools over its task queue and agents (nil: none). maxBody bounds
// request bodies; the SDK logs only warnings and errors, as it would
// otherwise log every stateless request.
