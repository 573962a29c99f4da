package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/supervisor"
	"github.com/nexus-mem/nexus/tasks"
)

// runAgents is `nexus agents`: the node's own agents with their health
// and breaker, the external agents with their lease and the supervised
// processes; `nexus agents
// process` asks them to answer a context, `nexus agents generate` a
// prompt.
func runAgents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "process" {
		return runAgentsProcess(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "generate" {
		return runAgentsGenerate(ctx, args[1:], stdout, stderr)
	}
	fs, cf := newClientFlagSet("agents", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus agents [flags]               list the node's agents and the external ones\n"+
			"       nexus agents process --agent ID|--capability C|--pipeline A,B|--broadcast A,B [--type T] [--timeout D] CONTEXT_ID\n"+
			"       nexus agents generate --agent ID|--capability C [--ns NS] [--type T] [--parent ID] [--timeout D] PROMPT|-")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (nexus agents process ... to ask an agent)", fs.Arg(0))
	}
	list, err := cf.client().Agents(ctx)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, list)
	}
	printAgents(stdout, list, time.Now())
	return nil
}

func printAgents(w io.Writer, list *httpapi.AgentList, now time.Time) {
	if len(list.Agents) == 0 {
		fmt.Fprintln(w, "The node runs no agents of its own (nexus serve --config names them).")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "AGENT\tSTATUS\tBREAKER\tMODEL\tCAPABILITIES\tCALLS\tFAILURES\tLAST ERROR")
		for _, a := range list.Agents {
			caps := orDash(strings.Join(a.Capabilities, ","))
			st := a.Status
			if st == nil {
				fmt.Fprintf(tw, "%s\tpool\t-\t-\t%s\t-\t-\t-\n", a.ID, caps)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", a.ID, st.Condition, st.Breaker, model(st), caps,
				st.Calls, st.Failures, orDash(clipText(st.LastError, 60)))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(list.External) == 0 {
		fmt.Fprintln(w, "No external agents are registered.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EXTERNAL\tSTATUS\tLEASE\tCLAIMS\tCAPABILITIES\tNAME")
		for _, a := range list.External {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", a.ID, a.Status, lease(a.LeaseExpires, now), len(a.Claims),
				orDash(strings.Join(a.Capabilities, ",")), orDash(a.Name))
		}
		tw.Flush()
	}
	if len(list.Processes) > 0 {
		fmt.Fprintln(w)
		printProcesses(w, list.Processes)
	}
}

