package gitstore

import (
	"errors"
	"time"

	"github.com/nexus-mem/nexus"
)

// writer is the single goroutine that commits. It takes every pending
// request (up to MaxBatch contexts) and commits them as one group.
func (s *Store) writer() {
	defer s.wg.Done()
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.closing:
			s.drain()
			return
		}
		s.commitGroup(s.gather(first))
	}
}

// gather collects first and whatever else is already queued.
func (s *Store) gather(first *request) []*request {
	batch := []*request{first}
	n := first.size()
	for n < s.opts.MaxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
			n += r.size()
			continue
		default:
		}
		break
	}
	return batch
}

func (r *request) size() int {
	if r.group != nil {
		n := 0
		for _, g := range r.group {
			n += g.size()
		}
		return n
	}
	if r.draft != nil || r.side != nil || r.restore != nil || r.fixRef != nil || r.rekey != nil || r.install != nil {
		return 1
	}
	return len(r.fixed)
}

// flatten replaces each ApplyLog request by the requests of its entries,
// in order: each entry is validated and answered on its own.
func flatten(reqs []*request) []*request {
	grouped := false
	for _, r := range reqs {
		grouped = grouped || r.group != nil
	}
	if !grouped {
		return reqs
	}
	out := make([]*request, 0, len(reqs))
	for _, r := range reqs {
		if r.group != nil {
			out = append(out, r.group...)
		} else {
			out = append(out, r)
		}
	}
	return out
}

// drain commits what was queued before Close.
func (s *Store) drain() {
	for {
		select {
		case r := <-s.reqs:
			s.commitGroup(s.gather(r))
		default:
			return
		}
	}
}

// staged is a context ready to commit, with the request that asked for it.
type staged struct {
	req   *request
	ctx   *nexus.Context
	blob  []byte
	index uint64 // the replicated log index, recorded in the commit (0: none)
}

// Added is a context a group commit added, for Options.OnContexts.
type Added struct {
	Context *nexus.Context
	// JSON is its stored form, which GetRaw returns: the API's JSON of
	// the context and a newline.
	JSON []byte
}

// commitGroup assigns ids and timestamps to drafts, then commits every
// valid context of the group in one pack. Invalid requests are answered
// individually; the others share the group's fate.
func (s *Store) commitGroup(reqs []*request) {
	reqs = flatten(reqs)
	if err := s.failure(); err != nil {
		for _, r := range reqs {
			r.done <- result{err: err}
		}
		return
	}
	ctxReqs := reqs[:0:0]
	for _, r := range reqs {
		switch {
		case r.side != nil:
			head, err := s.commitSide(r.side)
			r.done <- result{head: head, err: err}
		case r.restore != nil:
			r.done <- result{err: s.commitRestore(r.restore)}
		case r.fixRef != nil:
			r.done <- result{err: s.commitFixRef(r.fixRef)}
		case r.rekey != nil:
			r.done <- result{err: s.commitRekey(r.rekey)}
		case r.install != nil:
			r.done <- result{err: s.commitInstall(r.install)}
		default:
			ctxReqs = append(ctxReqs, r)
		}
	}
	reqs = ctxReqs
	var ok []*request
	var items []staged
	pending := map[nexus.ID]string{}
	for _, r := range reqs {
		st, err := s.stage(r, pending)
		if err != nil {
			r.done <- result{err: err}
			continue
		}
		ok = append(ok, r)
		items = append(items, st...)
	}
	if len(items) == 0 {
		return
	}
	head, err := s.apply(items)
	stagedOf := make(map[*request]*staged, len(ok))
	for i, it := range items {
		if it.req.draft != nil {
			stagedOf[it.req] = &items[i]
		}
	}
	for _, r := range ok {
		res := result{head: head, err: err}
		if st := stagedOf[r]; err == nil && st != nil {
			res.ctx, res.blob = st.ctx, st.blob
		}
		r.done <- res
	}
}

