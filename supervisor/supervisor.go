package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// Restart says when a process that ended is started again.
type Restart string

// Restart policies.
const (
	RestartOnFailure Restart = "on-failure" // after a non-zero exit or a signal
	RestartAlways    Restart = "always"     // after any exit
	RestartNever     Restart = "never"      // run once
)

// Policy is a restart policy with exponential backoff and a restart
// limit.
type Policy struct {
	Restart        Restart
	InitialBackoff time.Duration // wait before the first restart in the window (0: at once)
	MaxBackoff     time.Duration // cap of the wait
	MaxRestarts    int           // restarts allowed within Window before giving up
	Window         time.Duration // sliding window the restarts are counted in
}

// DefaultPolicy is the policy of a Spec that gives none.
func DefaultPolicy() Policy {
	return Policy{Restart: RestartOnFailure, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 30 * time.Second,
		MaxRestarts: 5, Window: time.Minute}
}

// Backoff is the wait before the next restart when recent restarts
// already happened inside the window.
func (p Policy) Backoff(recent int) time.Duration {
	d := p.InitialBackoff
	for i := 0; i < recent && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// Spec is a process to supervise. Zero fields take the defaults noted.
type Spec struct {
	// Name identifies the process in status and names its files: letters,
	// digits, '.', '_' and '-'.
	Name    string
	Command string   // looked up in PATH if it has no slash
	Args    []string // arguments after the command
	Env     []string // KEY=VALUE: the process's environment beyond PATH, HOME, LANG, LC_* and TZ of the supervisor's
	Dir     string   // working directory (default: the supervisor's)
	Policy  Policy   // default DefaultPolicy()
	// LogDir receives NAME.log (required).
	LogDir      string
	MaxLogSize  int64         // rotate past this size (default 10 MiB)
	LogKeep     int           // rotated files kept (0: none, only NAME.log)
	StopTimeout time.Duration // SIGTERM to SIGKILL (default 10s)
}

// Clock is the time source of backoff waits.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Supervisor.
type Options struct {
	// RunDir holds the pid files (required; created if missing).
	RunDir string
	Logger *slog.Logger // default: discard
	Clock  Clock        // default: the real clock
	// OnChange, if set, is called with a process's new status after each
	// change of state, from the goroutine watching that process: it must
	// return quickly.
	OnChange func(Status)
}

// State is where a process is in its life.
type State string

// States of a supervised process.
const (
	StateStarting State = "starting" // being started for the first time
	StateRunning  State = "running"  // the process runs
	StateBackoff  State = "backoff"  // it ended and waits to be restarted
	StateStopping State = "stopping" // a stop was asked; waiting for it to exit
	StateStopped  State = "stopped"  // stopped by Stop or Close
	StateExited   State = "exited"   // it ended and the policy does not restart it
	StateFailed   State = "failed"   // given up after too many restarts
)

// Exit is how a process ended.
type Exit struct {
	Code   int       `json:"code"`             // exit status; -1 if killed by a signal or never started
	Signal string    `json:"signal,omitempty"` // e.g. SIGKILL
	Error  string    `json:"error,omitempty"`  // why it could not be started
	At     time.Time `json:"at"`
}

// Success reports whether the process exited cleanly.
func (e Exit) Success() bool { return e.Code == 0 && e.Signal == "" && e.Error == "" }

func (e Exit) String() string {
	switch {
	case e.Error != "":
		return "could not start: " + e.Error
	case e.Signal != "":
		return "killed by " + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Status is the state of one supervised process.
type Status struct {
	Name        string    `json:"name"`
	State       State     `json:"state"`
	PID         int       `json:"pid,omitempty"`
	Restarts    int       `json:"restarts"` // since Start
	StartedAt   time.Time `json:"started_at,omitzero"`
	NextRestart time.Time `json:"next_restart,omitzero"` // in StateBackoff
	LastExit    *Exit     `json:"last_exit,omitempty"`
	Reason      string    `json:"reason,omitempty"` // why it failed
}

// Supervisor runs and restarts processes.
type Supervisor struct {
	opts Options

	mu     sync.Mutex
	procs  map[string]*proc
	closed bool
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ErrClosed is returned by Start after Close.
var ErrClosed = errors.New("supervisor: closed")

// New returns a supervisor keeping its pid files in opts.RunDir.
func New(opts Options) (*Supervisor, error) {
	if opts.RunDir == "" {
		return nil, errors.New("supervisor: no run directory for pid files")
	}
	dir, err := filepath.Abs(opts.RunDir)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	opts.RunDir = dir
	if err := os.MkdirAll(opts.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("supervisor: create the run directory: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	return &Supervisor{opts: opts, procs: map[string]*proc{}}, nil
}

// Start launches spec and supervises it until Stop or Close. It returns an
// error if the spec is invalid, a process of that name is still
// supervised, or the process cannot be started at all (then it is not
// supervised). A pid file left by a crashed supervisor is dealt with
// first (see the package doc).
func (s *Supervisor) Start(spec Spec) error {
	spec, err := withDefaults(spec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if p, ok := s.procs[spec.Name]; ok && !p.ended() {
		s.mu.Unlock()
		return fmt.Errorf("supervisor: %s is already supervised", spec.Name)
	}
	p := newProc(s, spec)
	s.procs[spec.Name] = p
	s.mu.Unlock()
	if err := p.begin(); err != nil {
		s.mu.Lock()
		if s.procs[spec.Name] == p {
			delete(s.procs, spec.Name)
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

func withDefaults(spec Spec) (Spec, error) {
	if !namePattern.MatchString(spec.Name) {
		return spec, fmt.Errorf("supervisor: %q is not a valid process name", spec.Name)
	}
	if spec.Command == "" || spec.LogDir == "" {
		return spec, fmt.Errorf("supervisor: %s: a command and a log directory are required", spec.Name)
	}
	if spec.Policy == (Policy{}) {
		spec.Policy = DefaultPolicy()
	}
	switch spec.Policy.Restart {
	case RestartOnFailure, RestartAlways, RestartNever:
	default:
		return spec, fmt.Errorf("supervisor: %s: unknown restart policy %q", spec.Name, spec.Policy.Restart)
	}
	if spec.Policy.Window <= 0 || spec.Policy.MaxRestarts < 0 || spec.Policy.InitialBackoff < 0 || spec.Policy.MaxBackoff < spec.Policy.InitialBackoff {
		return spec, fmt.Errorf("supervisor: %s: invalid restart policy %+v", spec.Name, spec.Policy)
	}
	if spec.MaxLogSize <= 0 {
		spec.MaxLogSize = 10 << 20
	}
	if spec.StopTimeout <= 0 {
		spec.StopTimeout = 10 * time.Second
	}
	return spec, nil
}

// Stop stops the named process (SIGTERM to its group, SIGKILL after its
// stop timeout) and waits until it and its log are done, or ctx ends. The
// process stays in Status as stopped.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	s.mu.Lock()
	p, ok := s.procs[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("supervisor: no process %q", name)
	}
	return p.stop(ctx)
}

// Close stops every process, in parallel, and waits for them; Start fails
// afterwards.
func (s *Supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	procs := make([]*proc, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.mu.Unlock()
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.stop(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status returns the status of every process, by name.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	out := make([]Status, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, p.snapshot())
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CheckHealth reports the supervised processes as a component: disabled
// when there are none, degraded while one waits to restart or has been
// given up, healthy otherwise; the details hold every status.
func (s *Supervisor) CheckHealth(context.Context) nexus.ComponentHealth {
	st := s.Status()
	h := nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{"processes": st}, Timestamp: time.Now().UTC()}
	if len(st) == 0 {
		h.Status = nexus.StatusDisabled
		return h
	}
	for _, p := range st {
		switch p.State {
		case StateFailed:
			h.Status = nexus.StatusDegraded
			h.Error = fmt.Sprintf("%s was given up: %s", p.Name, p.Reason)
		case StateBackoff:
			h.Status = nexus.StatusDegraded
			if h.Error == "" {
				h.Error = fmt.Sprintf("%s is restarting after %s", p.Name, p.LastExit)
			}
		}
	}
	return h
}

// pidPath is where the pid file of a process goes.
func (s *Supervisor) pidPath(name string) string {
	return filepath.Join(s.opts.RunDir, name+".pid")
}
