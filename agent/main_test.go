package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// testKey must never show up in an error, a log line or a printed config.
const testKey = "sk-test-Qm4V8zKeyThatMustNeverBePrinted"

// helperEnv makes the test binary act as a command agent (see helper).
const helperEnv = "NEXUS_AGENT_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode))
	}
	os.Exit(m.Run())
}

// helper is a command agent with scripted behaviours, run as a child
// process of the tests: the request on stdin, the answer on stdout.
func helper(mode string) int {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		if mode == "bad-probe" {
			fmt.Fprintln(os.Stderr, "probe: cannot reach the model")
			return 2
		}
		fmt.Println("helper 1.0")
		return 0
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		return 9
	}
	var req struct {
		Agent    string          `json:"agent"`
		Model    string          `json:"model"`
		System   string          `json:"system"`
		Messages []agent.Message `json:"messages"`
		State    struct{ N int } `json:"state"`
	}
	if err := json.Unmarshal(in, &req); err != nil || len(req.Messages) == 0 {
		fmt.Fprintf(os.Stderr, "bad request %q: %v\n", in, err)
		return 8
	}
	last := req.Messages[len(req.Messages)-1].Content
	switch mode {
	case "echo":
		out, _ := json.Marshal(map[string]any{
			"content": fmt.Sprintf("%s/%s heard: %s", req.Agent, req.Model, last), "model": "helper-model",
			"usage": map[string]int{"input_tokens": len(last), "output_tokens": 7},
			"state": map[string]int{"N": req.State.N + 1},
		})
		os.Stdout.Write(out)
	case "key":
		if os.Getenv("HELPER_KEY") != os.Getenv("HELPER_WANT") || os.Getenv("HELPER_KEY") == "" {
			fmt.Print(`{"error":{"type":"auth","message":"wrong key"}}`)
			return 0
		}
		fmt.Print(`{"content":"key ok"}`)
	case "sleep":
		child := exec.Command("sleep", "60")
		if child.Start() != nil {
			return 7
		}
		os.WriteFile(os.Getenv("HELPER_PIDS"), fmt.Appendf(nil, "%d %d", os.Getpid(), child.Process.Pid), 0o600)
		time.Sleep(time.Minute)
	case "fail":
		fmt.Fprintf(os.Stderr, "loading weights\npanic: boom, key %s rejected\n", os.Getenv("HELPER_KEY"))
		return 3
	case "rate":
		fmt.Print(`{"error":{"type":"rate_limit","message":"slow down"}}`)
	case "rate-exit":
		fmt.Print(`{"error":{"type":"bad_request","message":"prompt too long"}}`)
		return 1
	case "garbage":
		fmt.Print("Traceback (most recent call last):")
	case "huge":
		big := strings.Repeat("x", 9<<20)
		fmt.Printf(`{"content":%q}`, big)
	}
	return 0
}

// logger returns a logger that writes to a file, and checks when the test
// ends that the key is not in it.
func logger(t testing.TB) (*slog.Logger, func() string) {
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Cleanup(func() {
		f.Close()
		if s := read(); strings.Contains(s, testKey) {
			t.Errorf("the API key is in the log:\n%s", s)
		}
	})
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})), read
}

// newRunner returns an agent of f with quick retries, a checked log and
// the changes of edit.
func newRunner(t testing.TB, f *fakeProvider, edit func(*agent.Config)) (*agent.Runner, func() string) {
	t.Helper()
	log, read := logger(t)
	cfg := agent.Config{
		ID: "a1", Provider: f.kind, Model: "fake-model", BaseURL: f.base, APIKey: agent.NewSecret(testKey),
		HTTPClient: f.client, Timeout: 10 * time.Second, RetryBase: 100 * time.Millisecond, RetryMax: 5 * time.Second,
		Logger: log,
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r, read
}

// wantErr fails unless err is an *agent.Error of class whose text holds
// every part and no key.
func wantErr(t testing.TB, err error, class agent.Class, parts ...string) *agent.Error {
	t.Helper()
	var e *agent.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want an *agent.Error of class %s", err, err, class)
	}
	t.Logf("error: %v", err)
	if e.Class != class {
		t.Errorf("class %s, want %s: %v", e.Class, class, err)
	}
	text := fmt.Sprintf("%v %+v %#v", err, err, err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
	if strings.Contains(text, testKey) || strings.Contains(text, "sk-wrong-key") {
		t.Errorf("the error shows a key: %s", text)
	}
	if code := nexus.ErrorCode(err); code != e.Code() {
		t.Errorf("nexus.ErrorCode = %s, want %s", code, e.Code())
	}
	return e
}

// chain is what Store.Chain would return for a thread of n contexts: the
// newest first.
func chain(n int) []*nexus.Context {
	var gen nexus.IDGenerator
	out := make([]*nexus.Context, n)
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		typ, who := nexus.TypeInstruction, "alice"
		if i%2 == 1 {
			typ, who = nexus.TypeResult, "writer"
		}
		out[n-1-i] = &nexus.Context{
			ID: gen.New(start.Add(time.Duration(i) * time.Second)), Namespace: "default", Type: typ, AgentID: who,
			Content: fmt.Sprintf("context %d of the thread", i+1),
		}
	}
	for i := 0; i+1 < n; i++ {
		out[i].ParentID = out[i+1].ID
	}
	return out
}

// eachKind runs test in a synctest bubble once per HTTP provider.
func eachKind(t *testing.T, test func(t *testing.T, kind agent.Kind)) {
	for _, kind := range []agent.Kind{agent.OpenAI, agent.Anthropic} {
		t.Run(string(kind), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { test(t, kind) })
		})
	}
}
