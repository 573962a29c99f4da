package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
)

// RecoverCluster is a recovery of every member, coordinated by this node
// (the leader): the plan and each phase are recorded in the log; every
// member runs a phase (its cascading recovery, then an integrity check)
// and the next starts only once all finished it; a member that fails
// stops the plan, named in the report with its step. The repairs of the
// cascade only add good copies and rebuild derived state, so there is
// nothing to roll back. The plan ends by verifying that every member is
// at the leader's head and applied index. Members are reached with the
// node's admin token (every node of a cluster shares NEXUS_TOKEN).
func (n *Node) RecoverCluster(ctx context.Context) (rep *cluster.RecoveryReport, err error) {
	if n.cluster == nil {
		return nil, nexus.Errorf(nexus.ENotFound, "this node is not part of a cluster")
	}
	err = n.audit.Do(ctx, "recover_cluster", nil, func() (audit.Fields, error) {
		if rep, err = n.coordinateRecovery(ctx); err != nil {
			return nil, err
		}
		return audit.Fields{"plan": rep.Plan, "stopped": rep.Stopped, "consistent": strconv.FormatBool(rep.Consistent), "head": rep.Head}, nil
	})
	return rep, err
}

// clusterPhase is one phase of a cluster recovery, run on one member.
type clusterPhase struct {
	name  string
	local func(ctx context.Context) (any, string)             // on this node: detail, failure ("" when it worked)
	peer  func(ctx context.Context, api string) (any, string) // on another member
}

func (n *Node) coordinateRecovery(ctx context.Context) (*cluster.RecoveryReport, error) {
	if !n.cluster.IsLeader() {
		return nil, n.cluster.ReadBarrier(ctx, cluster.Leader) // names the leader
	}
	rep := &cluster.RecoveryReport{Plan: "recover-" + time.Now().UTC().Format("20060102T150405.000Z")}
	if err := n.cluster.RunPhase(ctx, rep.Plan, "begin"); err != nil {
		return nil, err
	}
	client := &http.Client{Transport: n.peerTransport(), Timeout: 10 * time.Minute}
	phases := []clusterPhase{
		{"recover", n.localRecoverPhase, func(ctx context.Context, api string) (any, string) {
			var res httpapi.RecoverResult
			if err := n.peerCall(ctx, client, api+"/v1/admin/recover", &res); err != nil {
				return nil, err.Error()
			}
			return res, recoverFailure(res)
		}},
		{"check", n.localCheckPhase, func(ctx context.Context, api string) (any, string) {
			var res gitstore.FsckReport
			if err := n.peerCall(ctx, client, api+"/v1/admin/fsck", &res); err != nil {
				return nil, err.Error()
			}
			return res, fsckFailure(&res)
		}},
	}
	members := n.cluster.Status().Members
	for _, p := range phases {
		if err := n.cluster.RunPhase(ctx, rep.Plan, p.name); err != nil {
			return nil, err
		}
		pr := cluster.PhaseReport{Name: p.name, Nodes: make([]cluster.MemberResult, len(members))}
		var wg sync.WaitGroup
		for i, m := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var detail any
				var fail string
				switch {
				case m.ID == n.cfg.Cluster.NodeID:
					detail, fail = p.local(ctx)
				case m.APIURL == "":
					fail = "its API address is not known"
				default:
					detail, fail = p.peer(ctx, m.APIURL)
				}
				pr.Nodes[i] = cluster.MemberResult{ID: m.ID, OK: fail == "", Detail: detail, Error: n.redact.Redact(fail)}
			}()
		}
		wg.Wait()
		rep.Phases = append(rep.Phases, pr)
		for _, r := range pr.Nodes {
			if !r.OK {
				rep.Stopped = fmt.Sprintf("member %s, phase %s: %s", r.ID, p.name, r.Error)
				n.log.Error("cluster recovery stopped", "plan", rep.Plan, "member", r.ID, "phase", p.name, "err", r.Error)
				n.cluster.RunPhase(ctx, rep.Plan, "stopped")
				return rep, nil
			}
		}
	}
	rep.Consistent, rep.Head = n.verifyConsistency(ctx, client, members)
	n.cluster.RunPhase(ctx, rep.Plan, "done")
	return rep, nil
}

func (n *Node) localRecoverPhase(ctx context.Context) (any, string) {
	res := httpapi.RecoverResult{Steps: n.mgr.Run(recovery.WithTrigger(ctx, "the cluster's recovery (POST /v1/admin/recover?scope=cluster)")), Stopping: n.mgr.Fatal()}
	return res, recoverFailure(res)
}

func (n *Node) localCheckPhase(ctx context.Context) (any, string) {
	rep, err := n.store.Fsck(ctx, false)
	if err != nil {
		return nil, err.Error()
	}
	return rep, fsckFailure(rep)
}

// recoverFailure names the step of a cascade that failed.
func recoverFailure(res httpapi.RecoverResult) string {
	for _, s := range res.Steps {
		if s.Status == recovery.Failed {
			return "step " + s.String()
		}
	}
	if res.Stopping {
		return "a critical component could not be recovered: the member stops"
	}
	return ""
}

