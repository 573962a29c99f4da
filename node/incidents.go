package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/metrics"
	"github.com/nexus-mem/nexus/recovery"
)

// The node's incidents, in its memory (see recovery.Incident for the
// records). The cascade's events (recovery.Event) become records in a
// queue, in order, which one job writes through the node's store — in a
// cluster, through the log, so every member holds every member's
// incidents. A write that fails for a reason that may pass (the
// repository being repaired, a full disk, no quorum, a follower: writes
// are made where the log is led) stays queued and is retried, with a
// growing wait; the queue is bounded. What is still queued when the node
// closes (or stops on a fatal failure) is kept in DIR/incidents.pending
// (sealed on an encrypted store) and written first by the next start.

const (
	maxQueuedIncidents = 1000                 // records waiting to be written
	incidentWindow     = 1000                 // records read for /metrics
	pendingFile        = "incidents.pending"  // in the data directory
	incidentWriteWait  = 10 * time.Second     // bound of one write
	incidentRetryMax   = 30 * time.Second     // longest wait between retries
	incidentFlushWait  = 2 * time.Second      // what closing spends writing the rest
	incidentStartCheck = "the start-up check" // found by, at Open
)

// incidentLog records the node's incidents.
type incidentLog struct {
	node   string // the node id (a cluster's member) or the host name
	dir    string // the data directory, named in advice
	log    *slog.Logger
	sealer *gitstore.FileSealer // nil: the pending file is plain
	kick   chan struct{}

	// writeMu is held around each write, and by a restore while it finds
	// and writes again the records it rolls back.
	writeMu sync.Mutex

	mu      sync.Mutex // guards what follows
	open    map[string]*episode
	queue   []*incRecord
	loaded  int // records at the queue's head that came from the pending file
	dropped int
}

// incRecord is one record to write: its parent is written first, and its
// id becomes this one's parent id.
type incRecord struct {
	draft   nexus.Draft
	parent  *incRecord
	id      nexus.ID // once written
	dropped bool
}

// episode is a component's open incident.
type episode struct {
	det      recovery.Detection
	root     *incRecord
	steps    []recovery.IncidentStep // since the last outcome recorded
	attempts int
	lastFail string // the reason of the last failure recorded: repeats are folded
	carried  bool   // left unresolved by the node's last run
}

func newIncidentLog(n *Node) *incidentLog {
	id := n.cfg.Cluster.NodeID
	if id == "" {
		id, _ = os.Hostname()
	}
	l := makeIncidentLog(id, n.cfg.Dir, n.log, n.store.FileSealer())
	if len(n.repaired) > 0 {
		l.atStart(nexus.ComponentGit, n.repaired[0], n.opened, n.repaired[1:], nil)
	}
	return l
}

// makeIncidentLog is the incident log of node id over the data
// directory dir, with the records its last run kept queued.
func makeIncidentLog(id, dir string, log *slog.Logger, sealer *gitstore.FileSealer) *incidentLog {
	l := &incidentLog{node: id, dir: dir, log: log, sealer: sealer, kick: make(chan struct{}, 1), open: map[string]*episode{}}
	l.load()
	return l
}

