package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

const clusterToken = "tok-cluster-7c1e9b24d05a8f36e2b1"

// clusterNode is one `nexus serve` of a cluster on loopback.
type clusterNode struct {
	id, data      string
	apiAddr, raft string
	scheme        string   // of the API: http, or https with TLS
	args          []string // serve's flags, the same at every start
	env           []string // of a client: its token, its TLS files
	p             *proc    // nil while stopped
	t             *testing.T
}

func (n *clusterNode) url() string { return n.scheme + "://" + n.apiAddr }

// cli runs the binary as a client of n.
func (n *clusterNode) cli(args ...string) (string, int) {
	return nexusCmd(n.env, append(args, "--server", n.url())...)
}

func (n *clusterNode) start() {
	n.t.Helper()
	n.p = startServe(n.t, n.data, append(slices.Clone(n.args), "NEXUS_TOKEN="+clusterToken)...)
}

// stop ends the process with sig and waits for it.
func (n *clusterNode) stop(sig syscall.Signal) {
	n.t.Helper()
	n.p.cmd.Process.Signal(sig)
	err := n.p.cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		n.t.Fatalf("%s exited with %v:\n%s", n.id, err, n.p.stderr.String())
	}
	n.p = nil
}

// freeAddrs returns n loopback addresses nothing listens on: all are
// held until every one is chosen, so that they differ.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var lns []net.Listener
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// newClusterNodes lays out size nodes: n1 bootstraps, the others join
// n1; each on its own ports and data directory, with the serve flags
// extra (as --name=value; with --tls-cert the API is https) and the
// client environment env besides the token.
func newClusterNodes(t *testing.T, size int, extra, env []string) []*clusterNode {
	addrs := freeAddrs(t, 2*size)
	scheme := "http"
	if slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--tls-cert=") }) {
		scheme = "https"
	}
	nodes := make([]*clusterNode, size)
	for i := range nodes {
		n := &clusterNode{id: fmt.Sprintf("n%d", i+1), data: t.TempDir(), apiAddr: addrs[2*i], raft: addrs[2*i+1], scheme: scheme, t: t,
			env: append([]string{"NEXUS_TOKEN=" + clusterToken}, env...)}
		// startServe takes flags as --name=value.
		n.args = []string{"--addr=" + n.apiAddr, "--node-id=" + n.id, "--raft-addr=" + n.raft, "--raft-timeouts=default", "--no-search"}
		n.args = append(n.args, extra...)
		if i == 0 {
			n.args = append(n.args, "--bootstrap")
		} else {
			n.args = append(n.args, "--join="+nodes[0].url())
		}
		nodes[i] = n
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.p != nil {
				n.p.cmd.Process.Signal(syscall.SIGTERM)
				n.p.cmd.Wait()
			}
		}
	})
	return nodes
}

// clusterStatus is `nexus cluster status --json` asked of n (GET
// /v1/cluster); nil if it did not answer.
func clusterStatus(n *clusterNode) *cluster.Status {
	out, code := n.cli("cluster", "status", "--json")
	var st cluster.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return nil
	}
	return &st
}

// settled reports whether st shows the members want, each answering,
// one of them leading, all at one head; it returns the leader and head.
func settled(st *cluster.Status, want ...string) (leader, head string, ok bool) {
	if st == nil || st.Leader == "" {
		return "", "", false
	}
	var ids []string
	for _, m := range st.Members {
		ids = append(ids, m.ID)
		if m.Error != "" || m.Head == "" || (head != "" && m.Head != head) {
			return "", "", false
		}
		head = m.Head
	}
	return st.Leader, head, slices.Equal(ids, want)
}

