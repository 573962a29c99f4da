package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/agent"
)

// The command tests run real child processes: the test binary itself in
// helper mode (see TestMain), or a shell script.

func helperAgent(t *testing.T, mode string, edit func(*agent.Config)) *agent.Runner {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log, _ := logger(t)
	cfg := agent.Config{
		ID: "cmd1", Provider: agent.Command, Model: "script-1", Command: []string{exe},
		// A binary built with -race sleeps for a second as it exits, unless told not to.
		Env:     map[string]string{helperEnv: mode, "GORACE": "atexit_sleep_ms=0"},
		Timeout: 10 * time.Second, MaxRetries: -1,
		RetryBase: time.Millisecond, RetryMax: time.Millisecond, Logger: log,
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCommand_Process(t *testing.T) {
	ctx := context.Background()
	r := helperAgent(t, "echo", nil)
	ch := chain(2)
	resp, err := r.Process(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	prompt := agent.BuildPrompt(ch, 0)
	p := resp.Provenance
	if resp.Content != "cmd1/script-1 heard: "+prompt || p.Model != "helper-model" || p.TokensIn != len(prompt) ||
		p.TokensOut != 7 || p.FinalAgent != "cmd1" || p.Attempts != 1 {
		t.Errorf("answer %q, provenance %+v", resp.Content, p)
	}
	// The state the command returns is sent back with the next request,
	// saved by State and put back by Restore.
	if _, err := r.Generate(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	state, err := r.State()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Answers       int
		ProviderState struct{ N int } `json:"provider_state"`
	}
	if err := json.Unmarshal(state, &s); err != nil || s.Answers != 2 || s.ProviderState.N != 2 {
		t.Fatalf("state %s: %v", state, err)
	}
	r2 := helperAgent(t, "echo", nil)
	if err := r2.Restore(state); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Generate(ctx, "after a restart"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r2.State(); !strings.Contains(string(st), `"provider_state":{"N":3}`) {
		t.Errorf("after Restore and a call: %s", st)
	}
}

func TestCommand_Key(t *testing.T) {
	r := helperAgent(t, "key", func(c *agent.Config) {
		c.APIKey, c.Key = agent.NewSecret(testKey), agent.KeySource{Env: "HELPER_KEY"}
		c.Env["HELPER_WANT"] = testKey
	})
	resp, err := r.Generate(context.Background(), "hi")
	if err != nil || resp.Content != "key ok" {
		t.Fatalf("%+v, %v", resp, err)
	}
	r = helperAgent(t, "key", func(c *agent.Config) { c.Env["HELPER_WANT"] = testKey })
	_, err = r.Generate(context.Background(), "hi")
	wantErr(t, err, agent.ClassAuth, "the provider answered with an error: wrong key")
}

// waitGone waits until none of pids is running (gone or a zombie).
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs: %s", pid, stat)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestCommand_Killed(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc to check processes")
	}
	for _, how := range []string{"timeout", "cancel"} {
		t.Run(how, func(t *testing.T) {
			timeout := 500 * time.Millisecond
		again:
			pidFile := filepath.Join(t.TempDir(), "pids")
			r := helperAgent(t, "sleep", func(c *agent.Config) {
				c.Env["HELPER_PIDS"] = pidFile
				c.Timeout = timeout
				if how == "cancel" {
					c.Timeout = time.Minute
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if how == "cancel" {
				go func() {
					for {
						// Both pids written, not only the file created.
						if b, err := os.ReadFile(pidFile); err == nil && len(strings.Fields(string(b))) == 2 {
							cancel()
							return
						}
						time.Sleep(5 * time.Millisecond)
					}
				}()
			}
			start := time.Now()
			_, err := r.Generate(ctx, "hi")
			if how == "timeout" {
				if b, _ := os.ReadFile(pidFile); len(strings.Fields(string(b))) != 2 && timeout < 30*time.Second {
					// Killed before it started its child: a loaded
					// machine took longer than the timeout to start
					// the helper. Nothing to check; give it longer.
					timeout *= 2
					goto again
				}
				wantErr(t, err, agent.ClassTimeout, "command", fmt.Sprintf("did not answer in time and was killed (no stderr) (attempt timeout %v)", timeout))
			} else {
				wantErr(t, err, agent.ClassCanceled, "canceled by the caller")
			}
			// The kill and its wait take at most 4.5 s past the timeout
			// (5 s in all at the first attempt's 0.5 s).
			if el := time.Since(start); el > timeout+4500*time.Millisecond {
				t.Errorf("returned after %v (attempt timeout %v)", el, timeout)
			}
			var child, grandchild int
			b, _ := os.ReadFile(pidFile)
			if _, err := fmt.Sscan(string(b), &child, &grandchild); err != nil {
				t.Fatalf("pid file %q: %v", b, err)
			}
			waitGone(t, child, grandchild)
		})
	}
}

func TestCommand_Failures(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		argv     []string
		retries  int
		class    agent.Class
		attempts int
		parts    []string
	}{
		{"fail", nil, 0, agent.ClassServer, 1,
			[]string{"exited with status 3", "stderr: loading weights panic: boom, key [redacted] rejected"}},
		{"rate", nil, 1, agent.ClassRateLimit, 2, []string{"answered with an error: slow down (type rate_limit)", "(2 attempts)"}},
		{"rate-exit", nil, 1, agent.ClassBadRequest, 1, []string{"exited with status 1", "prompt too long"}},
		{"garbage", nil, 0, agent.ClassMalformed, 1, []string{"command answer is not JSON", "Traceback"}},
		{"huge", nil, 0, agent.ClassMalformed, 1, []string{"wrote more than 8388608 bytes"}},
		{"echo", []string{"/nonexistent/agent-bin"}, 2, agent.ClassConfig, 1, []string{"cannot run command /nonexistent/agent-bin"}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			r := helperAgent(t, tc.mode, func(c *agent.Config) {
				c.MaxRetries = cmpOrNever(tc.retries)
				c.APIKey, c.Key = agent.NewSecret(testKey), agent.KeySource{Env: "HELPER_KEY"}
				if tc.argv != nil {
					c.Command = tc.argv
				}
			})
			_, err := r.Generate(context.Background(), "hi")
			e := wantErr(t, err, tc.class, tc.parts...)
			if e.Attempts != tc.attempts {
				t.Errorf("%d attempts, want %d", e.Attempts, tc.attempts)
			}
		})
	}
}

// cmpOrNever turns 0 retries into the configuration's "never".
func cmpOrNever(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func TestCommand_Heartbeat(t *testing.T) {
	ctx := context.Background()
	if err := helperAgent(t, "echo", nil).Heartbeat(ctx); err != nil {
		t.Errorf("--version probe: %v", err)
	}
	err := helperAgent(t, "bad-probe", nil).Heartbeat(ctx)
	wantErr(t, err, agent.ClassServer, "exited with status 2", "stderr: probe: cannot reach the model")
	if err := helperAgent(t, "echo", func(c *agent.Config) { c.Probe = []string{"true"} }).Heartbeat(ctx); err != nil {
		t.Errorf("probe true: %v", err)
	}
	err = helperAgent(t, "echo", func(c *agent.Config) { c.Probe = []string{"false"} }).Heartbeat(ctx)
	wantErr(t, err, agent.ClassServer, "command false exited with status 1")
}

func TestCommand_ShellScript(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ok := script("ok.sh", "cat >/dev/null\necho '{\"content\":\"from sh\",\"usage\":{\"input_tokens\":3,\"output_tokens\":2}}'\n")
	log, _ := logger(t)
	r, err := agent.New(agent.Config{ID: "sh", Provider: agent.Command, Command: []string{ok}, Probe: []string{ok}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.Generate(context.Background(), "hi")
	if err != nil || resp.Content != "from sh" || resp.Provenance.TokensIn != 3 {
		t.Fatalf("%+v, %v", resp, err)
	}
	// A script that leaves a process holding its output is cut off after
	// a grace period instead of hanging the call.
	leaky := script("leaky.sh", "cat >/dev/null\nsleep 3 &\necho '{\"content\":\"x\"}'\n")
	r, err = agent.New(agent.Config{ID: "sh", Provider: agent.Command, Command: []string{leaky}, MaxRetries: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Generate(context.Background(), "hi")
	wantErr(t, err, agent.ClassServer, "exited but kept its output open")
}