// stage turns a request into contexts with ids and timestamps, checking
// the rules that depend on the store's state.
func (s *Store) stage(r *request, pending map[nexus.ID]string) ([]staged, error) {
	if r.draft != nil {
		d := r.draft
		if err := s.checkParent(d.Namespace, d.ParentID, pending); err != nil {
			return nil, err
		}
		ts := s.opts.Now().UnixNano()
		if ts <= s.lastTS {
			ts = s.lastTS + 1
		}
		t := time.Unix(0, ts).UTC()
		c := &nexus.Context{
			ID: s.gen.New(t), Namespace: d.Namespace, Type: d.Type, AgentID: d.AgentID,
			ParentID: d.ParentID, Timestamp: t, Metadata: d.Metadata, Content: d.Content, Principal: d.Principal,
			SemanticHash: nexus.SemanticHash(d.Type, d.Content, d.Metadata),
		}
		s.lastTS = ts
		pending[c.ID] = c.Namespace
		return []staged{{req: r, ctx: c}}, nil
	}
	return s.stageFixed(r, pending)
}

// stageFixed validates contexts given with their ids and timestamps.
func (s *Store) stageFixed(r *request, pending map[nexus.ID]string) ([]staged, error) {
	lastTS, out := s.lastTS, make([]staged, 0, len(r.fixed))
	newIDs := map[nexus.ID]string{}
	for k, v := range pending {
		newIDs[k] = v
	}
	for _, c := range r.fixed {
		if err := c.Verify(); err != nil {
			return nil, err
		}
		if len(c.Content) > s.opts.MaxContent {
			return nil, nexus.Errorf(nexus.ETooLarge, "context %s: content is %d bytes, over the limit of %d", c.ID, len(c.Content), s.opts.MaxContent)
		}
		ts := c.Timestamp.UnixNano()
		if ts <= lastTS {
			return nil, nexus.Errorf(nexus.EConflict, "context %s: timestamp %s is not after the store's last", c.ID, c.Timestamp.Format(time.RFC3339Nano))
		}
		if _, dup := s.cat.get(c.ID); dup {
			return nil, nexus.Errorf(nexus.EConflict, "context %s already exists", c.ID)
		}
		if err := s.checkParent(c.Namespace, c.ParentID, newIDs); err != nil {
			return nil, err
		}
		lastTS = ts
		newIDs[c.ID] = c.Namespace
		out = append(out, staged{req: r, ctx: c, index: r.index})
	}
	for _, st := range out {
		s.gen.Observe(st.ctx.ID)
		pending[st.ctx.ID] = st.ctx.Namespace
	}
	s.lastTS = lastTS
	return out, nil
}

// apply writes the staged contexts as consecutive commits in one pack,
// makes it durable, moves main, then updates the catalog and cache. On
// error nothing is acknowledged and, unless the ref may have moved, the
// in-memory state is unchanged.
func (s *Store) apply(items []staged) (Hash, error) {
	head, entries, err := s.build(items)
	if err != nil {
		s.rewindTS()
		return zeroHash, err
	}
	pack, idx := s.pw.finish()
	s.refMu.Lock() // main and the catalog move together for readers of both
	err = s.repo.commitPack(pack, idx, mainRef, head, func() error {
		s.kickMerge()
		return s.failpoint("pack-written")
	})
	if err != nil {
		s.refMu.Unlock()
		s.rewindTS()
		return zeroHash, s.writeFailed(err, s.refMayHaveMoved())
	}
	ferr := s.failpoint("ref-moved")
	s.cat.mu.Lock()
	var prev nexus.ID // the newest context before the batch
	if n := len(s.cat.ordered); n > 0 {
		prev = s.cat.ordered[n-1].id
	}
	for _, e := range entries {
		s.cat.addLocked(e)
	}
	s.cat.head = head
	s.cat.mu.Unlock()
	s.refMu.Unlock()
	for _, it := range items {
		s.cache.put(it.ctx.ID, it.blob)
	}
	if ferr == nil {
		ferr = s.failpoint("catalog-updated")
	}
	if ferr != nil {
		return zeroHash, nexus.WrapError(nexus.EInternal, ferr, "failpoint")
	}
	s.diskFull.Store(nil)
	if ix := items[len(items)-1].index; ix > 0 {
		s.logIndex.Store(ix)
	}
	if s.opts.OnContexts != nil {
		added := make([]Added, len(items))
		for i, it := range items {
			added[i] = Added{Context: it.ctx, JSON: it.blob}
		}
		s.opts.OnContexts(prev, added)
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit()
	}
	return head, nil
}