// carry reopens the episodes this node left unresolved (open or failed)
// when it last stopped — whether their records are in the store (read)
// or still queued from the pending file — so that the cascade goes on
// with them: closed when their component is found well, continued if it
// still fails. It returns their components, for
// recovery.Manager.MarkFailing.
func (l *incidentLog) carry(read nexus.Store) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	// The queued records as contexts, with ids of their own (after every
	// stored one) and their threads linked.
	var ids nexus.IDGenerator
	as := map[*incRecord]*nexus.Context{}
	kids := map[nexus.ID][]*nexus.Context{}
	var roots []*incRecord
	for _, r := range l.queue[:l.loaded] {
		c := &nexus.Context{ID: ids.New(time.Now()), Namespace: r.draft.Namespace, Type: r.draft.Type, Metadata: r.draft.Metadata, ParentID: r.draft.ParentID}
		as[r] = c
		if r.parent != nil && as[r.parent] != nil {
			c.ParentID = as[r.parent].ID
		}
		if c.ParentID.IsZero() {
			roots = append(roots, r)
		} else {
			kids[c.ParentID] = append(kids[c.ParentID], c)
		}
	}
	reopen := func(i *recovery.Incident, root *incRecord) {
		if i.Kind != recovery.KindFailure || i.Node != l.node || i.Resolved() || l.open[i.Component] != nil {
			return
		}
		l.open[i.Component] = &episode{carried: true, attempts: i.Attempts, root: root,
			det: recovery.Detection{Kind: i.Kind, Component: i.Component, Cause: i.Cause, FoundBy: i.FoundBy, Node: i.Node, At: i.DetectedAt}}
	}
	for _, r := range slices.Backward(roots) { // the newest of a component is carried
		if i, err := recovery.ParseIncident(as[r], kids[as[r].ID]); err == nil {
			reopen(i, r)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	incs, err := recovery.Recent(ctx, read, incidentWindow)
	if err != nil {
		l.log.Warn("cannot read the incidents of the last run", "err", err)
	}
	for _, i := range incs { // newest first
		if queued := kids[i.ID]; len(queued) > 0 { // outcomes not written yet
			root, rerr := read.Get(ctx, i.ID)
			stored, kerr := read.Children(ctx, i.ID)
			if rerr != nil || kerr != nil {
				continue
			}
			if i, err = recovery.ParseIncident(root, append(stored, queued...)); err != nil {
				continue
			}
		}
		reopen(i, &incRecord{id: i.ID})
	}
	out := slices.Sorted(maps.Keys(l.open))
	if len(out) > 0 {
		l.log.Info("incidents left unresolved by the last run: the cascade goes on with them", "components", out)
	}
	return out
}

// writable is where the node's own records are written: the store, or
// the cluster's log; nil in a cluster not open yet (a write to the store
// alone would set this member apart from the others).
func (n *Node) writable() nexus.Store {
	if n.cfg.Cluster.Enabled() && n.cluster == nil {
		return nil
	}
	return n.data
}

// problems is the text of the problems of a check.
func problems(ps []gitstore.Problem) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	if len(out) == 0 {
		return "the start-up check found derived state to rebuild"
	}
	return strings.Join(out, "; ")
}

// repairs is the text of each repair.
func repairs(rs []gitstore.Repair) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

// event turns one event of the cascade into records.
func (l *incidentLog) event(e recovery.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ep := l.open[e.Component]
	switch e.Kind {
	case recovery.Detected:
		l.detect(recovery.Detection{Kind: recovery.KindFailure, Component: e.Component, Cause: e.Cause, FoundBy: e.FoundBy, Node: l.node, At: e.At})
	case recovery.Attempt:
		if ep == nil { // an attempt always follows a detection; be safe
			ep = l.detect(recovery.Detection{Kind: recovery.KindFailure, Component: e.Component, Cause: e.Step.Reason, FoundBy: "a recovery attempt", Node: l.node, At: e.Step.At})
		}
		ep.attempts++
		s := recovery.StepOf(e.Step)
		s.Reason = strings.TrimPrefix(s.Reason, ep.det.Cause+"; ") // the cause is the detection's
		ep.steps = append(ep.steps, s)
		if len(ep.steps) > recovery.MaxIncidentSteps { // a long episode: the newest are kept
			ep.steps = slices.Delete(ep.steps, 0, 1)
		}
		switch {
		case e.Step.Status == recovery.Recovered:
			l.outcome(ep, recovery.IncidentRecovered, e.At, false)
		case e.Critical:
			l.outcome(ep, recovery.IncidentFailed, e.At, true)
		case ep.lastFail != e.Step.Reason:
			ep.lastFail = e.Step.Reason
			l.outcome(ep, recovery.IncidentFailed, e.At, false)
		}
	case recovery.Cleared:
		if ep == nil {
			return
		}
		why := "found well again (" + e.Step.Reason + ")"
		if ep.carried {
			why = "found well again after the node started again (" + e.Step.Reason + ")"
		}
		ep.steps = append(ep.steps, recovery.IncidentStep{At: e.Step.At, Action: "check", Status: "ok", Reason: why, Took: e.Step.Took})
		l.outcome(ep, recovery.IncidentCleared, e.At, false)
	}
}

