package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nexus-mem/nexus/internal/secrets"
)

// markerEnv is set in every supervised process to the path of its pid
// file, so that a later supervisor can tell its orphan from a stranger
// that reuses the pid.
const markerEnv = "NEXUS_SUPERVISOR_PIDFILE"

// pumpGrace bounds how long a finished process's log pump may drain after
// its group is gone, before its pipe is closed under it.
const pumpGrace = 2 * time.Second

// proc is one supervised process across its restarts.
type proc struct {
	sup      *Supervisor
	spec     Spec
	pidPath  string
	stopc    chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when nothing of the process is left
	log      *logFile
	pumps    sync.WaitGroup
	recent   []time.Time // restarts inside the window; loop goroutine only

	mu      sync.Mutex
	status  Status
	readers []*os.File // read ends of the output pipes still pumped
}

// instance is one run of the process.
type instance struct {
	pid    int       // 0 if it could not be started
	exited chan Exit // receives how it ended, once
}

func newProc(s *Supervisor, spec Spec) *proc {
	return &proc{
		sup: s, spec: spec, pidPath: s.pidPath(spec.Name),
		stopc: make(chan struct{}), done: make(chan struct{}),
		status: Status{Name: spec.Name, State: StateStarting},
	}
}

// begin deals with a stale pid file, starts the first run and hands the
// process to its watching goroutine.
func (p *proc) begin() error {
	log, err := openLog(filepath.Join(p.spec.LogDir, p.spec.Name+".log"), p.spec.MaxLogSize, p.spec.LogKeep)
	if err != nil {
		close(p.done)
		return fmt.Errorf("supervisor: %s: %w", p.spec.Name, err)
	}
	p.log = log
	p.clearStale()
	select {
	case <-p.stopc:
		p.update(func(st *Status) { st.State = StateStopped })
		p.log.Close()
		close(p.done)
		return ErrClosed
	default:
	}
	inst := p.launch()
	if inst.pid == 0 {
		ex := <-inst.exited
		p.log.Close()
		close(p.done)
		return fmt.Errorf("supervisor: start %s: %s", p.spec.Name, ex.Error)
	}
	go p.watch(inst)
	return nil
}

// launch starts one run. Its output goes through a pipe to the log, so
// that the process gets a plain file descriptor and Wait returns when it
// exits, whatever its children hold open.
func (p *proc) launch() *instance {
	inst := &instance{exited: make(chan Exit, 1)}
	r, w, err := os.Pipe()
	if err != nil {
		inst.exited <- Exit{Code: -1, Error: err.Error(), At: p.sup.opts.Clock.Now()}
		return inst
	}
	cmd := exec.Command(p.spec.Command, p.spec.Args...)
	cmd.Env = secrets.ChildEnv(append(p.spec.Env, markerEnv+"="+p.pidPath)...)
	cmd.Dir = p.spec.Dir
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		inst.exited <- Exit{Code: -1, Error: err.Error(), At: p.sup.opts.Clock.Now()}
		return inst
	}
	inst.pid = cmd.Process.Pid
	p.pump(r)
	go func() {
		err := cmd.Wait()
		inst.exited <- exitOf(cmd.ProcessState, err, p.sup.opts.Clock.Now())
	}()
	if err := writePidFile(p.pidPath, inst.pid); err != nil {
		p.sup.opts.Logger.Warn("supervisor: pid file not written", "process", p.spec.Name, "err", err)
	}
	now := p.sup.opts.Clock.Now()
	p.update(func(st *Status) {
		st.State, st.PID, st.StartedAt, st.NextRestart = StateRunning, inst.pid, now, time.Time{}
	})
	p.sup.opts.Logger.Info("supervisor: started", "process", p.spec.Name, "pid", inst.pid)
	return inst
}

// pump copies a run's output to the log until every holder of the pipe's
// write end is gone.
func (p *proc) pump(r *os.File) {
	p.mu.Lock()
	p.readers = append(p.readers, r)
	p.mu.Unlock()
	p.pumps.Go(func() {
		io.Copy(drainWriter{p.log}, r)
		p.mu.Lock()
		for i, x := range p.readers {
			if x == r {
				p.readers = append(p.readers[:i], p.readers[i+1:]...)
				break
			}
		}
		p.mu.Unlock()
		r.Close()
	})
}

// drainWriter never fails, so that a pump keeps draining the pipe (a
// process whose output pipe closes would die of SIGPIPE) even when the log
// cannot be written.
type drainWriter struct{ w io.Writer }

func (d drainWriter) Write(p []byte) (int, error) {
	d.w.Write(p)
	return len(p), nil
}

// watch restarts the process under its policy until it is stopped, exits
// for good or is given up.
func (p *proc) watch(inst *instance) {
	defer p.cleanup()
	for {
		var ex Exit
		select {
		case ex = <-inst.exited:
		case <-p.stopc:
			p.update(func(st *Status) { st.State = StateStopping })
			ex = p.terminate(inst)
			p.finish(StateStopped, &ex, "")
			return
		}
		p.afterExit(inst)
		delay, again := p.decide(ex)
		if !again {
			return
		}
		select {
		case <-p.sup.opts.Clock.After(delay):
		case <-p.stopc:
			p.finish(StateStopped, nil, "")
			return
		}
		p.recent = append(p.recent, p.sup.opts.Clock.Now())
		p.update(func(st *Status) { st.Restarts++ })
		inst = p.launch()
	}
}

