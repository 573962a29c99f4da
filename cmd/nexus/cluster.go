package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
)

// servedCluster is what serve's cluster flags say beyond node.Config.
type servedCluster struct {
	timeouts string          // --raft-timeouts: default, fast or "" (not given)
	given    map[string]bool // the cluster flags given on the command line
}

// clusterServeFlags adds the flags of a cluster's node to serve's.
func clusterServeFlags(fs *flag.FlagSet, cc *node.ClusterConfig, sc *servedCluster) {
	fs.StringVar(&cc.NodeID, "node-id", env("NEXUS_NODE_ID", ""), "run as the member of a cluster with this id (1-64 of A-Z a-z 0-9 . _ -); none: a single node (env NEXUS_NODE_ID; docs/CLUSTER.md)")
	fs.StringVar(&cc.RaftAddr, "raft-addr", env("NEXUS_RAFT_ADDR", ""), "host:port the cluster's peers reach this node's raft at (env NEXUS_RAFT_ADDR)")
	fs.StringVar(&cc.RaftAdvertise, "raft-advertise", env("NEXUS_RAFT_ADVERTISE", ""), "the raft address peers dial, if not --raft-addr (e.g. behind NAT) (env NEXUS_RAFT_ADVERTISE)")
	fs.StringVar(&cc.APIURL, "api-url", env("NEXUS_API_URL", ""), "this node's API as its peers reach it; followers forward writes there (default http(s)://ADDR) (env NEXUS_API_URL)")
	fs.BoolVar(&cc.Bootstrap, "bootstrap", false, "make a new cluster of this node alone (only when it has no raft state yet)")
	if j := env("NEXUS_JOIN", ""); j != "" {
		cc.Join = splitList(j)
	}
	fromEnv := len(cc.Join) > 0
	fs.Func("join", "API URL of a member to ask to add this node when it has no raft state yet (repeatable, or comma-separated) (env NEXUS_JOIN)", func(v string) error {
		if fromEnv {
			cc.Join, fromEnv = nil, false // the flag replaces the variable
		}
		urls := splitList(v)
		if len(urls) == 0 {
			return fmt.Errorf("want an API URL")
		}
		cc.Join = append(cc.Join, urls...)
		return nil
	})
	fs.Func("raft-timeouts", "raft's failure detection: default (500ms heartbeat, election and lease), fast (250ms each: fails over sooner, needs a quiet network) or raft (raft's own: 1s, 1s, 500ms: the most patient, for loaded machines)", func(v string) error {
		if v != config.TimeoutsDefault && v != config.TimeoutsFast && v != config.TimeoutsRaft {
			return fmt.Errorf("want default, fast or raft")
		}
		sc.timeouts = v
		return nil
	})
	fs.BoolVar(&cc.PeerTLS, "peer-tls", false, "raft and the requests forwarded between nodes over TLS, with --tls-cert/--tls-key; peers must present a certificate of --tls-client-ca")
	afterParse(fs, func() error {
		sc.given = map[string]bool{}
		fs.Visit(func(f *flag.Flag) { sc.given[f.Name] = true })
		return nil
	})
}