// detect opens an episode and queues its root. l.mu is held.
func (l *incidentLog) detect(d recovery.Detection) *episode {
	ep := &episode{det: d}
	ep.root = l.enqueue(recovery.DetectionDraft(d), nil)
	if d.Kind == recovery.KindFailure {
		l.open[d.Component] = ep
	}
	return ep
}

// outcome queues an outcome of ep with the steps since the last one; a
// status other than failed (or a stop) closes the episode. l.mu is held.
func (l *incidentLog) outcome(ep *episode, status string, at time.Time, stopped bool) {
	o := recovery.Outcome{Status: status, At: at, Attempts: ep.attempts, Stopped: stopped, Steps: ep.steps,
		Advice: l.advice(ep.det, status)}
	l.enqueue(recovery.OutcomeDraft(ep.det, o, nexus.ZeroID), ep.root)
	ep.steps = nil
	if (status != recovery.IncidentFailed || stopped) && l.open[ep.det.Component] == ep {
		delete(l.open, ep.det.Component)
	}
}

// enqueue queues a record (dropped if the queue is full or its parent
// was). l.mu is held.
func (l *incidentLog) enqueue(d nexus.Draft, parent *incRecord) *incRecord {
	r := &incRecord{draft: d, parent: parent}
	if len(l.queue) >= maxQueuedIncidents || (parent != nil && parent.dropped) {
		r.dropped = true
		l.dropped++
		l.log.Error("incident record dropped: the queue of records not yet written is full", "queued", len(l.queue), "dropped", l.dropped, "record", d.Content)
		return r
	}
	l.queue = append(l.queue, r)
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return r
}

// advice is what the operator should do about an incident of d that
// ended in status.
func (l *incidentLog) advice(d recovery.Detection, status string) string {
	dir := l.dir
	if status != recovery.IncidentFailed {
		switch d.Component {
		case nexus.ComponentGit:
			return "nothing to repair now; find out why the repository was damaged (the disk, the file system, another process writing in " +
				filepath.Join(dir, "repo.git") + ") and keep a mirror or scheduled backups configured: they are what the node repairs objects from"
		case nexus.ComponentStore:
			return "nothing to repair now: the catalog is derived from git and was rebuilt; if it recurs, check the disk under " + dir
		case nexus.ComponentCache:
			return "nothing to repair now: the cache refills from git; if entries keep failing their checksum in memory, check the machine's memory (ECC)"
		case nexus.ComponentIndex:
			return "nothing to repair now: the index is whole again; if its files are damaged again, check the disk under " + IndexDir(dir)
		case nexus.ComponentAgents:
			return "nothing to do now; if an agent keeps failing, check its provider and credentials (`nexus agents` shows each agent's state and last error)"
		}
		return "nothing to repair now"
	}
	switch d.Component {
	case nexus.ComponentGit:
		return strings.ReplaceAll(adviceOnline, "DIR", dir)
	case nexus.ComponentCache:
		return "restart the node: the cache is rebuilt from git"
	case nexus.ComponentIndex:
		return "stop the node, then `nexus recover --data " + dir + "` (it rebuilds a damaged index; `nexus reindex --data " + dir + "` rebuilds it in any case)"
	case nexus.ComponentAgents:
		return "`nexus agents` shows which agent fails and why: fix its provider or configuration; an auth_failed agent needs a new key in its secrets file (it is reset once the key changes)"
	}
	return "stop the node, then `nexus recover --data " + dir + "`: it says what is wrong and repairs what it can"
}

