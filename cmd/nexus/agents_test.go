package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/storetest"
	"github.com/nexus-mem/nexus/tasks"
)

// agentNode is a server with a store on disk, a task queue and agents of
// its own calling fake OpenAI-compatible servers: writer (capability
// docs), critic (review), broken (its provider answers 503) and the pool
// team of writer and critic.
type agentNode struct {
	store *gitstore.Store
	queue *tasks.Queue
	url   string
}

func newAgentNode(t *testing.T) *agentNode {
	t.Helper()
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	q, err := tasks.Open(t.Context(), st, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := orchestrator.New(st, orchestrator.Options{CheckpointEvery: -1})
	writer := agenttest.NewRunner(t, "writer", agenttest.NewProvider(t, "writer"))
	critic := agenttest.NewRunner(t, "critic", agenttest.NewProvider(t, "critic"))
	down := agenttest.NewProvider(t, "broken")
	down.SetDown(true)
	broken := agenttest.NewRunner(t, "broken", down)
	team, err := agent.NewPool("team", nil, agent.Member{Agent: writer}, agent.Member{Agent: critic})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct {
		a    agent.Agent
		caps []string
	}{{writer, []string{"docs"}}, {critic, []string{"review"}}, {broken, nil}, {team, nil}} {
		if err := o.Add(a.a, a.caps); err != nil {
			t.Fatal(err)
		}
	}
	status := func() []agent.Status { return []agent.Status{writer.Status(), critic.Status(), broken.Status()} }
	srv := httptest.NewServer(httpapi.NewServer(st, httpapi.Options{Tasks: q, Agents: o, AgentStatus: status}))
	t.Cleanup(srv.Close)
	return &agentNode{store: st, queue: q, url: srv.URL}
}

// nexusCLI runs the binary and returns its stdout, stderr and exit code.
func nexusCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cmd.Environ(), "NEXUS_SERVER=", "NEXUS_TOKEN=", "NEXUS_AGENT=", "NEXUS_NAMESPACE=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// line returns the line of out that starts with prefix and a space.
func line(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return l
		}
	}
	t.Fatalf("no line %q in\n%s", prefix, out)
	return ""
}

// fields says whether the whitespace-separated fields of l are want.
func fields(l string, want ...string) bool {
	return strings.Join(strings.Fields(l), " ") == strings.Join(want, " ")
}

