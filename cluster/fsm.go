package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// applyResult is what applying one entry gave: the contexts committed, or
// why the entry was refused (the same on every node).
type applyResult struct {
	contexts []*nexus.Context
	err      error
	// done, when not nil, is closed once contexts and err are known: a put
	// is committed to git by the applier after raft counts it applied.
	done chan struct{}
}

// wait waits for the result of a put, or for the node to stop.
func (r *applyResult) wait(stop <-chan struct{}) {
	if r.done == nil {
		return
	}
	select {
	case <-r.done:
	case <-stop:
		select {
		case <-r.done:
		default:
			r.err = nexus.Errorf(nexus.EOutcomeUnknown, "the node stopped before the write was confirmed: it may or may not be stored")
		}
	}
}

// pendingRun is a run of put entries handed to the applier, or (flush set)
// a request to say when everything handed before is committed.
type pendingRun struct {
	entries []gitstore.LogEntry
	results []*applyResult
	last    uint64 // the index applied once the run is committed
	flush   chan struct{}
}

// fsm applies the log to the store. Entries at or below floor were
// applied before this start (the head commit's Log-Index, or the last
// restore), so a replay after a restart skips them.
type fsm struct {
	store *gitstore.Store
	log   *slog.Logger
	dir   string
	floor uint64

	mu      sync.RWMutex
	members map[string]Member

	applied atomic.Uint64
	stalled atomic.Pointer[string] // why applying is being retried, or nil
	quit    chan struct{}
	fatal   func(error)                             // the store failed for good
	phase   func(context.Context, phaseEntry) error // runs a recovery phase here
	fetch   func(ctx context.Context, apiURLs []string) (string, error)
	backoff time.Duration
	stats   *snapshotStats
	// runs feeds the applier, which commits the put entries raft hands
	// over in as few group commits as it can: raft gives the state machine
	// each advance of the commit index apart, often a few entries.
	runs chan *pendingRun
}

// applyMark says how far the log is applied when main is at Head: written
// (fsynced) when the node's raft state is new (the store's history, and
// any Log-Index trailers in it, predate this log: nothing of it is
// applied), before a restore moves main back (the head it will have), and
// when a snapshot is installed. While main is still at Head, Index is how
// far the log is applied; once main moved on, only this log's writes moved
// it, and the head commit's Log-Index says it.
type applyMark struct {
	Head  string `json:"head"`
	Index uint64 `json:"index"`
}

func newFSM(store *gitstore.Store, dir string, fresh bool, log *slog.Logger) (*fsm, error) {
	f := &fsm{store: store, log: log, dir: dir, members: map[string]Member{}, quit: make(chan struct{}), backoff: 50 * time.Millisecond, runs: make(chan *pendingRun, 256)}
	if fresh {
		// A new raft state over an existing store (a first start, a raft
		// directory removed, a store restored from a backup): its history
		// predates this log.
		os.Remove(f.membersPath())
		if err := f.mark(store.Head().String(), 0); err != nil {
			return nil, err
		}
	}
	m, err := f.readMark()
	if err != nil {
		return nil, err
	}
	f.floor = store.LogIndex()
	if m != nil && m.Head == store.Head().String() {
		f.floor = m.Index
	}
	f.applied.Store(f.floor)
	if err := f.readMembers(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *fsm) markPath() string { return filepath.Join(f.dir, "applied.json") }

// mark records how far the log is applied when main is at head.
func (f *fsm) mark(head string, index uint64) error {
	return writeJSON(f.markPath(), applyMark{Head: head, Index: index})
}

func (f *fsm) readMark() (*applyMark, error) {
	b, err := os.ReadFile(f.markPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m applyMark
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "%s is damaged", f.markPath())
	}
	return &m, nil
}

func (f *fsm) membersPath() string { return filepath.Join(f.dir, "members.json") }

func (f *fsm) readMembers() error {
	b, err := os.ReadFile(f.membersPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, &f.members)
}