// atStart records what Open repaired before the node could serve: the
// repository repaired before it could be opened, the derived state
// rebuilt by the start-up check.
func (l *incidentLog) atStart(component, cause string, opened time.Time, repaired []string, err error) {
	if len(repaired) == 0 && err == nil {
		return
	}
	now := time.Now().UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	ep := l.detect(recovery.Detection{Kind: recovery.KindFailure, Component: component, Cause: cause, FoundBy: incidentStartCheck, Node: l.node, At: opened})
	delete(l.open, component) // closed here: the cascade's episodes are its own
	for _, r := range repaired {
		ep.steps = append(ep.steps, recovery.IncidentStep{At: now, Action: "repair", Status: "done", Reason: r})
	}
	ep.attempts = 1
	status := recovery.IncidentRecovered
	if err != nil {
		ep.steps = append(ep.steps, recovery.IncidentStep{At: now, Action: "repair", Status: "failed", Reason: nexus.Describe(err)})
		status = recovery.IncidentFailed
	}
	l.outcome(ep, status, now, err != nil)
}

// run writes the queue through store until ctx ends, retrying what fails
// for a reason that may pass.
func (l *incidentLog) run(ctx context.Context, store nexus.Store) {
	wait := time.Second
	failing := false
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		err := l.flush(ctx, store)
		retry.Stop()
		switch {
		case err == nil:
			wait, failing = time.Second, false
		case ctx.Err() != nil:
			return
		default:
			if !failing {
				l.log.Warn("incident records not written yet; retrying", "err", err, "queued", l.queued())
			}
			failing = true
			retry.Reset(wait)
			wait = min(2*wait, incidentRetryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		case <-retry.C:
		}
	}
}

func (l *incidentLog) queued() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queue)
}

// flush writes the queue in order; it stops at the first write that may
// succeed later and returns its error.
func (l *incidentLog) flush(ctx context.Context, store nexus.Store) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.mu.Unlock()
			return nil
		}
		r := l.queue[0]
		l.mu.Unlock()
		err := l.write(ctx, store, r)
		if err != nil && retryable(err) {
			return err
		}
		l.mu.Lock()
		if err != nil {
			r.dropped = true
			l.dropped++
			l.log.Error("incident record refused by the store: dropped", "err", err, "record", r.draft.Content)
		}
		if len(l.queue) > 0 && l.queue[0] == r {
			l.queue = l.queue[1:]
			if l.loaded > 0 {
				if l.loaded--; l.loaded == 0 {
					l.removePending()
				}
			}
		}
		l.mu.Unlock()
	}
}

// write writes one record under writeMu.
func (l *incidentLog) write(ctx context.Context, store nexus.Store, r *incRecord) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	d := r.draft
	if r.parent != nil {
		if r.parent.dropped || r.parent.id.IsZero() {
			return nexus.Errorf(nexus.EInvalid, "its incident's first record was not written")
		}
		d.ParentID = r.parent.id
	}
	// A write under way ends even when the node stops: one cut short
	// after its commit would be written twice.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), incidentWriteWait)
	defer cancel()
	c, err := store.Put(wctx, d)
	if err != nil {
		return err
	}
	r.id = c.ID
	return nil
}

// retryable reports whether a refused write may succeed later.
func retryable(err error) bool {
	switch nexus.ErrorCode(err) {
	case nexus.EInvalid, nexus.ETooLarge, nexus.EForbidden, nexus.ENotFound, nexus.EConflict:
		return false
	}
	return true
}

// shutdown writes what it can of the queue through store (for a short
// while) and keeps the rest in the pending file.
func (l *incidentLog) shutdown(store nexus.Store) {
	if store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), incidentFlushWait)
		if err := l.flush(ctx, store); err != nil {
			l.log.Warn("incident records not written at close; kept for the next start", "err", err, "queued", l.queued(), "file", l.pendingPath())
		}
		cancel()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.queue) == 0 {
		return
	}
	if err := l.savePending(); err != nil {
		l.log.Error("incident records lost: cannot keep them for the next start", "err", err, "records", len(l.queue))
	}
}