// fsckFailure names the damage an integrity check found.
func fsckFailure(rep *gitstore.FsckReport) string {
	for _, p := range rep.Problems {
		if p.Kind.Damage() {
			return fmt.Sprintf("integrity check: %s %s: %s", p.Kind, p.Object, p.Message)
		}
	}
	return ""
}

// verifyConsistency waits (up to 30 s) until every member applied as far
// as this node and holds its head.
func (n *Node) verifyConsistency(ctx context.Context, client *http.Client, members []cluster.MemberStatus) (bool, string) {
	if err := n.cluster.ReadBarrier(ctx, cluster.Linearizable); err != nil {
		return false, ""
	}
	want, head := n.cluster.AppliedIndex(), n.store.Head().String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		same := true
		for _, m := range members {
			if m.ID == n.cfg.Cluster.NodeID {
				continue
			}
			var st cluster.Status
			if err := n.peerGet(ctx, client, m.APIURL+"/v1/cluster?local=true", &st); err != nil || st.AppliedIndex < want || st.Head != n.store.Head().String() {
				same = false
				break
			}
		}
		if same {
			return true, head
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false, head
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
		head = n.store.Head().String()
	}
}

// peerCall POSTs to a member's admin route and decodes its answer.
func (n *Node) peerCall(ctx context.Context, client *http.Client, url string, out any) error {
	return n.peerDo(ctx, client, http.MethodPost, url, out)
}

func (n *Node) peerGet(ctx context.Context, client *http.Client, url string, out any) error {
	return n.peerDo(ctx, client, http.MethodGet, url, out)
}

func (n *Node) peerDo(ctx context.Context, client *http.Client, method, url string, out any) error {
	var body *bytes.Reader
	if method == http.MethodPost {
		body = bytes.NewReader([]byte("{}"))
	} else {
		body = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if n.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+n.cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb nexus.ErrorBody
		if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Error.Message != "" {
			return fmt.Errorf("%s: %s", eb.Error.Code, eb.Error.Message)
		}
		return fmt.Errorf("answered %s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// History writes a git bundle of main's history into a temporary file of
// the data directory, for a peer that repairs from it.
func (n *Node) History(ctx context.Context) (string, error) {
	head := n.store.Head()
	if head.IsZero() {
		return "", nexus.Errorf(nexus.ENotFound, "the memory is empty: it has no history")
	}
	dir := filepath.Join(n.cfg.Dir, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "history-*.bundle")
	if err != nil {
		return "", err
	}
	path := f.Name()
	f.Close()
	os.Remove(path) // git writes it
	if err := n.store.WriteBundle(ctx, path, head); err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// repairSources lists where damaged objects are repaired from: in a
// cluster, first the history of a healthy peer (the leader first),
// fetched when a repair needs it; then the mirror and the backups.
func (n *Node) repairSources() []string {
	base := RepairSources(n.cfg.Mirror, n.cfg.backupDir())()
	if n.cluster == nil {
		return base
	}
	if p := n.fetchPeerHistory(); p != "" {
		return append([]string{p}, base...)
	}
	return base
}

// fetchPeerHistory downloads a peer's history into DATA/tmp/peer.bundle,
// from the leader first; "" if no peer could give it.
func (n *Node) fetchPeerHistory() string {
	st := n.cluster.Status()
	slices.SortStableFunc(st.Members, func(a, b cluster.MemberStatus) int {
		switch {
		case a.Leader == b.Leader:
			return 0
		case a.Leader:
			return -1
		}
		return 1
	})
	dir := filepath.Join(n.cfg.Dir, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ""
	}
	out := filepath.Join(dir, "peer.bundle")
	client := &http.Client{Transport: n.peerTransport(), Timeout: 10 * time.Minute}
	for _, m := range st.Members {
		if m.ID == st.NodeID || m.APIURL == "" {
			continue
		}
		if err := n.download(client, m.APIURL+"/v1/admin/history", out); err != nil {
			n.log.Warn("cannot fetch a peer's history to repair from", "peer", m.ID, "err", err)
			continue
		}
		n.log.Info("repairing from a peer's history", "peer", m.ID)
		return out
	}
	return ""
}

// fetchHistory downloads the history of the first member of apiURLs that
// gives it, for a node that joins a cluster bootstrapped over existing
// contexts.
func (n *Node) fetchHistory(ctx context.Context, apiURLs []string) (string, error) {
	dir := filepath.Join(n.cfg.Dir, "tmp")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "base.bundle")
	client := &http.Client{Transport: n.peerTransport(), Timeout: 30 * time.Minute}
	var errs []error
	for _, u := range apiURLs {
		if u == "" {
			continue
		}
		if err := n.download(client, u+"/v1/admin/history", out); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		return out, nil
	}
	return "", errors.Join(errs...)
}

func (n *Node) download(client *http.Client, url, out string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if n.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+n.cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	f, err := os.OpenFile(out+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out + ".tmp")
		return err
	}
	return os.Rename(out+".tmp", out)
}