// printProcesses prints the supervised processes.
func printProcesses(w io.Writer, procs []supervisor.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tSTATE\tPID\tRESTARTS\tLAST EXIT")
	for _, p := range procs {
		pid, exit := "-", "-"
		if p.PID > 0 {
			pid = strconv.Itoa(p.PID)
		}
		if p.LastExit != nil {
			exit = p.LastExit.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", p.Name, p.State, pid, p.Restarts, exit)
	}
	tw.Flush()
}

// model is the MODEL column of an agent: provider/model, or for a command
// its model if one is configured.
func model(st *agent.Status) string {
	if st.Provider == agent.Command {
		return orDash(st.Model)
	}
	return string(st.Provider) + "/" + st.Model
}

// lease says when a lease lapses, or how long ago it did.
func lease(expires, now time.Time) string {
	d := expires.Sub(now).Round(time.Second)
	if d < 0 {
		return "lapsed " + (-d).String() + " ago"
	}
	return "expires in " + d.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clipText cuts s to n runes on one line.
func clipText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func runAgentsProcess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("agents process", stderr)
	agentID := fs.String("agent", "", "the node's agent (or pool) to ask")
	capability := fs.String("capability", "", "ask any of the node's agents with this capability")
	pipeline := fs.String("pipeline", "", "agents, comma-separated: the first answers the context, each next one the previous answer")
	broadcast := fs.String("broadcast", "", "agents, comma-separated: each answers the context")
	typ := fs.String("type", "", "type of the answers (default result): "+typeNames())
	timeout := fs.Duration("timeout", 0, "the most the call may take, retries, waits and every step included (default: the server's, 2m; at most 10m)")
	if err := parse(fs, args); err != nil {
		return err
	}
	id, err := oneID(fs)
	if err != nil {
		return err
	}
	req := httpapi.ProcessRequest{ContextID: id, Type: nexus.Type(*typ)}
	given := 0
	for _, f := range []string{*agentID, *capability, *pipeline, *broadcast} {
		if f != "" {
			given++
		}
	}
	if given != 1 {
		return usagef("give one of --agent, --capability, --pipeline and --broadcast")
	}
	ctx, cancel, err := withCallTimeout(ctx, *timeout)
	if err != nil {
		return err
	}
	defer cancel()
	c := cf.client()
	if *agentID != "" {
		a, err := c.Process(ctx, orchestrator.Request{ContextID: id, Agent: *agentID, Type: req.Type})
		if err != nil {
			return err
		}
		return printAnswers(stdout, []*orchestrator.Answer{a}, cf.json)
	}
	switch {
	case *capability != "":
		req.Capability = *capability
	case *pipeline != "":
		req.Agents, req.Mode = splitList(*pipeline), httpapi.ModePipeline
	default:
		req.Agents, req.Mode = splitList(*broadcast), httpapi.ModeBroadcast
	}
	res, err := c.ProcessMany(ctx, req)
	if err != nil {
		return err
	}
	if err := printAnswers(stdout, res.Answers, cf.json); err != nil {
		return err
	}
	return partialFailure(stderr, res)
}

// runAgentsGenerate is `nexus agents generate`: an agent answers a
// prompt, stored as a new context.
func runAgentsGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("agents generate", stderr)
	var req orchestrator.GenerateRequest
	fs.StringVar(&req.Agent, "agent", "", "the node's agent (or pool) to ask")
	fs.StringVar(&req.Capability, "capability", "", "ask any of the node's agents with this capability")
	fs.StringVar(&req.Namespace, "ns", "", "namespace of the answer (default: the parent's, else default)")
	typ := fs.String("type", "", "type of the answer (default result): "+typeNames())
	parent := fs.String("parent", "", "id of the context the answer continues (default: none, a root)")
	timeout := fs.Duration("timeout", 0, "the most the call may take, retries and waits included (default: the server's, 2m; at most 10m)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (req.Agent == "") == (req.Capability == "") {
		return usagef("give one of --agent and --capability")
	}
	if fs.NArg() == 0 {
		return usagef("want the prompt (or - to read it from stdin)")
	}
	var err error
	if req.Prompt, err = contentFrom(fs.Args(), os.Stdin); err != nil {
		return err
	}
	if *parent != "" {
		if req.ParentID, err = nexus.ParseID(*parent); err != nil {
			return usagef("--parent: %s", nexus.ErrorMessage(err))
		}
	}
	req.Type = nexus.Type(*typ)
	ctx, cancel, err := withCallTimeout(ctx, *timeout)
	if err != nil {
		return err
	}
	defer cancel()
	a, err := cf.client().Generate(ctx, req)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, a)
	}
	return printAnswers(stdout, []*orchestrator.Answer{a}, false)
}

// withCallTimeout bounds a call to the node's agents by --timeout; the
// client sends what is left of it as the call's timeout.
func withCallTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc, error) {
	switch {
	case d == 0:
		return ctx, func() {}, nil
	case d < time.Second || d > httpapi.MaxAgentTimeout:
		return nil, nil, usagef("--timeout %s: want 1s to %s", d, httpapi.MaxAgentTimeout)
	}
	// The client sends what is left, to the nearest second (d), as the
	// call's timeout; the margin lets the server's answer come back.
	ctx, cancel := context.WithTimeout(ctx, d+400*time.Millisecond)
	return ctx, cancel, nil
}

