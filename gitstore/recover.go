package gitstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// Online recovery: what a running node can repair without stopping. The
// cascade that decides when to call these lives in package recovery.

// RecoverCache re-verifies every L1 cache entry, then empties the cache:
// after entries failed their checksum in memory, none of them is trusted.
// It returns how many entries failed the check.
func (s *Store) RecoverCache() int {
	n := s.cache.verifyAll()
	s.cache.clear()
	s.cache.cleared.Store(s.cache.corrupt.Load())
	return n
}

// fixRefReq asks the writer to rewrite a damaged main ref.
type fixRefReq struct{ did string }

// RepairRef makes refs/heads/main name the head the store has
// acknowledged again, when the file on disk is unreadable, damaged
// (emptied, garbage, naming a commit that is not there) or names another
// commit (moved behind the store's back: a valid commit there is first
// kept under refs/recovery/, so nothing is lost). It says what it did, or
// "" when main was right.
func (s *Store) RepairRef(ctx context.Context) (string, error) {
	req := &fixRefReq{}
	if _, err := s.submit(ctx, &request{fixRef: req}); err != nil {
		return "", err
	}
	return req.did, nil
}

// commitFixRef runs in the writer, between group commits, so the ref and
// the catalog agree while it looks.
func (s *Store) commitFixRef(req *fixRefReq) error {
	did, err := fixHEAD(s.GitDir())
	if err != nil {
		return s.writeFailed(err, false)
	}
	req.did = did
	return s.fixMain(req)
}

// fixMain rewrites main at the acknowledged head if it is not there.
func (s *Store) fixMain(req *fixRefReq) error {
	head := s.Head()
	onDisk, err := s.repo.readRef()
	if err == nil && onDisk == head {
		return nil
	}
	if err == nil {
		if _, cerr := s.readCommit(onDisk); cerr != nil {
			err = fmt.Errorf("it names %s, which cannot be read: %w", onDisk, cerr)
		}
	}
	if head.IsZero() {
		return nexus.Errorf(nexus.EInternal, "%s is damaged (%v) and the store has no acknowledged head to rewrite it from", mainRef, err)
	}
	if _, cerr := s.readCommit(head); cerr != nil {
		return nexus.Errorf(nexus.EInternal, "%s does not name the acknowledged head %s, which cannot be read either: %v", mainRef, head, cerr)
	}
	what := fmt.Sprintf("it was damaged: %v", err)
	if err == nil {
		kept := fmt.Sprintf("refs/recovery/%s-%s", time.Now().UTC().Format("20060102T150405.000000000Z"), onDisk.String()[:12])
		if merr := s.repo.moveRef(kept, onDisk); merr != nil {
			return s.writeFailed(merr, false)
		}
		what = fmt.Sprintf("it named %s, now kept as %s", onDisk, kept)
	}
	if merr := s.repo.moveRef(mainRef, head); merr != nil {
		return s.writeFailed(merr, s.refMayHaveMoved())
	}
	s.forgetProblems(ProblemRef, mainRef) // what the last deep check said of main is repaired
	req.did = strings.TrimPrefix(req.did+"; ", "; ") + fmt.Sprintf("%s rewritten at the acknowledged head %s (%s)", mainRef, head, what)
	s.log.Warn("main ref repaired", "head", head, "was", what)
	return nil
}

// LastDeepCheck returns the report of the last deep check, or nil.
func (s *Store) LastDeepCheck() *FsckReport { return s.lastDeep.Load() }

// RepairFrom repairs damaged git objects from the first of sources (backup
// bundles or mirror repositories, best first) that holds them, moving on
// to the next while objects remain unrepaired, then runs a deep check to
// confirm. It says what it did; the error names what is left.
func (s *Store) RepairFrom(ctx context.Context, sources []string) (string, error) {
	if len(sources) == 0 {
		return "", errors.New("no backup or mirror is configured to repair from")
	}
	var did, errs []string
	// The last deep check says what is damaged, unless reads found more
	// since: then the first repair checks again.
	known := s.lastDeep.Load()
	if _, p := s.damage(); p == nil || s.repo.corruptReads.Load() != s.corruptSeen.Load() {
		known = nil
	}
	for _, src := range sources {
		rep, err := s.repairFromBackup(ctx, src, known)
		known = nil
		if rep != nil && len(rep.Restored)+len(rep.Salvaged) > 0 {
			did = append(did, fmt.Sprintf("%d objects restored from %s, %d packs rewritten", len(rep.Restored), src, len(rep.Salvaged)))
		}
		var cf checkFailed
		if errors.As(err, &cf) {
			return strings.Join(did, "; "), cf.error
		}
		if err != nil {
			errs = append(errs, src+": "+err.Error())
			continue
		}
		// A repair that changed anything ended with a deep check.
		last, p := s.damage()
		if p == nil {
			if len(did) == 0 {
				did = append(did, "nothing damaged")
			}
			return strings.Join(did, "; ") + fmt.Sprintf("; deep check clean (%d objects)", last.Objects), nil
		}
		errs = append(errs, fmt.Sprintf("%s: still damaged: %s", src, p))
	}
	// What no source holds, on side refs only, is cut back (sidecut.go),
	// as a deep check made now finds it.
	cut, err := s.cutLostSides(ctx, sources)
	did = append(did, cut...)
	if err != nil {
		return strings.Join(did, "; "), err
	}
	if len(cut) > 0 {
		if _, err := s.Fsck(ctx, true); err != nil {
			return strings.Join(did, "; "), err
		}
		if last, p := s.damage(); p == nil {
			return strings.Join(did, "; ") + fmt.Sprintf("; deep check clean (%d objects)", last.Objects), nil
		}
	}
	return strings.Join(did, "; "), fmt.Errorf("no backup repairs every damaged object: %s", strings.Join(errs, "; "))
}