// clusterOf completes the cluster's settings of nc: the file's cluster
// section (f, nil for none) where neither a flag nor its variable set
// one, the timeouts, and a check that peers can reach the API.
func (sc *servedCluster) clusterOf(nc *node.Config, f *config.Config) error {
	cc := &nc.Cluster
	timeouts := sc.timeouts
	if f != nil {
		fc := f.Cluster
		for _, s := range []struct {
			dst *string
			v   string
		}{
			{&cc.NodeID, fc.NodeID}, {&cc.RaftAddr, fc.RaftAddr}, {&cc.RaftAdvertise, fc.RaftAdvertise}, {&cc.APIURL, fc.APIURL},
		} {
			if *s.dst == "" {
				*s.dst = s.v
			}
		}
		if !sc.given["bootstrap"] {
			cc.Bootstrap = fc.Bootstrap
		}
		if !sc.given["peer-tls"] {
			cc.PeerTLS = fc.PeerTLS
		}
		if len(cc.Join) == 0 {
			cc.Join = fc.Join
		}
		if timeouts == "" {
			timeouts = fc.Timeouts
		}
	}
	switch timeouts {
	case config.TimeoutsFast:
		cc.Timeouts = cluster.FastTimeouts()
	case config.TimeoutsRaft:
		cc.Timeouts = cluster.RaftTimeouts()
	default:
		cc.Timeouts = cluster.DefaultTimeouts()
	}
	if !cc.Enabled() && (cc.APIURL != "" || cc.RaftAdvertise != "" || cc.PeerTLS || timeouts != "") {
		return usagef("--api-url, --raft-advertise, --raft-timeouts and --peer-tls (or the file's cluster section) apply to a cluster's node: give it --node-id and --raft-addr")
	}
	if cc.Enabled() && cc.APIURL == "" {
		if _, port, err := net.SplitHostPort(nc.Addr); err == nil && port == "0" {
			return usagef("--addr %s: a cluster's node needs a fixed port, or --api-url naming where its peers reach its API", nc.Addr)
		}
	}
	return nil
}

const clusterCmdUsage = `Usage: nexus cluster status [--local] [--json]    the members, the leader, each member's applied index and head
       nexus cluster join --id ID --raft-addr HOST:PORT --api-url URL
                                                add a node started without --bootstrap or --join (admin)
       nexus cluster remove ID                  take a member out of the cluster; it need not run (admin)
       nexus cluster transfer-leadership [ID]   hand the leadership to ID, or to the most up-to-date voter (admin)

Each asks the node at --server (env NEXUS_SERVER), which forwards join,
remove and transfer-leadership to the leader. A node that is not part of
a cluster answers not_found. See docs/CLUSTER.md.`

func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, clusterCmdUsage)
		return usagef("name a subcommand: status, join, remove or transfer-leadership")
	}
	switch args[0] {
	case "status":
		return runClusterStatus(ctx, args[1:], stdout, stderr)
	case "join":
		return runClusterJoin(ctx, args[1:], stdout, stderr)
	case "remove":
		return runClusterRemove(ctx, args[1:], stdout, stderr)
	case "transfer-leadership":
		return runClusterTransfer(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, clusterCmdUsage)
		return nil
	}
	return usagef("unknown subcommand %q: status, join, remove or transfer-leadership", args[0])
}

// clusterFlagSet is the flag set of a cluster subcommand.
func clusterFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *clientFlags) {
	fs, cf := newClientFlagSet("cluster "+name, stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, clusterCmdUsage); fs.PrintDefaults() }
	return fs, cf
}

func runClusterStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := clusterFlagSet("status", stderr)
	local := fs.Bool("local", false, "only what this node knows itself: no member is asked for its applied index and head")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	st, err := cf.client().ClusterStatus(ctx, *local)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, st)
	}
	printClusterStatus(stdout, st, time.Now())
	return nil
}

