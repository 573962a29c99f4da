package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nexus-mem/nexus/httpapi"
)

// spawnedCluster is the cluster `nexus chaos --spawn N` runs: N `nexus
// serve` processes of this binary on loopback, which the run can SIGKILL
// and restart (the kill_leader scenario).
type spawnedCluster struct {
	bin, dir, token string
	nodes           []*spawnedNode
}

// spawnedNode is one member: its flags are the same at every start.
type spawnedNode struct {
	id, url string
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	waitErr error         // set before exited closes
}

// spawnSpec describes the cluster to spawn.
type spawnSpec struct {
	size   int
	dir    string   // holds a data directory and a log per node
	config string   // serve's --config; "" writes one that enables chaos
	extra  []string // more flags of serve
}

// spawnCluster starts the cluster and waits until every member answers
// with one head under one leader.
func spawnCluster(ctx context.Context, spec spawnSpec, stderr io.Writer) (*spawnedCluster, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 24)
	rand.Read(tok)
	s := &spawnedCluster{bin: bin, dir: spec.dir, token: "chaos-" + hex.EncodeToString(tok)}
	if spec.config == "" {
		spec.config = filepath.Join(spec.dir, "nexus.yaml")
		if err := os.WriteFile(spec.config, []byte("chaos:\n  enabled: true\n"), 0o600); err != nil {
			return nil, err
		}
	}
	addrs, err := loopbackPorts(2 * spec.size)
	if err != nil {
		return nil, err
	}
	for i := range spec.size {
		n := &spawnedNode{id: fmt.Sprintf("n%d", i+1), url: "http://" + addrs[2*i]}
		n.args = []string{"serve", "--data", filepath.Join(spec.dir, n.id), "--addr", addrs[2*i], "--node-id", n.id,
			"--raft-addr", addrs[2*i+1], "--config", spec.config}
		if i == 0 {
			n.args = append(n.args, "--bootstrap")
		} else {
			n.args = append(n.args, "--join", s.nodes[0].url)
		}
		n.args = append(n.args, spec.extra...)
		s.nodes = append(s.nodes, n)
		if err := s.start(ctx, n); err != nil {
			s.stop()
			return nil, err
		}
		fmt.Fprintf(stderr, "spawned %s: %s (data and log in %s)\n", n.id, n.url, spec.dir)
	}
	if err := s.settle(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// spawnFor makes the spawn directory (a temporary one if spec.dir is
// empty) and spawns the cluster in it; cleanup stops the cluster and
// removes a temporary directory if the run passed.
func spawnFor(ctx context.Context, spec spawnSpec, stderr io.Writer) (_ *spawnedCluster, cleanup func(passed bool), err error) {
	temp := spec.dir == ""
	if temp {
		if spec.dir, err = os.MkdirTemp("", "nexus-chaos-"); err != nil {
			return nil, nil, err
		}
	} else if err := os.MkdirAll(spec.dir, 0o700); err != nil {
		return nil, nil, err
	}
	if spec.dir, err = filepath.Abs(spec.dir); err != nil {
		return nil, nil, err
	}
	sc, err := spawnCluster(ctx, spec, stderr)
	if err != nil {
		if temp {
			fmt.Fprintf(stderr, "the spawned nodes' data and logs are kept in %s\n", spec.dir)
		}
		return nil, nil, err
	}
	return sc, func(passed bool) {
		for _, err := range sc.stop() {
			fmt.Fprintf(stderr, "stopping the spawned cluster: %v\n", err)
		}
		if temp && passed {
			os.RemoveAll(spec.dir)
		} else {
			fmt.Fprintf(stderr, "the spawned nodes' data and logs are kept in %s\n", spec.dir)
		}
	}, nil
}

// loopbackPorts returns n addresses on 127.0.0.1 nothing listened on,
// all different.
func loopbackPorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// client reaches url with the cluster's token.
func (s *spawnedCluster) client(url string) *httpapi.Client {
	return httpapi.NewClient(url, httpapi.WithToken(s.token))
}

// start runs n's process (its output appended to DIR/ID.log) and waits
// until its API answers.
func (s *spawnedCluster) start(ctx context.Context, n *spawnedNode) error {
	logf, err := os.OpenFile(filepath.Join(s.dir, n.id+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, n.args...)
	// The environment without the NEXUS_ variables (the flags say it
	// all), and the cluster's token.
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "NEXUS_") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "NEXUS_TOKEN="+s.token)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", n.id, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		n.waitErr = cmd.Wait()
		logf.Close()
		close(exited)
	}(n.exited)
	c := s.client(n.url)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := c.Livez(ctx); err == nil {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("%s exited as it started (%v): see %s", n.id, n.waitErr, filepath.Join(s.dir, n.id+".log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer at %s within 2m: see %s", n.id, n.url, filepath.Join(s.dir, n.id+".log"))
		}
	}
}

// settle waits until every member answers GET /v1/cluster with one head
// and a leader takes writes.
func (s *spawnedCluster) settle(ctx context.Context) error {
	c := s.client(s.nodes[0].url)
	deadline := time.Now().Add(2 * time.Minute)
	last := ""
	for {
		st, err := c.ClusterStatus(ctx, false)
		if err == nil {
			ok := st.Leader != "" && len(st.Members) == len(s.nodes)
			for _, m := range st.Members {
				ok = ok && m.Error == "" && m.Head == st.Members[0].Head
			}
			if ok {
				if lead, err := s.client(st.LeaderAPI).ClusterStatus(ctx, true); err == nil && lead.Writable {
					return nil
				}
			}
			last = fmt.Sprintf("leader %q, %d members", st.Leader, len(st.Members))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the spawned cluster did not settle within 2m: %s", last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *spawnedCluster) node(url string) (*spawnedNode, error) {
	i := slices.IndexFunc(s.nodes, func(n *spawnedNode) bool { return n.url == strings.TrimRight(url, "/") })
	if i < 0 {
		return nil, fmt.Errorf("no spawned member serves %s", url)
	}
	return s.nodes[i], nil
}

// Kill sends SIGKILL to the member serving url and waits until it exited.
func (s *spawnedCluster) Kill(url string) error {
	n, err := s.node(url)
	if err != nil {
		return err
	}
	select {
	case <-n.exited:
		return fmt.Errorf("%s is not running (%v)", n.id, n.waitErr)
	default:
	}
	if err := n.cmd.Process.Kill(); err != nil {
		return err
	}
	<-n.exited
	return nil
}

// Restart starts the member serving url again with its flags.
func (s *spawnedCluster) Restart(ctx context.Context, url string) error {
	n, err := s.node(url)
	if err != nil {
		return err
	}
	select {
	case <-n.exited:
	default:
		return fmt.Errorf("%s is still running", n.id)
	}
	return s.start(ctx, n)
}

// stop ends every member with SIGTERM (SIGKILL after 30 s).
func (s *spawnedCluster) stop() []error {
	var errs []error
	for _, n := range s.nodes {
		if n.cmd == nil {
			continue
		}
		select {
		case <-n.exited:
			continue
		default:
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range s.nodes {
		if n.cmd == nil {
			continue
		}
		select {
		case <-n.exited:
		case <-time.After(30 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
		}
		var ee *exec.ExitError
		if n.waitErr != nil && !errors.As(n.waitErr, &ee) {
			errs = append(errs, fmt.Errorf("%s: %w", n.id, n.waitErr))
		}
	}
	return errs
}