// Apply applies one entry.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in order. Puts go to the applier
// (their results complete when they are committed to git); any other
// entry waits until every put before it is committed, then applies.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	var run *pendingRun
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		k, v, err := decode(l.Data)
		if err != nil {
			f.log.Error("cannot decode a log entry", "index", l.Index, "err", err)
			out[i] = &applyResult{err: nexus.WrapError(nexus.EInternal, err, "log entry %d", l.Index)}
			continue
		}
		if k == kindPut {
			p := v.(*putEntry)
			if l.Index <= f.floor {
				out[i] = &applyResult{contexts: p.Contexts}
				continue
			}
			if run == nil {
				run = &pendingRun{}
			}
			r := &applyResult{contexts: p.Contexts, done: make(chan struct{})}
			run.entries = append(run.entries, gitstore.LogEntry{Index: l.Index, Contexts: p.Contexts})
			run.results = append(run.results, r)
			run.last = l.Index
			out[i] = r
			continue
		}
		if run != nil {
			f.hand(run)
			run = nil
		}
		f.flush()
		out[i] = f.applyOther(l.Index, k, v)
		f.applied.Store(l.Index)
	}
	if n := len(logs); n > 0 {
		if run != nil {
			run.last = logs[n-1].Index
			f.hand(run)
		} else {
			f.flush()
			f.applied.Store(logs[n-1].Index)
		}
	}
	return out
}

// errStopping answers a write committed by the cluster that this node
// stopped before committing to its own repository: the cluster has it,
// the client cannot know.
var errStopping = nexus.Errorf(nexus.EOutcomeUnknown, "the node stopped before the write was confirmed: it may or may not be stored")

// hand gives a run to the applier (waiting while it is far behind).
func (f *fsm) hand(run *pendingRun) {
	select {
	case f.runs <- run:
	case <-f.quit:
		for _, r := range run.results {
			r.err = errStopping
			close(r.done)
		}
	}
}

// flush waits until every run handed to the applier is committed.
func (f *fsm) flush() {
	done := make(chan struct{})
	select {
	case f.runs <- &pendingRun{flush: done}:
	case <-f.quit:
		return
	}
	select {
	case <-done:
	case <-f.quit:
	}
}

// applier commits the runs it is handed, as many as wait in one group
// commit, in order, until quit.
func (f *fsm) applier() {
	for {
		var first *pendingRun
		select {
		case first = <-f.runs:
		case <-f.quit:
			f.drainOnQuit()
			return
		}
		batch := []*pendingRun{first}
		size := len(first.entries)
	gather:
		for size < 4096 && first.flush == nil {
			select {
			case r := <-f.runs:
				batch = append(batch, r)
				size += len(r.entries)
				if r.flush != nil {
					break gather
				}
			default:
				break gather
			}
		}
		var entries []gitstore.LogEntry
		var results []*applyResult
		var last uint64
		for _, r := range batch {
			entries = append(entries, r.entries...)
			results = append(results, r.results...)
			last = max(last, r.last)
		}
		if len(entries) > 0 && !f.applyPuts(entries, results) {
			f.drainOnQuit()
			return
		}
		if last > 0 {
			f.applied.Store(last)
		}
		for _, r := range batch {
			if r.flush != nil {
				close(r.flush)
			}
		}
	}
}

// drainOnQuit answers what waits once the node stops.
func (f *fsm) drainOnQuit() {
	for {
		select {
		case r := <-f.runs:
			for _, res := range r.results {
				res.err = errStopping
				close(res.done)
			}
			if r.flush != nil {
				close(r.flush)
			}
		default:
			return
		}
	}
}