// printClusterStatus prints the members as a table, then the node's own
// state.
func printClusterStatus(w io.Writer, st *cluster.Status, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tRAFT ADDR\tAPI\tVOTER\tLEADER\tAPPLIED\tHEAD\tERROR")
	for _, m := range st.Members {
		applied := "-"
		if m.Head != "" {
			applied = strconv.FormatUint(m.AppliedIndex, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.RaftAddr, orDash(m.APIURL), yesNo(m.Voter), yesNo(m.Leader),
			applied, orDash(shortHead(m.Head)), orDash(memberError(m.Error)))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nnode %s: %s, term %d, commit index %d, applied index %d, head %s\n",
		st.NodeID, st.State, st.Term, st.CommitIndex, st.AppliedIndex, orDash(shortHead(st.Head)))
	switch {
	case st.Leader == "":
		fmt.Fprintln(w, "leader: none known: this node cannot reach a quorum; writes are refused (no_quorum), reads are served from its own data, marked stale")
	case st.Leader == st.NodeID && st.Writable:
		fmt.Fprintln(w, "leader: this node, taking writes")
	case st.Leader == st.NodeID:
		fmt.Fprintln(w, "leader: this node, applying the entries of earlier terms before it takes writes")
	default:
		fmt.Fprintf(w, "leader: %s (%s)", st.Leader, orDash(st.LeaderAPI))
		if st.LastContact != nil {
			fmt.Fprintf(w, ", last contact %s ago", now.Sub(*st.LastContact).Round(time.Millisecond))
		}
		fmt.Fprintln(w)
	}
	if st.Stalled != "" {
		fmt.Fprintf(w, "applying committed entries is stalled and being retried: %s\n", st.Stalled)
	}
}

// memberError is why a member could not be asked, without the URL of
// the request (the API column has it).
func memberError(e string) string {
	if rest, ok := strings.CutPrefix(e, `Get "`); ok {
		if _, after, ok := strings.Cut(rest, `": `); ok {
			e = after
		}
	}
	return clipText(e, 60)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// shortHead is the first 12 digits of a commit hash, as `nexus log`
// prints them.
func shortHead(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func memberList(st *cluster.Status) string {
	ids := make([]string, len(st.Members))
	for i, m := range st.Members {
		ids[i] = m.ID
	}
	return strings.Join(ids, ", ")
}

func runClusterJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := clusterFlagSet("join", stderr)
	var m cluster.Member
	fs.StringVar(&m.ID, "id", "", "the new member's node id (its serve --node-id)")
	fs.StringVar(&m.RaftAddr, "raft-addr", "", "the address its peers reach its raft at (its --raft-advertise, else --raft-addr)")
	fs.StringVar(&m.APIURL, "api-url", "", "its API as its peers reach it (its --api-url, else http(s)://ADDR)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if m.ID == "" || m.RaftAddr == "" || m.APIURL == "" {
		return usagef("--id, --raft-addr and --api-url name the node to add; all three are required")
	}
	if _, _, err := net.SplitHostPort(m.RaftAddr); err != nil {
		return usagef("--raft-addr %q: want host:port", m.RaftAddr)
	}
	if u, err := url.Parse(m.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--api-url %q: want the http(s) URL of the node's API", m.APIURL)
	}
	st, err := cf.client().ClusterJoin(ctx, m)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, st)
	}
	fmt.Fprintf(stdout, "member %s added (raft %s, API %s); members: %s\n", m.ID, m.RaftAddr, m.APIURL, memberList(st))
	return nil
}

func runClusterRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := clusterFlagSet("remove", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("name the one member to remove: nexus cluster remove ID")
	}
	id := fs.Arg(0)
	st, err := cf.client().ClusterRemove(ctx, id)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, st)
	}
	fmt.Fprintf(stdout, "member %s removed; members: %s\n", id, memberList(st))
	return nil
}

func runClusterTransfer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := clusterFlagSet("transfer-leadership", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("unexpected argument %q: name at most one member to hand the leadership to", fs.Arg(1))
	}
	st, err := cf.client().ClusterTransfer(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, st)
	}
	if st.Leader != "" && st.Leader != st.NodeID {
		fmt.Fprintf(stdout, "leadership handed over by %s to %s\n", st.NodeID, st.Leader)
	} else {
		fmt.Fprintf(stdout, "leadership handed over by %s; it knows no new leader yet (nexus cluster status names it)\n", st.NodeID)
	}
	return nil
}

// consistencyFlag adds --consistency to a verb that reads.
func consistencyFlag(fs *flag.FlagSet) *string {
	return fs.String("consistency", "", "in a cluster, what the read asks of the data: none (this node's, maybe behind), "+
		"leader (served by the leader; the default) or linearizable (the leader first confirms with a quorum that it still leads)")
}

// readClient is cf's client, reading at level ("": the server's
// default).
func (cf *clientFlags) readClient(level string) (*httpapi.Client, error) {
	c := cf.client()
	if level == "" {
		return c, nil
	}
	l, err := cluster.ParseConsistency(level, "")
	if err != nil {
		return nil, usagef("--consistency: %s", nexus.ErrorMessage(err))
	}
	return c.AtConsistency(l), nil
}
