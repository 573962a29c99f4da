package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// writeScript writes an executable shell script to dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCommand_Environment proves with a real child that a command agent
// sees none of the server's secrets: only PATH, HOME, LANG, LC_*, TZ, its
// env and its own key.
func TestCommand_Environment(t *testing.T) {
	t.Setenv("NEXUS_TOKEN", "tok-server-4b8e1d")
	t.Setenv("NEXUS_TOKEN_FILE", "/etc/nexus/token")
	t.Setenv("OPENAI_API_KEY", "sk-other-agent-9c2f")
	t.Setenv("CMD_AGENT_KEY", "own-key-6a1d")
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	sh := writeScript(t, dir, "env.sh", "cat >/dev/null\nenv >"+out+"\necho '{\"content\":\"ok\"}'\n")
	log, _ := logger(t)
	r, err := agent.New(agent.Config{ID: "sh", Provider: agent.Command, Command: []string{sh}, Logger: log,
		Key: agent.KeySource{Env: "CMD_AGENT_KEY"}, Env: map[string]string{"LISTED": "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Generate(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var names []string
	for _, l := range lines {
		name, _, _ := strings.Cut(l, "=")
		if name != "PWD" && name != "SHLVL" && name != "_" { // set by the shell itself
			names = append(names, name)
		}
	}
	want := []string{"CMD_AGENT_KEY", "LISTED"}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "PATH" || name == "HOME" || name == "LANG" || name == "TZ" || strings.HasPrefix(name, "LC_") {
			want = append(want, name)
		}
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("the command sees %v, want %v", names, want)
	}
	for _, secret := range []string{"tok-server-4b8e1d", "sk-other-agent-9c2f", "/etc/nexus/token"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the command sees the server's secret %s", secret)
		}
	}
	for _, kv := range []string{"LISTED=yes", "CMD_AGENT_KEY=own-key-6a1d"} {
		if !slices.Contains(lines, kv) {
			t.Errorf("the command lacks %s", kv)
		}
	}
}

// TestCommand_Redactor: a failing command that prints another agent's key
// and the node's token on stderr has them replaced in its error, its
// status and the log; its own key too.
func TestCommand_Redactor(t *testing.T) {
	const token, other, own = "tok-node-3e9d7a", "sk-other-agent-1f5b", "own-key-8c4e"
	t.Setenv("CMD_AGENT_KEY", own)
	sh := writeScript(t, t.TempDir(), "leak.sh", "cat >/dev/null\necho \"token "+token+" key "+other+" own $CMD_AGENT_KEY\" >&2\nexit 1\n")
	red := nexus.NewRedactor(token, other)
	log, logs := logger(t)
	r, err := agent.New(agent.Config{ID: "sh", Provider: agent.Command, Command: []string{sh}, Logger: log, MaxRetries: -1,
		Key: agent.KeySource{Env: "CMD_AGENT_KEY"}, Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Generate(context.Background(), "hi")
	wantErr(t, err, agent.ClassServer, "stderr: token [redacted] key [redacted] own [redacted]")
	st := r.Status()
	for _, text := range []string{err.Error(), nexus.ErrorMessage(err), st.LastError, logs()} {
		for _, secret := range []string{token, other, own} {
			if strings.Contains(text, secret) {
				t.Errorf("%s leaks in %q", secret, text)
			}
		}
	}
	if red.Redact(own) != nexus.Redacted {
		t.Error("the agent's key was not registered with the redactor")
	}
}
