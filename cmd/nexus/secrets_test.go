package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// send sends a request with the bearer token and returns the status and
// the body.
func send(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServe_SecretsStayIn is the leak of issue 12 against the real binary:
// a failing command agent whose stderr prints the server's NEXUS_TOKEN and
// another agent's key. Neither reaches the 503 body, /health, GET
// /v1/agents, the event stream or the server log; and the command, a real
// child, sees neither in its environment.
func TestServe_SecretsStayIn(t *testing.T) {
	const token = "tok-node-secret-5e1f9a27c3b4d680"
	const otherKey = "sk-other-agent-key-71d2c9e4"
	llm := agenttest.NewProvider(t, "gpt")
	dir := t.TempDir()
	envOut := filepath.Join(dir, "child.env")
	broken := filepath.Join(dir, "broken")
	// What the program prints: the secrets it sees in its environment
	// (none), and copies of them it learned otherwise. Its probe passes
	// until the file broken exists.
	script := filepath.Join(dir, "leaky.sh")
	body := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = probe ] && [ ! -e %s ] && exit 0\nenv >%s\ncat >/dev/null 2>&1\necho \"env token=$NEXUS_TOKEN key=$OPENAI_API_KEY\" >&2\necho \"Authorization: Bearer %s; OPENAI_API_KEY=%s\" >&2\nexit 1\n",
		broken, envOut, token, otherKey)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := writeNodeConfig(t, fmt.Sprintf(`
agents:
  - id: gpt
    provider: openai
    base_url: %s
    model: fake-model
    api_key_env: OPENAI_API_KEY
  - id: leaky
    provider: command
    command: %s
    probe: [%s, probe]
    retries: {max: 0}
    heartbeat: {interval: 100ms, failure_threshold: 1}
`, llm.URL, script, script))
	p := startServe(t, t.TempDir(), "--config="+cfg, "NEXUS_TOKEN="+token, "OPENAI_API_KEY="+otherKey)
	defer stopServe(p)

	sub, err := httpapi.NewClient(p.url, httpapi.WithToken(token)).Subscribe(context.Background(), nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := os.WriteFile(broken, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ev := nodetest.AwaitEvent(t, sub, 10*time.Second, "leaky unhealthy", func(typ string, data map[string]any) bool {
		return typ == "agent" && data["agent"] == "leaky" && data["status"] == "unhealthy"
	})
	evText := fmt.Sprint(ev)

	q, err := httpapi.NewClient(p.url, httpapi.WithToken(token)).Put(context.Background(), nexus.Draft{Type: nexus.TypeInstruction, Content: "Do it."})
	if err != nil {
		t.Fatal(err)
	}
	code, procBody := send(t, "POST", p.url+"/v1/agents/leaky/process", token, `{"context_id":"`+q.ID.String()+`"}`)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("process: %d %s, want 503", code, procBody)
	}
	_, health := send(t, "GET", p.url+"/health", token, "")
	_, agents := send(t, "GET", p.url+"/v1/agents", token, "")
	_, one := send(t, "GET", p.url+"/v1/agents/leaky", token, "")

	exits := map[string]string{"the 503 body": procBody, "/health": health, "GET /v1/agents": agents,
		"GET /v1/agents/leaky": one, "the agent event": evText}
	for where, text := range exits {
		if !strings.Contains(text, "Authorization: Bearer [redacted]; OPENAI_API_KEY=[redacted]") {
			t.Errorf("%s does not quote the redacted stderr: %s", where, text)
		}
	}
	exits["the server log"] = p.stderr.String()
	if !strings.Contains(exits["the server log"], `Authorization: Bearer [redacted]; OPENAI_API_KEY=[redacted]`) {
		t.Errorf("the server log does not quote the redacted stderr: %s", exits["the server log"])
	}
	for where, text := range exits {
		for _, secret := range []string{token, otherKey} {
			if strings.Contains(text, secret) {
				t.Errorf("%s leaks %s: %s", where, secret, text)
			}
		}
	}
	if !strings.Contains(procBody, `stderr: env token= key=`) {
		t.Errorf("the 503 body does not show an environment without the secrets: %s", procBody)
	}
	childEnv, err := os.ReadFile(envOut)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(childEnv, []byte(token)) || bytes.Contains(childEnv, []byte(otherKey)) || bytes.Contains(childEnv, []byte("NEXUS_TOKEN")) {
		t.Errorf("the command's environment holds a secret of the server:\n%s", childEnv)
	}
}

// nexusEnv runs the binary with env added and returns its combined output
// and exit code.
func nexusEnv(env []string, args ...string) (string, int) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	return string(out), 0
}

// NEXUS_TOKEN_FILE names the token for serve and the client verbs; a
// token file other users may read is refused; --token works but warns
// that it shows in ps.
func TestCLI_TokenFile(t *testing.T) {
	const token = "tok-from-file-0f8e2d6a4c1b9735e0c7a9d3f2b68154"
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, t.TempDir(), "NEXUS_TOKEN=", "NEXUS_TOKEN_FILE="+tokFile)
	defer stopServe(p)
	if code, _ := send(t, "GET", p.url+"/v1/contexts", "wrong-token-123456", ""); code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401 (the server took its token from the file)", code)
	}
	server := "NEXUS_SERVER=" + p.url
	out, code := nexusEnv([]string{server, "NEXUS_TOKEN=", "NEXUS_TOKEN_FILE=" + tokFile}, "put", "--type", "instruction", "from the file")
	if code != 0 || strings.Contains(out, "warning") {
		t.Fatalf("put with NEXUS_TOKEN_FILE: %d %s", code, out)
	}
	out, code = nexusEnv([]string{server, "NEXUS_TOKEN=", "NEXUS_TOKEN_FILE="}, "ls", "--token", token)
	if code != 0 || !strings.Contains(out, tokenWarning) || !strings.Contains(out, "from the file") {
		t.Fatalf("ls --token: %d %s", code, out)
	}
	out, code = nexusEnv([]string{server, "NEXUS_TOKEN=" + token, "NEXUS_TOKEN_FILE=" + tokFile}, "ls")
	if code != 2 || !strings.Contains(out, "both NEXUS_TOKEN and NEXUS_TOKEN_FILE are set: set only one") {
		t.Fatalf("both set: %d %s", code, out)
	}
	if err := os.Chmod(tokFile, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "the token file " + tokFile + " may be read or written by other users (mode 0644); refusing to use it: run chmod 600 " + tokFile
	for _, args := range [][]string{{"ls"}, {"mcp", "--no-start"}, {"fsck", "--server", p.url}} {
		out, code = nexusEnv([]string{server, "NEXUS_TOKEN=", "NEXUS_TOKEN_FILE=" + tokFile}, args...)
		if code != 2 || !strings.Contains(out, want) || strings.Contains(out, token) {
			t.Errorf("%v with a 0644 token file: %d %s", args, code, out)
		}
	}
	out, code = nexusEnv([]string{"NEXUS_TOKEN=", "NEXUS_TOKEN_FILE=" + tokFile}, "serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(out, want) {
		t.Errorf("serve with a 0644 token file: %d %s", code, out)
	}
}

// tokenWarning is what a verb given --token prints.
const tokenWarning = "warning: --token is visible to every user of this machine in the process list (ps); " +
	"put the token in a file of mode 0600 and set NEXUS_TOKEN_FILE to its path instead"