// applyPuts commits put entries, retrying while this node's storage fails
// (a full disk): an entry committed by the cluster must be applied here
// before anything after it. It reports false if the node stopped first.
func (f *fsm) applyPuts(run []gitstore.LogEntry, results []*applyResult) bool {
	wait := f.backoff
	for {
		_, errs, err := f.store.ApplyLog(context.Background(), run)
		if err == nil {
			f.stalled.Store(nil)
			for j := range run {
				results[j].err = errs[j]
				close(results[j].done)
			}
			return true
		}
		why := err.Error()
		f.stalled.Store(&why)
		if f.store.Ready() != nil && f.fatal != nil {
			f.fatal(err)
		}
		f.log.Error("cannot apply committed entries; retrying", "first", run[0].Index, "entries", len(run), "err", err, "in", wait)
		select {
		case <-f.quit:
			for _, r := range results {
				r.err = errStopping
				close(r.done)
			}
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (f *fsm) applyOther(index uint64, k kind, v any) *applyResult {
	switch k {
	case kindMember:
		m := v.(*Member)
		f.mu.Lock()
		f.members[m.ID] = *m
		snap := maps.Clone(f.members)
		f.mu.Unlock()
		if err := f.saveMembers(snap); err != nil {
			f.log.Warn("cannot save the members' addresses", "err", err)
		}
		return &applyResult{}
	case kindRestore:
		if index <= f.floor {
			return &applyResult{}
		}
		r := v.(*restoreEntry)
		// Record the head the restore leaves before main moves: a restart
		// in between applies the entry again (a restore to the same time
		// is the same), one after it knows the entry applied.
		plan, err := f.store.RestoreTo(context.Background(), r.At, true)
		if err == nil {
			if err = f.mark(plan.To, index); err != nil {
				return &applyResult{err: nexus.WrapError(nexus.EUnavailable, err, "record the restore")}
			}
			_, err = f.store.RestoreTo(context.Background(), r.At, false)
		}
		if err != nil {
			f.log.Error("restore entry failed", "index", index, "err", err)
		}
		return &applyResult{err: err}
	case kindBase:
		if index <= f.floor {
			return &applyResult{}
		}
		return &applyResult{err: f.applyBase(index, v.(*baseEntry))}
	case kindPhase:
		p := v.(*phaseEntry)
		if f.phase == nil {
			return &applyResult{}
		}
		return &applyResult{err: f.phase(context.Background(), *p)}
	}
	return &applyResult{}
}

// basePath holds the head a bootstrapping node's store had, until the
// base entry that records it is applied.
func (f *fsm) basePath() string { return filepath.Join(f.dir, "base.json") }

// applyBase makes main the history the cluster started from: a node that
// lacks it (it joined empty) fetches it from the member that proposed it,
// or another, retrying until one gives it.
func (f *fsm) applyBase(index uint64, b *baseEntry) error {
	head, err := gitstore.ParseHash(b.Head)
	if err != nil {
		return nexus.WrapError(nexus.EInternal, err, "base entry %d", index)
	}
	wait := f.backoff
	for f.store.Head() != head {
		err := f.installBase(head, b.From)
		if err == nil {
			break
		}
		why := "fetching the cluster's base history: " + err.Error()
		f.stalled.Store(&why)
		f.log.Error("cannot install the cluster's base history; retrying", "head", b.Head, "err", err, "in", wait)
		select {
		case <-f.quit:
			return nexus.WrapError(nexus.EUnavailable, err, "the node is stopping")
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	f.stalled.Store(nil)
	os.Remove(f.basePath())
	if err := f.mark(b.Head, index); err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "record the base")
	}
	f.log.Info("the cluster's base history is here", "head", b.Head, "contexts", f.store.Len())
	return nil
}

func (f *fsm) installBase(head gitstore.Hash, from string) error {
	if f.fetch == nil {
		return errors.New("this node cannot fetch histories from its peers")
	}
	urls := []string{from}
	for _, m := range f.Members() {
		if m.APIURL != "" && m.APIURL != from {
			urls = append(urls, m.APIURL)
		}
	}
	path, err := f.fetch(context.Background(), urls)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	_, err = f.store.InstallBundleAt(context.Background(), path, head)
	return err
}

func (f *fsm) saveMembers(m map[string]Member) error { return writeJSON(f.membersPath(), m) }

// Members returns the members' API addresses the log holds.
func (f *fsm) Members() map[string]Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.members)
}

// Snapshot captures the head and the members: the repository holds the
// rest.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.flush()
	return &manifest{Head: f.store.Head().String(), Index: f.applied.Load(), Members: f.Members()}, nil
}

// Restore installs a snapshot from the leader: the history of main and
// the members.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.flush()
	start := time.Now()
	m, body, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	if m.Head != "" && m.Head != f.store.Head().String() {
		if !m.Bundle {
			return errors.New("the snapshot carries no history")
		}
		tmp, err := os.CreateTemp(f.dir, "install-*.bundle")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		var size int64
		size, err = io.Copy(tmp, body)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		head, err := f.store.InstallBundle(context.Background(), tmp.Name())
		if err != nil {
			return err
		}
		if head.String() != m.Head {
			return errors.New("the snapshot's history ends at " + head.String() + ", not at its manifest's head " + m.Head)
		}
		if f.stats != nil {
			f.stats.mu.Lock()
			f.stats.installBytes, f.stats.installTime = size, time.Since(start)
			f.stats.installed++
			f.stats.mu.Unlock()
		}
	}
	f.mu.Lock()
	f.members = maps.Clone(m.Members)
	if f.members == nil {
		f.members = map[string]Member{}
	}
	snap := maps.Clone(f.members)
	f.mu.Unlock()
	// Later entries are all new to this history.
	f.floor = 0
	f.applied.Store(m.Index)
	if err := f.mark(f.store.Head().String(), m.Index); err != nil {
		return err
	}
	f.log.Info("installed a snapshot", "head", m.Head, "contexts", f.store.Len())
	return f.saveMembers(snap)
}

// writeJSON writes v to path durably (temp file, fsync, rename, directory
// fsync), readable by the owner only.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.Write(b)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
