package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/config"
)

// The node's agents, pools, supervised processes and external agents are
// tested in-process, in package node; here only what `nexus serve` itself
// does with a configuration file.

// writeNodeConfig writes a configuration file and returns its path.
func writeNodeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nexus.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls ok until it holds, failing the test after within.
func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A configuration the loader refuses stops serve before it touches the
// data directory, with the loader's message as is (file, line, field);
// so does a key source the agent cannot use. Keys are never quoted.
func TestServe_ConfigErrors(t *testing.T) {
	const key = "sk-proj-abcdefghijklmnop1234"
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "openai.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml, want string
		env              []string
		opensStore       bool // the problem shows once the store is open
	}{
		{"inline key", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n    api_key: " + key + "\n",
			"nexus.yaml:5: agents[0].api_key: an API key is never written in the configuration file", nil, false},
		{"unknown field", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n    retry: {max: 1}\n",
			"nexus.yaml:5: agents[0].retry: unknown field (known: api_key_env, args, base_url, breaker,", nil, false},
		{"secrets file readable by all", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n    secrets_file: " + keyFile + "\n",
			"nexus.yaml: agents[0] (gpt): the secrets file " + keyFile + " may be read or written by other users (mode 0644); refusing to use it: run chmod 600 " + keyFile, nil, false},
		{"key not in the environment", "agents:\n  - id: gpt\n    provider: openai\n    model: gpt-4o-mini\n",
			"nexus.yaml: agents[0] (gpt): the environment variable OPENAI_API_KEY that should hold the API key is not set", []string{"OPENAI_API_KEY="}, false},
		{"missing program", "supervisor:\n  processes:\n    - name: coder\n      command: nexus-no-such-program\n",
			`nexus.yaml: supervisor.processes[0] (coder) cannot be started: exec: "nexus-no-such-program": executable file not found in $PATH`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeNodeConfig(t, tc.yaml)
			data := filepath.Join(t.TempDir(), "data")
			cmd := exec.Command(binary, "serve", "--data", data, "--addr", "127.0.0.1:0", "--config", cfg)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("serve: %v, want exit status 2\n%s", err, out)
			}
			want := "nexus serve: " + strings.ReplaceAll(tc.want, "nexus.yaml", cfg)
			if last := lastLines(string(out)); !strings.HasPrefix(last, want) || !tc.opensStore && strings.Count(string(out), "\n") != 1 {
				t.Fatalf("serve said\n%s\nwant a last line starting\n%s", out, want)
			}
			if tc.opensStore {
				return
			}
			if _, lerr := config.Load(cfg); lerr != nil && string(out) != "nexus serve: "+lerr.Error()+"\n" {
				t.Fatalf("serve said\n%s\nthe loader says\n%s", out, lerr)
			}
			if strings.Contains(string(out), key) {
				t.Fatal("the key is quoted")
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Fatalf("the data directory was touched: %v", err)
			}
		})
	}
}