// pendingEntry is one record of the pending file: its parent is either
// written (ParentID in the draft) or an earlier entry (Ref, 1-based).
type pendingEntry struct {
	Draft nexus.Draft `json:"draft"`
	Ref   int         `json:"ref,omitempty"`
}

func (l *incidentLog) pendingPath() string { return filepath.Join(l.dir, pendingFile) }

// savePending writes the queue to the pending file. l.mu is held.
func (l *incidentLog) savePending() error {
	index := map[*incRecord]int{}
	var buf bytes.Buffer
	for i, r := range l.queue {
		e := pendingEntry{Draft: r.draft}
		if r.parent != nil {
			if j, ok := index[r.parent]; ok {
				e.Ref = j
			} else if !r.parent.id.IsZero() {
				e.Draft.ParentID = r.parent.id
			} else {
				continue // its parent was dropped
			}
		}
		index[r] = i + 1
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(append(b, '\n'))
	}
	data := buf.Bytes()
	if l.sealer != nil {
		data = l.sealer.Seal(data)
	}
	tmp := l.pendingPath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.pendingPath())
}

// load queues the records of the pending file, if there is one.
func (l *incidentLog) load() {
	data, err := os.ReadFile(l.pendingPath())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil && l.sealer != nil {
		data, err = l.sealer.Unseal(data)
	}
	if err != nil {
		l.log.Error("cannot read the incident records kept by the last run; they are left in place", "file", l.pendingPath(), "err", err)
		return
	}
	var recs []*incRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for sc.Scan() {
		var e pendingEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			l.log.Error("a damaged line in the incident records kept by the last run: skipped", "file", l.pendingPath(), "err", err)
			continue
		}
		r := &incRecord{draft: e.Draft}
		if e.Ref > 0 && e.Ref <= len(recs) {
			r.parent = recs[e.Ref-1]
		}
		recs = append(recs, r)
	}
	l.mu.Lock()
	l.queue = append(recs, l.queue...)
	l.loaded = len(recs)
	l.mu.Unlock()
	if len(recs) == 0 {
		l.removePending()
		return
	}
	l.log.Info("incident records of the last run to write", "records", len(recs))
}

func (l *incidentLog) removePending() {
	if err := os.Remove(l.pendingPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.log.Warn("cannot remove the written incident records' file", "file", l.pendingPath(), "err", err)
	}
}