func byID(nodes []*clusterNode, id string) *clusterNode {
	for _, n := range nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// waitSettled waits until asking n shows the members want settled
// (settled), and returns the leader and the common head.
func waitSettled(t *testing.T, n *clusterNode, what string, want ...string) (leader, head string) {
	t.Helper()
	waitFor(t, 60*time.Second, what, func() bool {
		var ok bool
		leader, head, ok = settled(clusterStatus(n), want...)
		return ok
	})
	return leader, head
}

// waitWritable waits until a running node of nodes leads and takes
// writes (it applied the entries of earlier terms), and returns its id.
func waitWritable(t *testing.T, nodes []*clusterNode, what string) string {
	t.Helper()
	var id string
	waitFor(t, 60*time.Second, what, func() bool {
		for _, n := range nodes {
			if n.p == nil {
				continue
			}
			if st := clusterStatus(n); st != nil && st.Writable {
				id = n.id
				return true
			}
		}
		return false
	})
	return id
}

// put stores content through n, again while the cluster answers
// no_quorum (nothing was written: between two leaders), and returns the
// id.
func put(t *testing.T, n *clusterNode, content string) string {
	t.Helper()
	var out string
	waitFor(t, 60*time.Second, "a write through "+n.id, func() bool {
		var code int
		out, code = n.cli("put", content)
		if code != 0 && !strings.Contains(out, "(no_quorum)") {
			t.Fatalf("put through %s: exit %d:\n%s", n.id, code, out)
		}
		return code == 0
	})
	return strings.TrimSpace(out)
}

func mustCLI(t *testing.T, n *clusterNode, args ...string) string {
	t.Helper()
	out, code := n.cli(args...)
	if code != 0 {
		t.Fatalf("nexus %s: exit %d:\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// A cluster of three real `nexus serve` processes: writes through a
// follower, reads on every node, the leader SIGKILLed (a new leader
// takes writes), restarted with its flags (it catches up), leadership
// transferred, a stopped member removed, and a wiped node added back
// with `nexus cluster join` (it gets the whole history). Every replica
// ends at the same head and passes git fsck.
func TestCLI_Cluster(t *testing.T) {
	nodes := newClusterNodes(t, 3, nil, nil)
	for _, n := range nodes {
		n.start()
	}
	all := []string{"n1", "n2", "n3"}
	waitSettled(t, nodes[0], "3 members and a leader", all...)
	leader := waitWritable(t, nodes, "a leader taking writes")
	table := mustCLI(t, nodes[1], "cluster", "status")
	for _, want := range []string{"MEMBER  RAFT ADDR", "n1  ", "n2  ", "n3  ", "node n2: ", "leader: "} {
		if !strings.Contains(table, want) {
			t.Fatalf("cluster status does not show %q:\n%s", want, table)
		}
	}

	var follower *clusterNode
	for _, n := range nodes {
		if n.id != leader {
			follower = n
			break
		}
	}
	id := put(t, follower, "written through a follower")
	_, head := waitSettled(t, nodes[0], "the write on every node", all...)
	for _, n := range nodes {
		for _, level := range []string{"none", "leader", "linearizable"} {
			out := mustCLI(t, n, "get", id, "--consistency", level)
			if !strings.Contains(out, "written through a follower") {
				t.Fatalf("get at %s from %s:\n%s", level, n.id, out)
			}
		}
	}
	if out, code := follower.cli("get", id, "--consistency", "strong"); code != 2 || !strings.Contains(out, `--consistency: invalid consistency "strong"`) {
		t.Fatalf("an unknown level: exit %d:\n%s", code, out)
	}

	// SIGKILL the leader: the others elect one and take writes.
	old := byID(nodes, leader)
	old.stop(syscall.SIGKILL)
	var survivor *clusterNode
	for _, n := range nodes {
		if n != old {
			survivor = n
			break
		}
	}
	// The survivor forwards the write to whichever of them leads.
	waitWritable(t, nodes, "a new leader taking writes")
	put(t, survivor, "written after the leader died")
	old.start() // the same flags: its raft state makes --bootstrap or --join moot
	leader, head2 := waitSettled(t, old, "the restarted node to catch up", all...)
	if head2 == head {
		t.Fatalf("the head did not move past %s", head)
	}
	out := mustCLI(t, old, "ls", "--consistency", "none")
	if !strings.Contains(out, "written after the leader died") || !strings.Contains(out, "written through a follower") {
		t.Fatalf("the restarted node's own data:\n%s", out)
	}

	// Hand the leadership to a follower, asking another follower.
	var to, via *clusterNode
	for _, n := range nodes {
		switch {
		case n.id == leader:
		case to == nil:
			to = n
		default:
			via = n
		}
	}
	out = mustCLI(t, via, "cluster", "transfer-leadership", to.id)
	if !strings.HasPrefix(out, "leadership handed over by "+leader) {
		t.Fatalf("transfer-leadership printed:\n%s", out)
	}
	if got, _ := waitSettled(t, via, "the new leader", all...); got != to.id {
		t.Fatalf("the leadership went to %s, want %s", got, to.id)
	}
	if got := waitWritable(t, nodes, "the new leader taking writes"); got != to.id {
		t.Fatalf("%s takes writes, want %s", got, to.id)
	}
	// A recovery of every member, asked of a follower, run by the leader.
	out = mustCLI(t, via, "recover", "--cluster")
	if !strings.Contains(out, "consistent: every member at ") || strings.Count(out, " ok\n") != 6 {
		t.Fatalf("recover --cluster printed:\n%s", out)
	}

	// Remove a stopped follower; wipe it; add it back with cluster join.
	var gone *clusterNode
	for _, n := range nodes {
		if n != to {
			gone = n
			break
		}
	}
	gone.stop(syscall.SIGTERM)
	rest := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == gone.id })
	out = mustCLI(t, to, "cluster", "remove", gone.id)
	if want := fmt.Sprintf("member %s removed; members: %s\n", gone.id, strings.Join(rest, ", ")); out != want {
		t.Fatalf("cluster remove printed %q, want %q", out, want)
	}
	if out, code := to.cli("cluster", "remove", gone.id); code != 1 || !strings.Contains(out, "(not_found)") {
		t.Fatalf("removing it again: exit %d:\n%s", code, out)
	}
	put(t, to, "written while it was out")
	waitSettled(t, to, "two members", rest...)
	if err := os.RemoveAll(gone.data); err != nil {
		t.Fatal(err)
	}
	gone.args = slices.DeleteFunc(gone.args, func(a string) bool { return a == "--bootstrap" || strings.HasPrefix(a, "--join=") })
	gone.start() // neither --bootstrap nor --join: it waits to be added
	out = mustCLI(t, to, "cluster", "join", "--id", gone.id, "--raft-addr", gone.raft, "--api-url", gone.url())
	if !strings.HasPrefix(out, "member "+gone.id+" added") {
		t.Fatalf("cluster join printed:\n%s", out)
	}
	_, final := waitSettled(t, gone, "the wiped node to get the whole history", all...)
	out = mustCLI(t, gone, "ls", "--consistency", "none")
	for _, want := range []string{"written through a follower", "written after the leader died", "written while it was out"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the re-added node lacks %q:\n%s", want, out)
		}
	}

	for _, n := range nodes {
		n.stop(syscall.SIGTERM)
		out, err := exec.Command("git", "--git-dir", filepath.Join(n.data, "repo.git"), "fsck", "--strict", "--no-dangling").CombinedOutput()
		if err != nil {
			t.Fatalf("git fsck of %s: %v\n%s", n.id, err, out)
		}
		got, err := exec.Command("git", "--git-dir", filepath.Join(n.data, "repo.git"), "rev-parse", "refs/heads/main").Output()
		if err != nil || strings.TrimSpace(string(got)) != final {
			t.Fatalf("%s: main is %s (%v), want %s", n.id, got, err, final)
		}
	}
}

// With --peer-tls, raft and the requests between nodes (join, status,
// forwarded writes) go over mutual TLS with each node's certificate: a
// cluster forms and replicates, and the raft port refuses a peer without
// a certificate of the client CA.
func TestCLI_ClusterPeerTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "nexus test CA")
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir, "ca.pem")
	peerCert, peerKey := ca.Peer(t).Write(t, dir, "peer")
	cliCert, cliKey := ca.Client(t, "cli").Write(t, dir, "cli")
	nodes := newClusterNodes(t, 3,
		[]string{"--tls-cert=" + peerCert, "--tls-key=" + peerKey, "--tls-client-ca=" + caFile, "--peer-tls"},
		[]string{"NEXUS_CA=" + caFile, "NEXUS_CLIENT_CERT=" + cliCert, "NEXUS_CLIENT_KEY=" + cliKey})
	for _, n := range nodes {
		n.start()
	}
	all := []string{"n1", "n2", "n3"}
	waitSettled(t, nodes[0], "3 members over TLS", all...)
	leader := waitWritable(t, nodes, "a leader taking writes")
	follower := nodes[0]
	if follower.id == leader {
		follower = nodes[1]
	}
	id := put(t, follower, "forwarded over TLS")
	waitSettled(t, nodes[2], "the write on every node", all...)
	for _, n := range nodes {
		if out := mustCLI(t, n, "get", id, "--consistency", "none"); !strings.Contains(out, "forwarded over TLS") {
			t.Fatalf("get from %s:\n%s", n.id, out)
		}
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	pair, err := tls.LoadX509KeyPair(peerCert, peerKey)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(certs []tls.Certificate) error {
		conn, err := net.DialTimeout("tcp", nodes[0].raft, 10*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(conn, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: certs})
		if err := tc.Handshake(); err != nil {
			return err
		}
		if certs != nil {
			return nil // a peer: raft waits for its request
		}
		// TLS 1.3 refuses a missing client certificate after the
		// client's side of the handshake: on the first read.
		_, err = tc.Read(make([]byte, 1))
		return err
	}
	if err := dial([]tls.Certificate{pair}); err != nil {
		t.Fatalf("a peer with a certificate of the client CA: %v", err)
	}
	err = dial(nil)
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("a peer without a certificate: %v, want the handshake refused (certificate required)", err)
	}
}