// partialFailure reports the steps or agents that did not answer; their
// failure is the command's (exit code 1), although the answers that were
// made are stored.
func partialFailure(stderr io.Writer, res *httpapi.ProcessResult) error {
	if res.Stopped != nil {
		return fmt.Errorf("the pipeline stopped after %s: %s", plural(len(res.Answers), "answer"), describe(res.Stopped))
	}
	for _, f := range res.Failed {
		fmt.Fprintf(stderr, "%s did not answer: %s\n", f.Agent, describe(f.Err))
	}
	if len(res.Failed) > 0 {
		return fmt.Errorf("%d of %d agents did not answer", len(res.Failed), len(res.Answers))
	}
	return nil
}

// plural is "1 thing" or "N things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// printAnswers prints each stored answer (nil: an agent of a broadcast
// that failed) with its provenance.
func printAnswers(w io.Writer, answers []*orchestrator.Answer, asJSON bool) error {
	if asJSON {
		return printJSON(w, answers)
	}
	for _, a := range answers {
		if a == nil {
			continue
		}
		p := a.Provenance
		fmt.Fprintf(w, "%s  answered by %s", a.Context.ID, p.FinalAgent)
		if p.FinalAgent != p.Agent {
			fmt.Fprintf(w, " (asked %s)", p.Agent)
		}
		fmt.Fprintf(w, ", %s, %d+%d tokens, %.1f ms, %s\n%s\n\n", p.Model, p.TokensIn, p.TokensOut,
			float64(p.Latency)/float64(time.Millisecond), plural(p.Attempts, "attempt"), strings.TrimRight(a.Context.Content, "\n"))
	}
	return nil
}

// runTasks is `nexus tasks`: the task queue of external agents, and
// `nexus tasks create` to add to it.
func runTasks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "create" {
		return runTasksCreate(ctx, args[1:], stdout, stderr)
	}
	fs, cf := newClientFlagSet("tasks", stderr)
	status := fs.String("status", "", "only tasks in this state: queued, claimed, completing, done or failed")
	limit := fs.Int("limit", 0, "at most this many, oldest first (0: all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: nexus tasks [--status S] [--limit N]   list the tasks, oldest first\n"+
			"       nexus tasks create [--capability C] [--ns NS] [--parent ID] [--max-attempts N] TEXT|-")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (nexus tasks create TEXT to add a task)", fs.Arg(0))
	}
	list, err := cf.client().Tasks(ctx, *status, *limit)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "No tasks.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tSTATUS\tATTEMPTS\tCAPABILITY\tAGENT\tRESULT\tCONTENT")
	for _, t := range list {
		result := t.Error
		if !t.Result.IsZero() {
			result = t.Result.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", t.ID, t.Status, t.Attempts, t.MaxAttempts, orDash(t.Capability),
			orDash(t.ClaimedBy), orDash(clipText(result, 40)), clipText(t.Content, 60))
	}
	return tw.Flush()
}

func runTasksCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("tasks create", stderr)
	var n tasks.NewTask
	fs.StringVar(&n.Capability, "capability", "", "only agents registered with this capability take it (default: any agent)")
	fs.StringVar(&n.Namespace, "ns", env("NEXUS_NAMESPACE", nexus.DefaultNamespace), "namespace of the task and its result (env NEXUS_NAMESPACE)")
	fs.StringVar(&n.Creator, "agent", env("NEXUS_AGENT", "cli"), "agent id of the creator (env NEXUS_AGENT)")
	fs.IntVar(&n.MaxAttempts, "max-attempts", 0, "claims it gets before it fails (0: the server's default)")
	parent := fs.String("parent", "", "id of the context the task continues")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want the task's text (or - to read it from stdin)")
	}
	var err error
	if n.Content, err = contentFrom(fs.Args(), os.Stdin); err != nil {
		return err
	}
	if *parent != "" {
		if n.ParentID, err = nexus.ParseID(*parent); err != nil {
			return usagef("--parent: %s", nexus.ErrorMessage(err))
		}
	}
	t, err := cf.client().CreateTask(ctx, n)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, t)
	}
	fmt.Fprintf(stdout, "%s %s (%d attempts)\n", t.ID, t.Status, t.MaxAttempts)
	return nil
}