func TestCLI_agents(t *testing.T) {
	n := newAgentNode(t)
	if _, err := n.queue.Register(context.Background(), "coder", "Coding assistant", []string{"code", "review"}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := nexusCLI(t, "agents", "--server", n.url)
	if code != 0 {
		t.Fatalf("nexus agents: %d %s", code, errOut)
	}
	if l := line(t, out, "writer"); !fields(l, "writer", "healthy", "closed", "openai/"+agenttest.Model, "docs", "0", "0", "-") {
		t.Errorf("writer: %q", l)
	}
	if l := line(t, out, "team"); !fields(l, "team", "pool", "-", "-", "-", "-", "-", "-") {
		t.Errorf("team: %q", l)
	}
	if l := line(t, out, "coder"); !regexp.MustCompile(`^coder +active +expires in (29|30)s +0 +code,review +Coding assistant$`).MatchString(l) {
		t.Errorf("coder: %q", l)
	}

	ctx := mustPutCLI(t, n.store, "Describe the release process.")
	t.Run("process", func(t *testing.T) {
		out, errOut, code := nexusCLI(t, "agents", "process", "--server", n.url, "--agent", "writer", "--type", "document", ctx.ID.String())
		if code != 0 || !regexp.MustCompile(`answered by writer, `+agenttest.Model+`, 42\+7 tokens, [0-9.]+ ms, 1 attempt\n`).MatchString(out) ||
			!strings.Contains(out, agenttest.Answer("writer", ctx.Content)) {
			t.Fatalf("process --agent writer: %d\n%s%s", code, out, errOut)
		}
		kids, err := n.store.Children(t.Context(), ctx.ID)
		if err != nil || len(kids) != 1 || kids[0].Type != nexus.TypeDocument || !strings.HasPrefix(out, kids[0].ID.String()+" ") {
			t.Fatalf("children %v %+v, output %s", err, kids, out)
		}
		out, _, code = nexusCLI(t, "agents", "process", "--server", n.url, "--agent", "team", ctx.ID.String())
		if code != 0 || !regexp.MustCompile(`answered by (writer|critic) \(asked team\)`).MatchString(out) {
			t.Errorf("process --agent team: %d %s", code, out)
		}
		out, _, code = nexusCLI(t, "agents", "process", "--server", n.url, "--capability", "review", "--json", ctx.ID.String())
		var answers []orchestrator.Answer
		if code != 0 || json.Unmarshal([]byte(out), &answers) != nil || len(answers) != 1 || answers[0].Provenance.FinalAgent != "critic" {
			t.Errorf("process --capability review --json: %d %s", code, out)
		}
	})
	t.Run("pipeline", func(t *testing.T) {
		out, errOut, code := nexusCLI(t, "agents", "process", "--server", n.url, "--pipeline", "writer, critic", "--json", ctx.ID.String())
		var answers []orchestrator.Answer
		if code != 0 || json.Unmarshal([]byte(out), &answers) != nil || len(answers) != 2 ||
			answers[0].Context.ParentID != ctx.ID || answers[1].Context.ParentID != answers[0].Context.ID {
			t.Fatalf("pipeline: %d %s %s", code, out, errOut)
		}
		out, errOut, code = nexusCLI(t, "agents", "process", "--server", n.url, "--pipeline", "writer,broken", ctx.ID.String())
		if code != 1 || !strings.Contains(out, "answered by writer") || !strings.Contains(errOut, "the pipeline stopped after 1 answer:") || !strings.Contains(errOut, "(unavailable)") {
			t.Errorf("pipeline stopped by broken: %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("broadcast", func(t *testing.T) {
		out, errOut, code := nexusCLI(t, "agents", "process", "--server", n.url, "--broadcast", "critic,broken", ctx.ID.String())
		if code != 1 || !strings.Contains(out, "answered by critic") || !strings.Contains(errOut, "broken did not answer") ||
			!strings.Contains(errOut, "1 of 2 agents did not answer") {
			t.Errorf("broadcast: %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			code int
			msg  string
		}{
			{[]string{ctx.ID.String()}, 2, "give one of --agent, --capability, --pipeline and --broadcast"},
			{[]string{"--agent", "writer", "--capability", "docs", ctx.ID.String()}, 2, "give one of"},
			{[]string{"--agent", "writer"}, 2, "want exactly one context id"},
			{[]string{"--agent", "writer", "nope"}, 2, "invalid id"},
			{[]string{"--agent", "nobody", ctx.ID.String()}, 1, `no agent "nobody" on this node`},
			{[]string{"--agent", "broken", ctx.ID.String()}, 1, "503"},
			{[]string{"--capability", "poetry", ctx.ID.String()}, 1, "(not_found)"},
			{[]string{"--broadcast", "writer", "--type", "poem", ctx.ID.String()}, 1, "(invalid)"},
		} {
			_, errOut, code := nexusCLI(t, append([]string{"agents", "process", "--server", n.url}, c.args...)...)
			if code != c.code || !strings.Contains(errOut, c.msg) {
				t.Errorf("agents process %v: %d %q, want %d with %q", c.args, code, errOut, c.code, c.msg)
			}
		}
		if _, errOut, code := nexusCLI(t, "agents", "--server", n.url, "extra"); code != 2 || !strings.Contains(errOut, "unexpected argument") {
			t.Errorf("agents extra: %d %s", code, errOut)
		}
	})
}

func mustPutCLI(t *testing.T, s nexus.Store, content string) *nexus.Context {
	t.Helper()
	c, err := s.Put(t.Context(), nexus.Draft{Namespace: "ops", Type: nexus.TypeInstruction, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCLI_tasks(t *testing.T) {
	n := newAgentNode(t)
	out, errOut, code := nexusCLI(t, "tasks", "--server", n.url)
	if code != 0 || out != "No tasks.\n" {
		t.Fatalf("tasks of an empty queue: %d %q %s", code, out, errOut)
	}
	parent := mustPutCLI(t, n.store, "Ship 1.2 on Friday.")
	out, errOut, code = nexusCLI(t, "tasks", "create", "--server", n.url, "--capability", "code", "--ns", "ops", "--parent", parent.ID.String(),
		"--agent", "planner", "--max-attempts", "2", "Fix", "the", "parser.")
	m := regexp.MustCompile(`^([0-9A-Z]{26}) queued \(2 attempts\)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("tasks create: %d %q %s", code, out, errOut)
	}
	id, _ := nexus.ParseID(m[1])
	task, err := n.queue.Get(context.Background(), id)
	if err != nil || task.Content != "Fix the parser." || task.Capability != "code" || task.Creator != "planner" || task.Namespace != "ops" {
		t.Fatalf("created %+v, %v", task, err)
	}
	if _, _, code := nexusCLI(t, "tasks", "create", "--server", n.url, "--json", "Write the changelog."); code != 0 {
		t.Fatalf("second task: %d", code)
	}
	if _, err := n.queue.Register(context.Background(), "coder", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := n.queue.Claim(context.Background(), "coder"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}

	out, _, code = nexusCLI(t, "tasks", "--server", n.url)
	if l := line(t, out, id.String()); code != 0 || !fields(l, id.String(), "claimed", "1/2", "code", "coder", "-", "Fix", "the", "parser.") {
		t.Errorf("claimed task: %d %q", code, l)
	}
	out, _, code = nexusCLI(t, "tasks", "--server", n.url, "--status", "queued", "--json")
	var list []tasks.Task
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Content != "Write the changelog." || list[0].Creator != "cli" {
		t.Errorf("tasks --status queued --json: %d %s", code, out)
	}
	for _, c := range []struct {
		verb, args []string
		code       int
		msg        string
	}{
		{[]string{"tasks"}, []string{"--status", "lost"}, 1, `status "lost": want queued`},
		{[]string{"tasks"}, []string{"extra"}, 2, "unexpected argument"},
		{[]string{"tasks", "create"}, nil, 2, "want the task's text"},
		{[]string{"tasks", "create"}, []string{"--capability", "a b", "x"}, 1, "(invalid)"},
		{[]string{"tasks", "create"}, []string{"--parent", "nope", "x"}, 2, "--parent: invalid id"},
	} {
		_, errOut, code := nexusCLI(t, slices.Concat(c.verb, []string{"--server", n.url}, c.args)...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v %v: %d %q, want %d with %q", c.verb, c.args, code, errOut, c.code, c.msg)
		}
	}
}

// A server without a queue or agents says so.
func TestCLI_agentsDisabled(t *testing.T) {
	srv := httptest.NewServer(httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{}))
	defer srv.Close()
	out, _, code := nexusCLI(t, "agents", "--server", srv.URL)
	if code != 0 || !strings.Contains(out, "runs no agents of its own") || !strings.Contains(out, "No external agents are registered.") {
		t.Errorf("agents: %d %s", code, out)
	}
	if _, errOut, code := nexusCLI(t, "tasks", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "the task queue is not enabled on this server (not_found)") {
		t.Errorf("tasks: %d %s", code, errOut)
	}
}

// The verbs against the real server, its agent from --config calling a
// fake OpenAI-compatible provider.
func TestCLI_agentsServe(t *testing.T) {
	provider := agenttest.NewProvider(t, "writer")
	cfg := filepath.Join(t.TempDir(), "nexus.yaml")
	yaml := fmt.Sprintf("agents:\n  - id: writer\n    provider: openai\n    base_url: %s\n    model: %s\n    capabilities: [docs]\n    heartbeat: {interval: 0}\n", provider.URL, agenttest.Model) +
		"  - {id: script, provider: command, command: cat, heartbeat: {interval: 0}}\n" +
		"supervisor:\n  processes:\n    - {name: sleeper, command: sleep, args: [\"3600\"], stop_timeout: 2s}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, t.TempDir(), "--config="+cfg, "--no-search")
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	c := httpapi.NewClient(p.url)
	if _, err := c.RegisterAgent(t.Context(), "coder", "", []string{"code"}); err != nil {
		t.Fatal(err)
	}
	var out, errOut string
	var code int
	waitFor(t, 5*time.Second, "the supervised process running", func() bool {
		out, errOut, code = nexusCLI(t, "agents", "--server", p.url)
		return strings.Contains(out, "sleeper  running")
	})
	if code != 0 || !fields(line(t, out, "writer"), "writer", "healthy", "closed", "openai/"+agenttest.Model, "docs", "0", "0", "-") ||
		!fields(line(t, out, "script"), "script", "healthy", "closed", "-", "-", "0", "0", "-") ||
		!strings.Contains(line(t, out, "coder"), "active") || !strings.Contains(out, "\nPROCESS  STATE    PID") ||
		!regexp.MustCompile(`\nsleeper +running +[1-9][0-9]* +0 +-\n`).MatchString(out) {
		t.Fatalf("nexus agents: %d\n%s%s", code, out, errOut)
	}
	ctx, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeInstruction, Content: "Summarize the release notes."})
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code = nexusCLI(t, "agents", "process", "--server", p.url, "--capability", "docs", ctx.ID.String())
	if code != 0 || !strings.Contains(out, agenttest.Answer("writer", ctx.Content)) || provider.Calls() != 1 {
		t.Fatalf("nexus agents process: %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = nexusCLI(t, "agents", "generate", "--server", p.url, "--agent", "writer", "--ns", "notes", "--timeout", "30s", "Name", "the", "parser.")
	gid, _, _ := strings.Cut(out, " ")
	if code != 0 || !strings.Contains(out, "answered by writer, "+agenttest.Model+", 42+7 tokens") || !strings.Contains(out, agenttest.Answer("writer", "Name the parser.")) {
		t.Fatalf("nexus agents generate: %d\n%s%s", code, out, errOut)
	}
	if id, err := nexus.ParseID(gid); err != nil {
		t.Fatalf("nexus agents generate printed %q", out)
	} else if g, err := c.Get(t.Context(), id); err != nil || !g.ParentID.IsZero() || g.Namespace != "notes" || g.Type != nexus.TypeResult || g.AgentID != "writer" {
		t.Fatalf("the generated context (%v): %+v", err, g)
	}
	cmd := exec.Command(binary, "agents", "generate", "--server", p.url, "--capability", "docs", "--type", "document", "--parent", ctx.ID.String(), "--json", "-")
	cmd.Stdin = strings.NewReader("Describe the release.\n")
	js, err := cmd.Output()
	var gen orchestrator.Answer
	if err != nil || json.Unmarshal(js, &gen) != nil || gen.Context.ParentID != ctx.ID || gen.Context.Type != nexus.TypeDocument ||
		gen.Context.Content != agenttest.Answer("writer", "Describe the release.") || provider.Calls() != 3 {
		t.Fatalf("nexus agents generate --capability --json: %v %s", err, js)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"x"}, 2, "give one of --agent and --capability"},
		{[]string{"--agent", "writer"}, 2, "want the prompt"},
		{[]string{"--agent", "writer", "--timeout", "20m", "x"}, 2, "--timeout 20m0s: want 1s to 10m0s"},
		{[]string{"--agent", "nobody", "x"}, 1, `no agent "nobody"`},
		{[]string{"--agent", "writer", "--parent", "01KB2W3G6T0Q5A9QYQ7M3N8C2D", "x"}, 1, "(not_found)"},
	} {
		_, errOut, code := nexusCLI(t, append([]string{"agents", "generate", "--server", p.url}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("agents generate %v: %d %q, want %d with %q", c.args, code, errOut, c.code, c.msg)
		}
	}
	out, errOut, code = nexusCLI(t, "tasks", "create", "--server", p.url, "--capability", "code", "Fix the parser.")
	id, _, _ := strings.Cut(out, " ")
	if code != 0 || !strings.HasPrefix(out, id+" queued ") {
		t.Fatalf("nexus tasks create: %d %s%s", code, out, errOut)
	}
	if _, ok, err := c.ClaimTask(t.Context(), "coder"); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	out, _, code = nexusCLI(t, "tasks", "--server", p.url, "--status", "claimed")
	if code != 0 || !fields(line(t, out, id), id, "claimed", "1/3", "code", "coder", "-", "Fix", "the", "parser.") {
		t.Errorf("nexus tasks --status claimed: %d\n%s", code, out)
	}
}