// restoring runs a restore (do) so that the incident records it rolls
// back are not lost: they are written again after it, with the same
// content and times in their records (and the id they had), followed by
// an incident that records the restore itself. read is the node's own
// store, for finding them.
func (l *incidentLog) restoring(ctx context.Context, read nexus.Store, at time.Time, dryRun bool, do func() (*gitstore.RestorePlan, error)) (*gitstore.RestorePlan, error) {
	if dryRun {
		return do()
	}
	start := time.Now().UTC()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	after, err := incidentRecordsAfter(ctx, read, at)
	if err != nil {
		return nil, err
	}
	plan, err := do()
	if err != nil || plan.RolledBack == 0 {
		return plan, err // nothing moved: no incident
	}
	var gone []*nexus.Context
	for _, c := range after {
		if _, err := read.Get(ctx, c.ID); nexus.ErrorCode(err) == nexus.ENotFound {
			gone = append(gone, c)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	again := map[nexus.ID]*incRecord{}
	var recs []*incRecord
	for _, c := range gone {
		d, err := recovery.RecordAgain(c, nexus.ZeroID)
		if err != nil {
			continue // not an incident record
		}
		r := &incRecord{draft: d}
		if p, ok := again[c.ParentID]; ok {
			r.parent, r.draft.ParentID = p, nexus.ZeroID
		}
		again[c.ID] = r
		recs = append(recs, r)
	}
	// Records still to write, and open episodes, whose parent was rolled
	// back hang under its new record.
	for _, r := range l.queue {
		if r.parent != nil && !r.parent.id.IsZero() {
			if p, ok := again[r.parent.id]; ok {
				r.parent = p
			}
		}
	}
	for _, ep := range l.open {
		if p, ok := again[ep.root.id]; ok {
			ep.root = p
		}
	}
	l.queue = append(recs, l.queue...)
	cause := fmt.Sprintf("the memory restored to %s (main moved from %s to %s; %d contexts rolled back, kept under %s)",
		plan.At.UTC().Format(time.RFC3339Nano), short(plan.From), short(plan.To), plan.RolledBack, plan.RecoveryRef)
	ep := l.detect(recovery.Detection{Kind: recovery.KindRestore, Component: nexus.ComponentGit, Cause: cause, FoundBy: operator(ctx, "a restore"), Node: l.node, At: start})
	done := time.Now().UTC()
	ep.steps = []recovery.IncidentStep{{At: start, Action: "restore", Status: "done", Reason: cause, Took: done.Sub(start)}}
	if len(recs) > 0 {
		ep.steps = append(ep.steps, recovery.IncidentStep{At: done, Action: "re-record", Status: "done",
			Reason: fmt.Sprintf("%d incident records written after %s, rolled back by the restore, written again", len(recs), plan.At.UTC().Format(time.RFC3339Nano))})
	}
	o := recovery.Outcome{Status: recovery.IncidentRestored, At: done, Steps: ep.steps,
		Advice: "check that the memory is what you expected (nexus ls, nexus log); what was rolled back is still under " + plan.RecoveryRef}
	l.enqueue(recovery.OutcomeDraft(ep.det, o, nexus.ZeroID), ep.root)
	return plan, nil
}

// incidentRecordsAfter lists the records of the incidents namespace
// written after at, oldest first.
func incidentRecordsAfter(ctx context.Context, st nexus.Store, at time.Time) ([]*nexus.Context, error) {
	var out []*nexus.Context
	f := nexus.Filter{Namespace: recovery.IncidentsNamespace, Since: at.Add(time.Nanosecond), Order: nexus.Oldest, Limit: nexus.MaxLimit}
	for {
		page, err := st.List(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page.Contexts...)
		if page.NextCursor == "" || len(out) >= 10*maxQueuedIncidents {
			return out, nil
		}
		f.Cursor = page.NextCursor
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// operator names who asked for an action: the route and the principal of
// the request of ctx, or what, for a call in the node's process.
func operator(ctx context.Context, what string) string {
	o, ok := nexus.OriginFrom(ctx)
	if !ok {
		return what + " in the node's process"
	}
	s := "an operator: " + o.Route
	if p, ok := nexus.PrincipalFrom(ctx); ok {
		s += " by " + p.Name
	}
	if o.RemoteAddr != "" {
		s += " from " + o.RemoteAddr
	}
	return s
}

// figures are the incidents of this node among the newest records, by
// component, for /metrics. cluster: only those of this node (a member's
// store holds every member's).
func (l *incidentLog) figures(read nexus.Store, cluster bool) []metrics.IncidentFigures {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	incs, err := recovery.Recent(ctx, read, incidentWindow)
	if err != nil {
		l.log.Warn("cannot read the incident records for the metrics", "err", err)
		return nil
	}
	by := map[string]*metrics.IncidentFigures{}
	for _, i := range incs {
		if i.Kind != recovery.KindFailure || (cluster && i.Node != l.node) {
			continue
		}
		f := by[i.Component]
		if f == nil {
			f = &metrics.IncidentFigures{Component: i.Component, ByStatus: map[string]int{}}
			by[i.Component] = f
		}
		f.ByStatus[i.Status]++
		if i.Resolved() {
			f.RecoveryTimes = append(f.RecoveryTimes, i.Duration)
		}
		if i.DetectedAt.After(f.LastDetected) {
			f.LastDetected = i.DetectedAt
		}
	}
	out := make([]metrics.IncidentFigures, 0, len(by))
	for _, c := range slices.Sorted(maps.Keys(by)) {
		f := by[c]
		sort.Slice(f.RecoveryTimes, func(a, b int) bool { return f.RecoveryTimes[a] < f.RecoveryTimes[b] })
		out = append(out, *f)
	}
	return out
}
