package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus-mem/nexus"
)

// Status is this node's view of the cluster.
type Status struct {
	NodeID       string         `json:"node_id"`
	State        string         `json:"state"` // leader, follower, candidate, shutdown
	Leader       string         `json:"leader,omitempty"`
	LeaderAPI    string         `json:"leader_api,omitempty"`
	Term         uint64         `json:"term"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	LastIndex    uint64         `json:"last_index"`
	Head         string         `json:"head"`
	LastContact  *time.Time     `json:"last_contact,omitempty"` // a follower's last contact with the leader
	Writable     bool           `json:"writable"`               // leads and takes writes
	Stalled      string         `json:"stalled,omitempty"`      // why applying committed entries is being retried
	Members      []MemberStatus `json:"members"`
}

// MemberStatus is one member as this node knows it. Applied index and
// head are filled by a caller that asked the member itself.
type MemberStatus struct {
	Member
	Voter        bool   `json:"voter"`
	Leader       bool   `json:"leader"`
	AppliedIndex uint64 `json:"applied_index,omitempty"`
	Head         string `json:"head,omitempty"`
	Error        string `json:"error,omitempty"` // why the member could not be asked
}

// Status reports this node's view.
func (n *Node) Status() Status {
	st := Status{
		NodeID: n.cfg.NodeID, State: stateName(n.raft.State()), Term: n.raft.CurrentTerm(),
		CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.applied.Load(), LastIndex: n.raft.LastIndex(),
		Head: n.store.Head().String(), Writable: n.ready.Load(),
	}
	if s := n.fsm.stalled.Load(); s != nil {
		st.Stalled = *s
	}
	_, lid := n.raft.LeaderWithID()
	st.Leader = string(lid)
	members := n.fsm.Members()
	st.LeaderAPI = members[st.Leader].APIURL
	if n.raft.State() == raft.Follower {
		if t := n.raft.LastContact(); !t.IsZero() {
			st.LastContact = &t
		}
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			m := members[string(s.ID)]
			m.ID, m.RaftAddr = string(s.ID), string(s.Address)
			st.Members = append(st.Members, MemberStatus{Member: m, Voter: s.Suffrage == raft.Voter, Leader: m.ID == st.Leader})
		}
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int { return strings.Compare(a.ID, b.ID) })
	return st
}

func stateName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

// IsLeader reports whether this node leads and takes writes.
func (n *Node) IsLeader() bool { return n.ready.Load() }

// Leader returns the leader's id and API address as this node knows them
// ("" when it knows no leader).
func (n *Node) Leader() (id, apiURL string) {
	_, lid := n.raft.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	return string(lid), n.fsm.Members()[string(lid)].APIURL
}

// AppliedIndex is the index of the last entry this node applied.
func (n *Node) AppliedIndex() uint64 { return n.fsm.applied.Load() }

// Consistency is what a read asks of the data it sees.
type Consistency string

// Read consistency levels.
const (
	// None reads this node's data as it is: possibly stale.
	None Consistency = "none"
	// Leader reads on the node that believes it leads (stale only in the
	// short window where a deposed leader has not noticed yet).
	Leader Consistency = "leader"
	// Linearizable confirms the leadership with a quorum and waits until
	// every entry committed before the read is applied.
	Linearizable Consistency = "linearizable"
)

// ParseConsistency reads a level ("" is def).
func ParseConsistency(s string, def Consistency) (Consistency, error) {
	switch Consistency(s) {
	case "":
		return def, nil
	case None, Leader, Linearizable:
		return Consistency(s), nil
	}
	return "", nexus.Errorf(nexus.EInvalid, "invalid consistency %q: want none, leader or linearizable", s)
}

// ReadBarrier readies a read at level on this node. For leader and
// linearizable it fails with a *NotLeaderError (or no_quorum) when this
// node does not lead; linearizable also confirms the leadership with a
// quorum and waits until this node applied every entry committed before.
func (n *Node) ReadBarrier(ctx context.Context, level Consistency) error {
	switch level {
	case None:
		return nil
	case Leader:
		if !n.ready.Load() {
			return n.notLeader()
		}
		return nil
	}
	if !n.ready.Load() {
		return n.notLeader()
	}
	commit := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return n.notLeader()
		}
		return nexus.WrapError(nexus.EUnavailable, err, "cannot confirm the leadership")
	}
	return n.waitApplied(ctx, commit)
}

// waitApplied waits until this node applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	if n.appliedThrough(index) {
		return nil
	}
	// A barrier is an entry: once applied, everything before it is.
	f := n.raft.Barrier(n.cfg.ApplyTimeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return n.applyError(err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// appliedThrough reports whether every entry up to index that changes the
// state is applied here: the state machine never sees raft's own entries
// (no-ops of new terms, barriers), so those after its last are skipped.
func (n *Node) appliedThrough(index uint64) bool {
	applied := n.fsm.applied.Load()
	if applied >= index {
		return true
	}
	if index-applied > 64 {
		return false
	}
	var l raft.Log
	for i := applied + 1; i <= index; i++ {
		if err := n.logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}

// Join adds a node to the cluster as a voter (on the leader), and
// records its API address.
func (n *Node) Join(ctx context.Context, m Member) error {
	if m.ID == "" || m.RaftAddr == "" {
		return nexus.Errorf(nexus.EInvalid, "a joining node needs an id and a raft address")
	}
	if err := n.writable(); err != nil {
		return err
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == m.ID && string(s.Address) == m.RaftAddr && n.fsm.Members()[m.ID] == m {
				return nil // already a member: joining again is harmless
			}
			if string(s.ID) != m.ID && string(s.Address) == m.RaftAddr {
				return nexus.Errorf(nexus.EConflict, "the raft address %s belongs to member %s", m.RaftAddr, s.ID)
			}
		}
	}
	if err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return n.applyError(err)
	}
	n.log.Info("member added", "id", m.ID, "raft", m.RaftAddr, "api", m.APIURL)
	n.event("cluster.member", map[string]any{"action": "added", "id": m.ID})
	return n.applyMember(m)
}

// Remove takes a node out of the cluster (on the leader).
func (n *Node) Remove(ctx context.Context, id string) error {
	if err := n.writable(); err != nil {
		return err
	}
	found := false
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			found = found || string(s.ID) == id
		}
	}
	if !found {
		return nexus.Errorf(nexus.ENotFound, "no member %q", id)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return n.applyError(err)
	}
	n.log.Info("member removed", "id", id)
	n.event("cluster.member", map[string]any{"action": "removed", "id": id})
	return nil
}

// TransferLeadership hands the leadership to another voter (to id, or to
// the most up-to-date one when id is "").
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	if err := n.writable(); err != nil {
		return err
	}
	var f raft.Future
	if id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		var addr raft.ServerAddress
		if cf := n.raft.GetConfiguration(); cf.Error() == nil {
			for _, s := range cf.Configuration().Servers {
				if string(s.ID) == id {
					addr = s.Address
				}
			}
		}
		if addr == "" {
			return nexus.Errorf(nexus.ENotFound, "no member %q", id)
		}
		f = n.raft.LeadershipTransferToServer(raft.ServerID(id), addr)
	}
	if err := f.Error(); err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "leadership transfer failed")
	}
	return nil
}

// LeaderChanges counts the leadership changes this node saw.
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

// Snapshot takes a snapshot now (tests and operators compact the log).
func (n *Node) Snapshot() error {
	err := n.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return err
}

// RaftAddr is the address peers reach this node's raft at.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// Figures are the node's raft figures for metrics.
type Figures struct {
	Leader                                                  bool
	State                                                   string
	Term, CommitIndex, AppliedIndex, LeaderChanges, Members uint64
	Stalled                                                 bool
	SnapshotsTaken, SnapshotsSent, SnapshotsInstalled       uint64
	LastSentBytes, LastInstalledBytes                       int64
	LastSentTime, LastInstallTime                           time.Duration
}

// Figures reports the node's raft figures.
func (n *Node) Figures() Figures {
	f := Figures{
		Leader: n.ready.Load(), State: stateName(n.raft.State()), Term: n.raft.CurrentTerm(),
		CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.fsm.applied.Load(), LeaderChanges: n.leaderChanges.Load(),
		Stalled: n.fsm.stalled.Load() != nil,
	}
	if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		f.Members = uint64(len(cf.Configuration().Servers))
	}
	st := n.snaps.stats
	st.mu.Lock()
	f.SnapshotsTaken, f.SnapshotsSent, f.SnapshotsInstalled = uint64(st.taken), uint64(st.sent), uint64(st.installed)
	f.LastSentBytes, f.LastInstalledBytes, f.LastSentTime, f.LastInstallTime = st.bundleBytes, st.installBytes, st.bundleTime, st.installTime
	st.mu.Unlock()
	return f
}
