package gitstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus-mem/nexus"
)

// RestorePlan says what a point-in-time restore does (or did).
type RestorePlan struct {
	At          time.Time `json:"at"`
	From        string    `json:"from"`         // main before the restore
	To          string    `json:"to"`           // the last commit at or before At
	RecoveryRef string    `json:"recovery_ref"` // where From is kept
	Kept        int       `json:"kept"`         // contexts at or before At
	LastKept    nexus.ID  `json:"last_kept"`    // the newest of them
	RolledBack  int       `json:"rolled_back"`  // contexts after At, now only under RecoveryRef
	FirstGone   nexus.ID  `json:"first_rolled_back,omitzero"`
	LastGone    nexus.ID  `json:"last_rolled_back,omitzero"`
	DryRun      bool      `json:"dry_run"`
}

// restoreReq asks the writer to move main back.
type restoreReq struct {
	at     time.Time
	dryRun bool
	plan   *RestorePlan
}

// RestoreTo moves main to the last commit whose context was written at or
// before at, keeping the abandoned head under refs/recovery/ (nothing is
// lost: `git log` of that ref shows every rolled-back context), and
// rebuilds the catalog and clears the cache. With dryRun it only says what
// it would do. It runs in the writer, between group commits.
func (s *Store) RestoreTo(ctx context.Context, at time.Time, dryRun bool) (*RestorePlan, error) {
	req := &restoreReq{at: at, dryRun: dryRun}
	if _, err := s.submit(ctx, &request{restore: req}); err != nil {
		return nil, err
	}
	return req.plan, nil
}

// planRestore finds the target of a restore from the catalog: contexts
// are one commit each, in timestamp order.
func (s *Store) planRestore(at time.Time) (*RestorePlan, error) {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	p := &RestorePlan{At: at.UTC(), From: s.cat.head.String()}
	t := at.UnixNano()
	for _, e := range s.cat.ordered {
		if e.ts <= t {
			p.Kept++
			p.LastKept = e.id
			continue
		}
		if p.RolledBack == 0 {
			p.FirstGone = e.id
		}
		p.RolledBack++
		p.LastGone = e.id
	}
	if p.Kept == 0 {
		if len(s.cat.ordered) == 0 {
			return nil, nexus.Errorf(nexus.EInvalid, "the store is empty: nothing to restore")
		}
		first := time.Unix(0, s.cat.ordered[0].ts).UTC()
		return nil, nexus.Errorf(nexus.EInvalid, "no context was written at or before %s; the first was at %s",
			at.UTC().Format(time.RFC3339Nano), first.Format(time.RFC3339Nano))
	}
	return p, nil
}

// commitRestore runs a restore in the writer goroutine.
func (s *Store) commitRestore(req *restoreReq) error {
	if err := s.failure(); err != nil {
		return err
	}
	plan, err := s.planRestore(req.at)
	if err != nil {
		return err
	}
	req.plan = plan
	head := s.Head()
	plan.RecoveryRef = fmt.Sprintf("refs/recovery/%s-%s", time.Now().UTC().Format("20060102T150405.000000000Z"), head.String()[:12])
	plan.DryRun = req.dryRun
	if plan.RolledBack == 0 {
		plan.To, plan.RecoveryRef = plan.From, ""
		return nil
	}
	target, err := s.commitAt(head, req.at)
	if err != nil {
		return err
	}
	plan.To = target.String()
	if req.dryRun {
		return nil
	}
	if err := s.repo.moveRef(plan.RecoveryRef, head); err != nil {
		return s.writeFailed(err, false)
	}
	if err := s.repo.moveRef(mainRef, target); err != nil {
		return s.writeFailed(err, s.refMayHaveMoved())
	}
	fresh, err := s.buildCatalog(target)
	if err != nil {
		s.fail(err) // main moved but the catalog cannot follow: reopen rebuilds it
		return s.failure()
	}
	if err := s.adoptCatalog(fresh, "restore"); err != nil {
		return err
	}
	if s.opts.OnRestore != nil {
		s.opts.OnRestore(*plan)
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit()
	}
	return nil
}

// adoptCatalog makes fresh, built for the head main was just moved to,
// the store's catalog, and resets what derives from the old head: the
// cache, the trees, the timestamp floor, the log index. The search index
// sees a restore (it rebuilds).
func (s *Store) adoptCatalog(fresh *catalog, after string) error {
	s.refMu.Lock()
	s.cat.mu.Lock()
	s.cat.replaceLocked(fresh)
	s.cat.mu.Unlock()
	s.refMu.Unlock()
	s.cache.clear()
	s.restores.Add(1)
	s.trees = newTrees(s.repo)
	s.rewindTS()
	if err := s.loadLogIndex(); err != nil {
		s.fail(err)
		return s.failure()
	}
	if err := s.cat.save(s.dir); err != nil {
		s.log.Warn("cannot save the catalog after a "+after, "err", err)
	}
	return nil
}

// commitAt walks main back from head to the newest commit whose context
// was written at or before at (its Context-Id trailer names it).
func (s *Store) commitAt(head Hash, at time.Time) (Hash, error) {
	t := at.UnixNano()
	for h := head; ; {
		cm, err := s.readCommit(h)
		if err != nil {
			return zeroHash, err
		}
		if id, err := nexus.ParseID(trailers(cm.message)["Context-Id"]); err == nil {
			if e, ok := s.cat.get(id); ok && e.ts <= t {
				return h, nil
			}
		}
		if len(cm.parents) == 0 {
			return zeroHash, nexus.Errorf(nexus.EInternal, "no commit of main holds a context written at or before %s", at.UTC().Format(time.RFC3339Nano))
		}
		h = cm.parents[0]
	}
}

// Restores counts the point-in-time restores this store has run since it
// was opened: derived state built before a restore is stale.
func (s *Store) Restores() uint64 { return s.restores.Load() }