// Contradictory or incomplete cluster flags stop serve before it makes
// its data directory, exit 2, with the node's own message; the
// configuration file's cluster section counts as flags not given.
func TestServe_ClusterFlagErrors(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeNodeConfig(t, "cluster:\n  node_id: n1\n  raft_addr: 127.0.0.1:1\n  join: [http://127.0.0.1:2]\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-id", "n1", "--raft-addr", "127.0.0.1:1", "--bootstrap", "--join", "http://127.0.0.1:2"},
			"nexus serve: Cluster.Join: a node either bootstraps a cluster or joins one, not both\n"},
		{[]string{"--raft-addr", "127.0.0.1:1"},
			"nexus serve: Cluster.NodeID: a raft address, --bootstrap or --join needs a node id\n"},
		{[]string{"--config", cfg, "--bootstrap"},
			"nexus serve: Cluster.Join: a node either bootstraps a cluster or joins one, not both\n"},
		{[]string{"--node-id", "n1", "--raft-addr", "127.0.0.1:1", "--addr", "127.0.0.1:0"},
			"nexus serve: --addr 127.0.0.1:0: a cluster's node needs a fixed port, or --api-url naming where its peers reach its API\n"},
		{[]string{"--raft-timeouts", "slow"}, `invalid value "slow" for flag -raft-timeouts: want default, fast or raft`},
	} {
		args := append([]string{"serve", "--data", data}, tc.args...)
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "NEXUS_TOKEN=", "NEXUS_NODE_ID=", "NEXUS_RAFT_ADDR=", "NEXUS_JOIN=", "NEXUS_API_URL=", "NEXUS_RAFT_ADVERTISE=")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr.String(), tc.want) || len(out) != 0 {
			t.Errorf("serve %q: %v, want exit 2 and %q:\n%s", tc.args, err, tc.want, stderr.String())
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("a refused serve made %s: %v", data, err)
	}
}