// afterExit kills what is left of a run's process group and removes its
// pid file.
func (p *proc) afterExit(inst *instance) {
	if inst.pid == 0 {
		return
	}
	if signalGroup(inst.pid, syscall.SIGKILL) {
		waitGroupGone(inst.pid, time.Now().Add(time.Second))
	}
	removePidFile(p.pidPath, inst.pid)
}

// decide applies the policy to a run that ended: the wait before the next
// run, or false when there is none (the final state is then set).
func (p *proc) decide(ex Exit) (time.Duration, bool) {
	pol := p.spec.Policy
	if pol.Restart == RestartNever || (pol.Restart == RestartOnFailure && ex.Success()) {
		p.sup.opts.Logger.Info("supervisor: ended", "process", p.spec.Name, "exit", ex.String())
		p.finish(StateExited, &ex, "")
		return 0, false
	}
	now := p.sup.opts.Clock.Now()
	kept := p.recent[:0]
	for _, t := range p.recent {
		if now.Sub(t) < pol.Window {
			kept = append(kept, t)
		}
	}
	p.recent = kept
	if len(kept) >= pol.MaxRestarts {
		reason := fmt.Sprintf("%d restarts within %v, the most allowed; last: %s", len(kept), pol.Window, ex)
		p.sup.opts.Logger.Error("supervisor: given up", "process", p.spec.Name, "reason", reason)
		p.finish(StateFailed, &ex, reason)
		return 0, false
	}
	d := pol.Backoff(len(kept))
	p.sup.opts.Logger.Warn("supervisor: restarting", "process", p.spec.Name, "exit", ex.String(), "in", d)
	p.update(func(st *Status) {
		st.State, st.PID, st.LastExit, st.NextRestart = StateBackoff, 0, &ex, now.Add(d)
	})
	return d, true
}

// terminate stops a run: SIGTERM to its group, SIGKILL once the stop
// timeout has passed, and the same for what is left of the group.
func (p *proc) terminate(inst *instance) Exit {
	if inst.pid == 0 {
		return <-inst.exited
	}
	deadline := time.Now().Add(p.spec.StopTimeout)
	signalGroup(inst.pid, syscall.SIGTERM)
	var ex Exit
	timer := time.NewTimer(p.spec.StopTimeout)
	defer timer.Stop()
	select {
	case ex = <-inst.exited:
	case <-timer.C:
		signalGroup(inst.pid, syscall.SIGKILL)
		ex = <-inst.exited
	}
	if !waitGroupGone(inst.pid, deadline) {
		signalGroup(inst.pid, syscall.SIGKILL)
		waitGroupGone(inst.pid, time.Now().Add(time.Second))
	}
	removePidFile(p.pidPath, inst.pid)
	return ex
}

// finish sets a final state.
func (p *proc) finish(state State, ex *Exit, reason string) {
	p.update(func(st *Status) {
		st.State, st.PID, st.NextRestart, st.Reason = state, 0, time.Time{}, reason
		if ex != nil {
			st.LastExit = ex
		}
	})
}

// cleanup lets the log pumps drain, closes the log and marks the process
// done.
func (p *proc) cleanup() {
	drained := make(chan struct{})
	go func() { p.pumps.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(pumpGrace):
		// A descendant outside the group still holds the pipe.
		p.mu.Lock()
		for _, r := range p.readers {
			r.Close()
		}
		p.mu.Unlock()
		<-drained
	}
	p.log.Close()
	close(p.done)
}

// clearStale deals with a pid file left by a supervisor that crashed.
func (p *proc) clearStale() {
	pid, err := readPidFile(p.pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	log := p.sup.opts.Logger.With("process", p.spec.Name, "pid_file", p.pidPath)
	switch {
	case err != nil:
		log.Warn("supervisor: unreadable pid file removed", "err", err)
	case isOurs(pid, p.pidPath):
		log.Warn("supervisor: stopping the orphan of a previous supervisor", "pid", pid)
		stopOrphan(pid, p.spec.StopTimeout)
	default:
		log.Info("supervisor: stale pid file removed: its process is gone", "pid", pid)
	}
	if err := os.Remove(p.pidPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("supervisor: stale pid file not removed", "err", err)
	}
}

// stop asks the process to stop and waits for it.
func (p *proc) stop(ctx context.Context) error {
	p.stopOnce.Do(func() { close(p.stopc) })
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("supervisor: stop %s: %w", p.spec.Name, ctx.Err())
	}
}

func (p *proc) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// update changes the status and reports the change.
func (p *proc) update(f func(*Status)) {
	p.mu.Lock()
	f(&p.status)
	st := p.copyLocked()
	p.mu.Unlock()
	if p.sup.opts.OnChange != nil {
		p.sup.opts.OnChange(st)
	}
}

func (p *proc) snapshot() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.copyLocked()
}

// copyLocked returns a copy of the status that shares nothing with it.
func (p *proc) copyLocked() Status {
	st := p.status
	if st.LastExit != nil {
		ex := *st.LastExit
		st.LastExit = &ex
	}
	return st
}

// exitOf reads how a run ended.
func exitOf(state *os.ProcessState, err error, at time.Time) Exit {
	if state == nil {
		return Exit{Code: -1, Error: err.Error(), At: at}
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Exit{Code: -1, Signal: unix.SignalName(ws.Signal()), At: at}
	}
	return Exit{Code: state.ExitCode(), At: at}
}
