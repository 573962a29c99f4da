package supervisor_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/supervisor"
)

// helperEnv makes the test binary act as a supervised process.
const helperEnv = "SUPERVISOR_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helper(mode)
		return
	}
	os.Exit(m.Run())
}

// helper is the supervised process of the tests:
//
//	sleep        run until signalled
//	exit:N       print a line and exit with status N
//	stubborn     ignore SIGTERM, run until killed
//	spawn:FILE   start a stubborn grandchild, write its pid to FILE, ignore SIGTERM
//	chatty:N     print N lines of 100 bytes, one write each, then run until signalled
//	env:FILE     write its environment to FILE, one variable a line, and exit 0
func helper(mode string) {
	name, arg, _ := strings.Cut(mode, ":")
	switch name {
	case "sleep":
	case "exit":
		code, _ := strconv.Atoi(arg)
		fmt.Println("run, exiting with", code)
		os.Exit(code)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
	case "spawn":
		signal.Ignore(syscall.SIGTERM)
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=stubborn")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if err := os.WriteFile(arg, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			os.Exit(3)
		}
	case "env":
		if err := os.WriteFile(arg, []byte(strings.Join(os.Environ(), "\n")), 0o600); err != nil {
			os.Exit(3)
		}
		os.Exit(0)
	case "chatty":
		n, _ := strconv.Atoi(arg)
		for i := range n {
			os.Stdout.WriteString(fmt.Sprintf("line %03d %s\n", i, strings.Repeat("x", 90)))
			time.Sleep(time.Millisecond)
		}
	default:
		os.Exit(2)
	}
	for {
		time.Sleep(time.Hour)
	}
}

// helperSpec is a spec running the helper in mode.
func helperSpec(t *testing.T, name, mode string) supervisor.Spec {
	return supervisor.Spec{
		Name: name, Command: os.Args[0],
		// GORACE: a race-enabled helper would sleep 1s on every exit.
		Env:    []string{helperEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"},
		LogDir: filepath.Join(t.TempDir(), "logs"), StopTimeout: 5 * time.Second,
	}
}

// MustNew returns a supervisor over a temporary run directory, closed at
// the end of the test.
func MustNew(tb testing.TB, opts supervisor.Options) *supervisor.Supervisor {
	tb.Helper()
	if opts.RunDir == "" {
		opts.RunDir = filepath.Join(tb.TempDir(), "run")
	}
	s, err := supervisor.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// alive reports whether pid is a live process (zombies are dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+1:]
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// waitFor polls cond every 2 ms until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// status returns the status of the named process.
func status(t *testing.T, s *supervisor.Supervisor, name string) supervisor.Status {
	t.Helper()
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for %s", name)
	return supervisor.Status{}
}

// events collects the statuses a supervisor reports.
type events chan supervisor.Status

func (e events) onChange(st supervisor.Status) {
	select {
	case e <- st:
	default:
	}
}

// next waits for a status in state.
func (e events) next(t *testing.T, state supervisor.State) supervisor.Status {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case st := <-e:
			if st.State == state {
				return st
			}
		case <-timeout:
			t.Fatalf("no %s status within 10s", state)
		}
	}
}