// A leader frozen with SIGSTOP (a long GC pause, a stalled VM) loses its
// leadership to the others, which go on taking writes; thawed with
// SIGCONT it finds a newer term, follows, and catches up: one head, every
// acknowledged write on every node.
func TestCLI_ClusterLeaderStopped(t *testing.T) {
	nodes := newClusterNodes(t, 3, nil, nil)
	for _, n := range nodes {
		n.start()
	}
	all := []string{"n1", "n2", "n3"}
	waitSettled(t, nodes[0], "3 members and a leader", all...)
	leader := byID(nodes, waitWritable(t, nodes, "a leader taking writes"))
	var others []*clusterNode
	for _, n := range nodes {
		if n != leader {
			others = append(others, n)
		}
	}
	var ids []string
	ids = append(ids, put(t, others[0], "before the freeze"))
	if err := leader.p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			leader.p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer thaw()
	// The two others elect one of them (asked only of them: the frozen
	// node answers nothing).
	waitWritable(t, others, "a new leader among the two others")
	for i := range 5 {
		ids = append(ids, put(t, others[i%2], fmt.Sprint("during the freeze ", i)))
	}
	thaw()
	_, head := waitSettled(t, leader, "the thawed node to follow and catch up", all...)
	for _, n := range nodes {
		if st := clusterStatus(n); st == nil || st.Head != head || (n == leader && st.State != "follower") {
			t.Fatalf("%s after the thaw: %+v", n.id, st)
		}
		for _, id := range ids {
			mustCLI(t, n, "get", id, "--consistency", "none")
		}
	}
}