// build encodes the staged contexts into the pack writer, one commit each.
func (s *Store) build(items []staged) (Hash, []*entry, error) {
	s.pw.reset()
	s.trees.trim()
	s.cat.mu.RLock()
	head := s.cat.head
	s.cat.mu.RUnlock()
	root, err := s.rootTree(head)
	if err != nil {
		return zeroHash, nil, err
	}
	perNS := map[string]int{}
	entries := make([]*entry, 0, len(items))
	var dirs [2 + leafDigits]string // the namespace, then the shard levels
	sealed := s.Encrypted()
	for i := range items {
		it := &items[i]
		blob, err := encodeContext(it.ctx)
		if err != nil {
			return zeroHash, nil, nexus.WrapError(nexus.EInternal, err, "encode context")
		}
		it.blob = blob
		bh := s.pw.add(objBlob, s.seal(blob))
		ns := it.ctx.Namespace
		leaf := s.cat.nextLeafLocked(ns, perNS[ns])
		perNS[ns]++
		path := appendShardDirs(append(dirs[:0], ns), leaf)
		root, err = s.trees.insert(s.pw, root, path, it.ctx.ID.String()+fileExt, bh)
		if err != nil {
			return zeroHash, nil, nexus.WrapError(nexus.EUnavailable, err, "read snapshot tree")
		}
		s.pw.scratch = appendContextCommit(s.pw.scratch[:0], it.ctx, root, head, sealed, it.index)
		head = s.pw.add(objCommit, s.pw.scratch)
		entries = append(entries, entryOf(it.ctx, bh, leaf, len(blob)))
	}
	return head, entries, nil
}

// rootTree returns the tree of commit h (zero for no commit).
func (s *Store) rootTree(h Hash) (Hash, error) {
	if h.IsZero() {
		return zeroHash, nil
	}
	data, err := s.repo.readTyped(h, objCommit)
	if err != nil {
		return zeroHash, nexus.WrapError(nexus.EUnavailable, err, "read head commit")
	}
	c, err := decodeCommit(data)
	if err != nil {
		return zeroHash, nexus.WrapError(nexus.EUnavailable, &CorruptError{Object: h, Err: err}, "read head commit")
	}
	return c.tree, nil
}

// rewindTS resets the timestamp floor to the committed state after a
// failed batch, so that the same fixed batch can be applied again.
func (s *Store) rewindTS() {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	s.lastTS = 0
	if n := len(s.cat.ordered); n > 0 {
		s.lastTS = s.cat.ordered[n-1].ts
	}
}

func (s *Store) failpoint(name string) error {
	if s.opts.Failpoint == nil {
		return nil
	}
	return s.opts.Failpoint(name)
}

// refMayHaveMoved reports whether main no longer points to the committed head.
func (s *Store) refMayHaveMoved() bool {
	on, err := s.repo.readRef()
	return err != nil || on != s.Head()
}

// writeFailed classifies a failed commit. A full disk is a clean failure:
// nothing moved. A failed fsync, or a ref that may have moved, leaves the
// on-disk state uncertain: the store stops taking writes until reopened
// (it is never retried and trusted).
func (s *Store) writeFailed(err error, uncertain bool) error {
	var se *SyncError
	if uncertain || errors.As(err, &se) {
		s.fail(err)
		return s.failure()
	}
	if isNoSpace(err) {
		why := noSpace(err)
		s.diskFull.Store(&why) // cleared by the next commit that succeeds
	}
	return wrapIOError(err, "commit")
}
