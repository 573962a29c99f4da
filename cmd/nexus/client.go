package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// clientFlags are the flags every client verb takes.
type clientFlags struct {
	server, token string
	json          bool
	tls           *clientTLS
}

func newClientFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := &clientFlags{}
	fs.StringVar(&cf.server, "server", env("NEXUS_SERVER", "http://"+defaultAddr), "server URL (env NEXUS_SERVER)")
	tokenFlag(fs, &cf.token, stderr)
	fs.BoolVar(&cf.json, "json", false, "print JSON for scripts")
	cf.tls = addClientTLSFlags(fs)
	return fs, cf
}

func (cf *clientFlags) client() *httpapi.Client {
	var opts []httpapi.ClientOption
	if cf.token != "" {
		opts = append(opts, httpapi.WithToken(cf.token))
	}
	opts = append(opts, cf.tls.options()...)
	return httpapi.NewClient(strings.TrimRight(cf.server, "/"), opts...)
}

// parse parses the flags of args wherever they stand, before or after
// the positional arguments, which it leaves in fs.Args(); "--" ends the
// flags. (The flag package alone stops at the first positional argument
// and takes every flag after it for a word.)
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(flagsFirst(fs, args)); err != nil {
		return usageError{err}
	}
	return runHooks(fs)
}

// parseNoArgs parses the flags of a verb that takes no positional
// argument, and refuses one.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q: nexus %s takes only flags (-h lists them)", fs.Arg(0), fs.Name())
	}
	return nil
}

// flagsFirst reorders args for the flag package: the flags, each with its
// value when it takes one, then "--" and the positional arguments in
// their order. A lone "-" (stdin) is positional. A flag missing its value
// ends the list, for fs.Parse to report.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) < 2 || a[0] != '-':
			pos = append(pos, a)
		case takesValue(fs, a) && i+1 == len(args):
			return append(flags, a)
		case takesValue(fs, a):
			flags = append(flags, a, args[i+1])
			i++
		default:
			flags = append(flags, a)
		}
	}
	if len(pos) == 0 {
		return flags
	}
	return append(append(flags, "--"), pos...)
}

// takesValue reports whether the flag arg (-name or --name) is one of
// fs's that takes its value from the next argument: not a boolean flag,
// nor one written -name=value. Unknown flags take none; fs.Parse refuses
// them.
func takesValue(fs *flag.FlagSet, arg string) bool {
	name := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// metaFlag collects repeated --meta key=value pairs.
type metaFlag map[string]any

func (m metaFlag) String() string { return "" }
func (m metaFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	m[k] = val
	return nil
}

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("put", stderr)
	typ := fs.String("type", "memory", "context type: "+typeNames())
	parent := fs.String("parent", "", "id of the context this one continues")
	agent := fs.String("agent", env("NEXUS_AGENT", "cli"), "agent id of the writer (env NEXUS_AGENT)")
	ns := fs.String("ns", env("NEXUS_NAMESPACE", nexus.DefaultNamespace), "namespace (env NEXUS_NAMESPACE)")
	meta := metaFlag{}
	fs.Var(meta, "meta", "metadata key=value (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	content, err := contentFrom(fs.Args(), os.Stdin)
	if err != nil {
		return err
	}
	d := nexus.Draft{Namespace: *ns, Type: nexus.Type(*typ), Content: content, AgentID: *agent}
	if *parent != "" {
		if d.ParentID, err = nexus.ParseID(*parent); err != nil {
			return usagef("--parent: %v", nexus.ErrorMessage(err))
		}
	}
	if len(meta) > 0 {
		d.Metadata, _ = json.Marshal(meta) // map of strings: cannot fail
	}
	c, err := cf.client().Put(ctx, d)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, c)
	}
	fmt.Fprintln(stdout, c.ID)
	return nil
}

// contentFrom joins the arguments, or reads stdin when there are none or
// the only one is "-".
func contentFrom(args []string, stdin io.Reader) (string, error) {
	if len(args) > 0 && !(len(args) == 1 && args[0] == "-") {
		return strings.Join(args, " "), nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
	if err != nil {
		return "", fmt.Errorf("read stdin: %w", err)
	}
	return string(b), nil
}

func typeNames() string {
	s := make([]string, len(nexus.Types))
	for i, t := range nexus.Types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func oneID(fs *flag.FlagSet) (nexus.ID, error) {
	if fs.NArg() != 1 {
		return nexus.ZeroID, usagef("want exactly one context id")
	}
	id, err := nexus.ParseID(fs.Arg(0))
	if err != nil {
		return id, usagef("%s", nexus.ErrorMessage(err))
	}
	return id, nil
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("get", stderr)
	level := consistencyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	id, err := oneID(fs)
	if err != nil {
		return err
	}
	client, err := cf.readClient(*level)
	if err != nil {
		return err
	}
	c, err := client.Get(ctx, id)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, c)
	}
	printContext(stdout, c)
	return nil
}

func runChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("chain", stderr)
	limit := fs.Int("limit", 0, "most contexts to print (0: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	id, err := oneID(fs)
	if err != nil {
		return err
	}
	cs, err := cf.client().Chain(ctx, id, *limit)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, map[string]any{"contexts": cs})
	}
	for i, c := range cs {
		fmt.Fprintf(stdout, "%s%s\n", strings.Repeat("  ", i), oneLine(c))
	}
	return nil
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("ls", stderr)
	var f nexus.Filter
	var typ, parent, since, until, order string
	fs.StringVar(&f.Namespace, "ns", "", "namespace")
	fs.StringVar(&typ, "type", "", "type")
	fs.StringVar(&f.AgentID, "agent", "", "agent id")
	fs.StringVar(&parent, "parent", "", "children of this context")
	fs.StringVar(&since, "since", "", "from this time (RFC 3339), inclusive")
	fs.StringVar(&until, "until", "", "before this time (RFC 3339)")
	fs.IntVar(&f.Limit, "limit", nexus.DefaultLimit, "page size")
	fs.StringVar(&f.Cursor, "cursor", "", "cursor printed by the previous page")
	fs.StringVar(&order, "order", "desc", "desc (newest first) or asc")
	level := consistencyFlag(fs)
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	client, err := cf.readClient(*level)
	if err != nil {
		return err
	}
	f.Type, f.Order = nexus.Type(typ), nexus.Order(order)
	if parent != "" {
		if f.ParentID, err = nexus.ParseID(parent); err != nil {
			return usagef("--parent: %s", nexus.ErrorMessage(err))
		}
	}
	if f.Since, err = parseTime("since", since); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", until); err != nil {
		return err
	}
	p, err := client.List(ctx, f)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, p)
	}
	for _, c := range p.Contexts {
		fmt.Fprintln(stdout, oneLine(c))
	}
	if p.NextCursor != "" {
		fmt.Fprintf(stdout, "-- more: --cursor %s\n", p.NextCursor)
	}
	return nil
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return t, usagef("--%s: want RFC 3339 time like 2026-01-02T15:04:05Z, got %q", name, v)
	}
	return t, nil
}

func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlagSet("log", stderr)
	var f nexus.LogFilter
	fs.IntVar(&f.Limit, "limit", 20, "entries to print")
	fs.StringVar(&f.Cursor, "cursor", "", "commit to start from")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	p, err := cf.client().Log(ctx, f)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, p)
	}
	for _, e := range p.Entries {
		fmt.Fprintf(stdout, "%s %s %-12s %s\n", e.Commit[:12], e.Time.Local().Format("2006-01-02 15:04:05"), e.AgentID, e.Summary)
	}
	if p.NextCursor != "" {
		fmt.Fprintf(stdout, "-- more: --cursor %s\n", p.NextCursor)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func oneLine(c *nexus.Context) string {
	return fmt.Sprintf("%s %s %-12s %-12s %s", c.ID, c.Timestamp.Local().Format("2006-01-02 15:04:05"), c.Type, c.AgentID, c.Summary(60))
}

func printContext(w io.Writer, c *nexus.Context) {
	fmt.Fprintf(w, "id:        %s\nnamespace: %s\ntype:      %s\nagent:     %s\ntime:      %s\n", c.ID, c.Namespace, c.Type, c.AgentID, c.Timestamp.Format(time.RFC3339Nano))
	if !c.ParentID.IsZero() {
		fmt.Fprintf(w, "parent:    %s\n", c.ParentID)
	}
	if string(c.Metadata) != "{}" {
		fmt.Fprintf(w, "metadata:  %s\n", c.Metadata)
	}
	fmt.Fprintf(w, "hash:      %s\n\n%s\n", c.SemanticHash, strings.TrimRight(c.Content, "\n"))
}
