package supervisor_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/supervisor"
)

// A process killed with SIGKILL is restarted; the test reports the time
// from the kill to the new process running (exec done), over 20 kills,
// with no backoff so that the figure is the supervisor's own cost. With
// the default policy the first restart waits InitialBackoff (100ms) more.
//
//	go test ./supervisor -run TestSupervisor_KillRestart -v -count=1
func TestSupervisor_KillRestart(t *testing.T) {
	type started struct {
		pid int
		at  time.Time
	}
	starts := make(chan started, 64)
	s := MustNew(t, supervisor.Options{OnChange: func(st supervisor.Status) {
		if st.State == supervisor.StateRunning {
			starts <- started{st.PID, time.Now()}
		}
	}})
	spec := helperSpec(t, "victim", "sleep")
	spec.Policy = supervisor.Policy{Restart: supervisor.RestartOnFailure, MaxBackoff: time.Second, MaxRestarts: 1000, Window: time.Minute}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	cur := <-starts
	const kills = 20
	var took []time.Duration
	for range kills {
		at := time.Now()
		if err := syscall.Kill(cur.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		select {
		case next := <-starts:
			if next.pid == cur.pid {
				t.Fatalf("restarted with the same pid %d", next.pid)
			}
			if alive(cur.pid) {
				t.Fatalf("the killed process %d is still alive", cur.pid)
			}
			took = append(took, next.at.Sub(at))
			cur = next
		case <-time.After(10 * time.Second):
			t.Fatalf("not restarted within 10s of SIGKILL: %+v", status(t, s, "victim"))
		}
	}
	st := status(t, s, "victim")
	if st.State != supervisor.StateRunning || st.Restarts != kills || st.PID != cur.pid {
		t.Errorf("status %+v; want running, %d restarts, pid %d", st, kills, cur.pid)
	}
	if st.LastExit == nil || st.LastExit.Signal != "SIGKILL" || st.LastExit.Code != -1 {
		t.Errorf("last exit %+v; want killed by SIGKILL", st.LastExit)
	}
	slices.Sort(took)
	t.Logf("restart after SIGKILL (kill → new process running), %d kills: p50 %v, p90 %v, max %v",
		len(took), took[len(took)/2], took[len(took)*9/10], took[len(took)-1])
}

// A process that keeps failing is given up once it used up its restarts
// in the window; every run's output is in its log.
func TestSupervisor_RestartLimit(t *testing.T) {
	s := MustNew(t, supervisor.Options{})
	spec := helperSpec(t, "crasher", "exit:3")
	spec.Policy = supervisor.Policy{Restart: supervisor.RestartOnFailure, InitialBackoff: time.Millisecond,
		MaxBackoff: 4 * time.Millisecond, MaxRestarts: 3, Window: time.Minute}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crasher to be given up", func() bool { return status(t, s, "crasher").State == supervisor.StateFailed })
	st := status(t, s, "crasher")
	if st.Restarts != 3 || st.PID != 0 || st.LastExit == nil || st.LastExit.Code != 3 {
		t.Errorf("status %+v; want 3 restarts, no pid, last exit 3", st)
	}
	if want := "3 restarts within 1m0s, the most allowed; last: exit status 3"; st.Reason != want {
		t.Errorf("reason %q, want %q", st.Reason, want)
	}
	log, err := os.ReadFile(filepath.Join(spec.LogDir, "crasher.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "run, exiting with 3\n"); n != 4 {
		t.Errorf("the log holds %d runs, want 4 (the first and 3 restarts):\n%s", n, log)
	}
	h := s.CheckHealth(t.Context())
	if h.Status != nexus.StatusDegraded || !strings.Contains(h.Error, "crasher was given up") {
		t.Errorf("health %+v; want degraded, naming the crasher", h)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"state":"failed"`) || !strings.Contains(string(b), `"last_exit":{"code":3,`) {
		t.Errorf("status JSON %s", b)
	}
}

// fakeClock hands every backoff wait to the test, which fires it.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d    time.Duration
	fire chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := fakeWait{d, make(chan time.Time, 1)}
	c.waits <- w
	return w.fire
}

// advance moves the clock past a wait and fires it.
func (c *fakeClock) advance(w fakeWait) {
	c.mu.Lock()
	c.now = c.now.Add(w.d)
	now := c.now
	c.mu.Unlock()
	w.fire <- now
}

// The waits between restarts double from InitialBackoff up to MaxBackoff,
// and nothing is restarted before its wait is over.
func TestSupervisor_Backoff(t *testing.T) {
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), waits: make(chan fakeWait, 16)}
	s := MustNew(t, supervisor.Options{Clock: clock})
	spec := helperSpec(t, "flaky", "exit:1")
	spec.Policy = supervisor.Policy{Restart: supervisor.RestartOnFailure, InitialBackoff: time.Second,
		MaxBackoff: 4 * time.Second, MaxRestarts: 10, Window: time.Hour}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		var w fakeWait
		select {
		case w = <-clock.waits:
		case <-time.After(10 * time.Second):
			t.Fatalf("wait %d never asked for", i)
		}
		if w.d != want {
			t.Errorf("wait %d: %v, want %v", i, w.d, want)
		}
		st := status(t, s, "flaky")
		if st.State != supervisor.StateBackoff || st.Restarts != i || !st.NextRestart.Equal(clock.Now().Add(want)) {
			t.Errorf("wait %d: status %+v; want backoff, %d restarts, next at now+%v", i, st, i, want)
		}
		clock.advance(w)
	}
	if err := s.Stop(t.Context(), "flaky"); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "flaky"); st.State != supervisor.StateStopped {
		t.Errorf("after Stop: %+v", st)
	}
}

func TestSupervisor_PolicyBackoff(t *testing.T) {
	p := supervisor.Policy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for recent, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		if got := p.Backoff(recent); got != want*time.Millisecond {
			t.Errorf("Backoff(%d) = %v, want %v", recent, got, want*time.Millisecond)
		}
	}
	if got := (supervisor.Policy{MaxBackoff: time.Second}).Backoff(5); got != 0 {
		t.Errorf("no initial backoff: %v, want 0", got)
	}
}

// A clean exit ends the process under on-failure and never, and restarts
// it under always.
func TestSupervisor_ExitPolicies(t *testing.T) {
	for _, tc := range []struct {
		restart  supervisor.Restart
		mode     string
		state    supervisor.State
		restarts int
	}{
		{supervisor.RestartOnFailure, "exit:0", supervisor.StateExited, 0},
		{supervisor.RestartNever, "exit:1", supervisor.StateExited, 0},
		{supervisor.RestartAlways, "exit:0", supervisor.StateFailed, 2},
	} {
		t.Run(string(tc.restart), func(t *testing.T) {
			s := MustNew(t, supervisor.Options{})
			spec := helperSpec(t, "p", tc.mode)
			spec.Policy = supervisor.Policy{Restart: tc.restart, MaxBackoff: time.Millisecond, MaxRestarts: 2, Window: time.Minute}
			if err := s.Start(spec); err != nil {
				t.Fatal(err)
			}
			waitFor(t, string(tc.state), func() bool { return status(t, s, "p").State == tc.state })
			if st := status(t, s, "p"); st.Restarts != tc.restarts {
				t.Errorf("status %+v; want %d restarts", st, tc.restarts)
			}
		})
	}
}

// Stop reaches the whole process group: a child and the grandchild it
// spawned, both ignoring SIGTERM, are killed after the stop timeout; the
// pid file exists while the process runs and is gone after.
func TestSupervisor_StopKillsGroup(t *testing.T) {
	ev := make(events, 16)
	run := filepath.Join(t.TempDir(), "run")
	s := MustNew(t, supervisor.Options{RunDir: run, OnChange: ev.onChange})
	gcFile := filepath.Join(t.TempDir(), "grandchild.pid")
	spec := helperSpec(t, "parent", "spawn:"+gcFile)
	spec.StopTimeout = 200 * time.Millisecond
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	child := ev.next(t, supervisor.StateRunning).PID
	grandchild := readPid(t, gcFile)
	pidFile := filepath.Join(run, "parent.pid")
	if got := readPid(t, pidFile); got != child {
		t.Fatalf("pid file holds %d, want %d", got, child)
	}
	begin := time.Now()
	if err := s.Stop(t.Context(), "parent"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	if alive(child) || alive(grandchild) {
		t.Fatalf("after Stop: child alive %v, grandchild alive %v", alive(child), alive(grandchild))
	}
	if took < spec.StopTimeout {
		t.Errorf("Stop took %v: SIGTERM-ignoring processes were killed before the stop timeout %v", took, spec.StopTimeout)
	}
	st := status(t, s, "parent")
	if st.State != supervisor.StateStopped || st.LastExit == nil || st.LastExit.Signal != "SIGKILL" {
		t.Errorf("status %+v; want stopped, killed by SIGKILL", st)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after Stop: %v", err)
	}
}

// When a process dies, what is left of its group dies before the restart.
func TestSupervisor_CrashKillsLeftovers(t *testing.T) {
	ev := make(events, 16)
	s := MustNew(t, supervisor.Options{OnChange: ev.onChange})
	gcFile := filepath.Join(t.TempDir(), "grandchild.pid")
	spec := helperSpec(t, "parent", "spawn:"+gcFile)
	spec.StopTimeout = 100 * time.Millisecond
	spec.Policy = supervisor.Policy{Restart: supervisor.RestartOnFailure, MaxBackoff: time.Second, MaxRestarts: 5, Window: time.Minute}
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	child := ev.next(t, supervisor.StateRunning).PID
	waitFor(t, "the grandchild's pid", func() bool { _, err := os.Stat(gcFile); return err == nil })
	grandchild := readPid(t, gcFile)
	os.Remove(gcFile)
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev.next(t, supervisor.StateRunning)
	if alive(grandchild) {
		t.Errorf("the grandchild %d of the killed process outlived it", grandchild)
	}
}

// A stale pid file naming a process that is not ours is removed and the
// process left alone; one naming our orphan (the marker in its
// environment) gets the orphan stopped before a fresh start.
func TestSupervisor_StalePidFile(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	stranger := startHelper(t, "sleep", nil)
	orphan := startHelper(t, "stubborn", []string{"NEXUS_SUPERVISOR_PIDFILE=" + filepath.Join(run, "orphaned.pid")})
	writeFile(t, filepath.Join(run, "strange.pid"), strconv.Itoa(stranger.Process.Pid)+"\n")
	writeFile(t, filepath.Join(run, "orphaned.pid"), strconv.Itoa(orphan.Process.Pid)+"\n")
	writeFile(t, filepath.Join(run, "garbled.pid"), "not a pid\n")

	s := MustNew(t, supervisor.Options{RunDir: run})
	for _, name := range []string{"strange", "orphaned", "garbled"} {
		spec := helperSpec(t, name, "sleep")
		spec.StopTimeout = 100 * time.Millisecond
		if err := s.Start(spec); err != nil {
			t.Fatal(err)
		}
		st := status(t, s, name)
		if got := readPid(t, filepath.Join(run, name+".pid")); got != st.PID {
			t.Errorf("%s: pid file holds %d, want the new process %d", name, got, st.PID)
		}
	}
	if !alive(stranger.Process.Pid) {
		t.Error("a process that is not ours was killed")
	}
	if alive(orphan.Process.Pid) {
		t.Error("our orphan (ignoring SIGTERM) was not killed")
	}
}

// Output goes to NAME.log, rotated by size, keeping LogKeep files.
func TestSupervisor_LogRotation(t *testing.T) {
	s := MustNew(t, supervisor.Options{})
	spec := helperSpec(t, "chatty", "chatty:60")
	spec.MaxLogSize, spec.LogKeep = 1024, 2
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(spec.LogDir, "chatty.log")
	waitFor(t, "the last line", func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "line 059 ")
	})
	var all string
	for _, name := range []string{log + ".2", log + ".1", log} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1024 {
			t.Errorf("%s holds %d bytes, more than the 1024 allowed", filepath.Base(name), len(b))
		}
		all += string(b)
	}
	if _, err := os.Stat(log + ".3"); !os.IsNotExist(err) {
		t.Errorf("chatty.log.3 exists (keep is 2): %v", err)
	}
	if strings.Contains(all, "line 000 ") {
		t.Error("the oldest lines were kept past the rotation limit")
	}
	if !strings.HasSuffix(all, "line 059 "+strings.Repeat("x", 90)+"\n") {
		t.Errorf("the kept files do not end with the last line")
	}
}

func TestSupervisor_StartErrors(t *testing.T) {
	s := MustNew(t, supervisor.Options{})
	logs := t.TempDir()
	for _, tc := range []struct {
		name string
		spec supervisor.Spec
		want string
	}{
		{"bad name", supervisor.Spec{Name: "../x", Command: "true", LogDir: logs}, `"../x" is not a valid process name`},
		{"no log dir", supervisor.Spec{Name: "x", Command: "true"}, "a command and a log directory are required"},
		{"missing program", supervisor.Spec{Name: "x", Command: "/nonexistent/agent", LogDir: logs}, "start x:"},
		{"bad policy", supervisor.Spec{Name: "x", Command: "true", LogDir: logs, Policy: supervisor.Policy{Restart: "sometimes", Window: time.Second}}, `unknown restart policy "sometimes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Start(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if st := s.Status(); len(st) != 0 {
		t.Errorf("failed starts left statuses: %+v", st)
	}
	if h := s.CheckHealth(t.Context()); h.Status != nexus.StatusDisabled {
		t.Errorf("health with no process: %+v", h)
	}
	spec := helperSpec(t, "once", "sleep")
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(spec); err == nil || !strings.Contains(err.Error(), "already supervised") {
		t.Errorf("second start: %v", err)
	}
	if h := s.CheckHealth(t.Context()); h.Status != nexus.StatusHealthy {
		t.Errorf("health with a running process: %+v", h)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(helperSpec(t, "late", "sleep")); err != supervisor.ErrClosed {
		t.Errorf("start after Close: %v, want ErrClosed", err)
	}
}

// startHelper runs the helper outside any supervisor, in its own group,
// and reaps it at the end of the test.
func startHelper(t *testing.T, mode string, env []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return cmd
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	var b []byte
	waitFor(t, path, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0
	})
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return pid
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
