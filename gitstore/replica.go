package gitstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nexus-mem/nexus"
)

// logIndexTrailer names, in the commit of a replicated context, the index
// of the log entry that carried it. Every replica applies an entry to the
// same state, so the trailer is part of identical commits; the head's
// trailer tells a replica how far it applied the log.
const logIndexTrailer = "Log-Index"

// LogEntry is one entry of a replicated log: contexts whose ids and
// timestamps the leader fixed, committed together with the entry's index
// recorded in each commit.
type LogEntry struct {
	Index    uint64
	Contexts []*nexus.Context
}

// ApplyLog commits the contexts of entries, in order, in one group commit.
// Each entry is validated against the state the entries before it left
// (the same on every replica), so an invalid entry is refused on every
// replica alike: its error is errs[i] and the other entries still commit.
// err is a failure of this replica (storage): nothing was committed and
// the same entries may be applied again.
func (s *Store) ApplyLog(ctx context.Context, entries []LogEntry) (head Hash, errs []error, err error) {
	errs = make([]error, len(entries))
	if len(entries) == 0 {
		return s.Head(), errs, nil
	}
	group := make([]*request, len(entries))
	for i, e := range entries {
		group[i] = &request{fixed: e.Contexts, index: e.Index, done: make(chan result, 1)}
	}
	if err := s.failure(); err != nil {
		return zeroHash, nil, err
	}
	if err := s.send(ctx, &request{group: group}); err != nil {
		return zeroHash, nil, err
	}
	head = s.Head()
	var storage error
	for i, r := range group {
		var res result
		select {
		case res = <-r.done:
		case <-ctx.Done():
			return zeroHash, nil, ctx.Err()
		}
		if res.err != nil {
			if deterministic(res.err) {
				errs[i] = res.err
				continue
			}
			storage = res.err
			continue
		}
		head = res.head
	}
	if storage != nil {
		return zeroHash, nil, storage
	}
	return head, errs, nil
}

// deterministic reports whether err is a refusal every replica makes of
// the same entry (its contents against the same state), not a failure of
// this replica.
func deterministic(err error) bool {
	switch nexus.ErrorCode(err) {
	case nexus.EInvalid, nexus.EConflict, nexus.ETooLarge:
		return true
	}
	return false
}

// LogIndex is the index of the last replicated log entry committed on main
// (the Log-Index trailer of its head commit), 0 if none.
func (s *Store) LogIndex() uint64 { return s.logIndex.Load() }

// loadLogIndex reads the Log-Index of the head commit. In a replicated
// store every commit of main carries one (every write comes through the
// log), so the head's is the last applied; a head without one (a store
// that predates its cluster) is 0.
func (s *Store) loadLogIndex() error {
	s.logIndex.Store(0)
	h := s.Head()
	if h.IsZero() {
		return nil
	}
	cm, err := s.readCommit(h)
	if err != nil {
		return err
	}
	v, ok := trailers(cm.message)[logIndexTrailer]
	if !ok {
		return nil
	}
	ix, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return &CorruptError{Object: h, Err: fmt.Errorf("bad %s trailer %q", logIndexTrailer, v)}
	}
	s.logIndex.Store(ix)
	return nil
}

// WriteBundle writes to out a git bundle of the history of head (a commit
// that main holds or held): the state a replica installs with
// InstallBundle. Merges go on while git reads (a snapshot).
func (s *Store) WriteBundle(ctx context.Context, out string, head Hash) error {
	if head.IsZero() {
		return nexus.Errorf(nexus.EInvalid, "an empty store has no history to bundle")
	}
	if _, err := s.readCommit(head); err != nil {
		return err
	}
	sn, err := s.snapshotRepo(ctx)
	if err != nil {
		return err
	}
	defer sn.close()
	refs := fmt.Sprintf("%s %s\n", head, mainRef)
	if err := os.WriteFile(filepath.Join(sn.dir, "packed-refs"), []byte(refs), privateFile); err != nil {
		return err
	}
	if o, err := exec.CommandContext(ctx, "git", gitArgs("--git-dir", sn.dir, "bundle", "create", "-q", out, mainRef)...).CombinedOutput(); err != nil {
		return fmt.Errorf("git bundle create: %v: %s", err, bytes.TrimSpace(o))
	}
	return os.Chmod(out, privateFile)
}

// installReq asks the writer to move main to head (whose objects are in
// the repository) and rebuild what derives from it.
type installReq struct{ head Hash }

// InstallBundle makes the history of a bundle written by WriteBundle this
// store's: its pack is indexed by git index-pack (every object
// hash-checked) and added, main moves to the bundle's main, and the
// catalog, the cache and the search index (which sees a restore) are
// rebuilt. The store's previous history stays in the repository.
func (s *Store) InstallBundle(ctx context.Context, bundle string) (Hash, error) {
	return s.InstallBundleAt(ctx, bundle, zeroHash)
}

// InstallBundleAt is InstallBundle with main moved to at, a commit the
// bundle holds (an ancestor of its main), rather than to the bundle's main
// (at zero).
func (s *Store) InstallBundleAt(ctx context.Context, bundle string, at Hash) (Hash, error) {
	if s.Encrypted() {
		return zeroHash, nexus.Errorf(nexus.EInvalid, "an encrypted store cannot install a replica's history")
	}
	head, err := s.addBundlePack(ctx, bundle)
	if err != nil {
		return zeroHash, err
	}
	if !at.IsZero() {
		if !s.repo.hasObject(at) {
			return zeroHash, nexus.Errorf(nexus.EInvalid, "the replica history does not hold commit %s", at)
		}
		head = at
	}
	if _, err := s.submit(ctx, &request{install: &installReq{head: head}}); err != nil {
		return zeroHash, err
	}
	return head, nil
}

// addBundlePack indexes the pack of a bundle and adds it to the
// repository, returning the bundle's main.
func (s *Store) addBundlePack(ctx context.Context, bundle string) (Hash, error) {
	f, err := os.Open(bundle)
	if err != nil {
		return zeroHash, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	refs, err := readBundleHeader(br)
	if err != nil {
		return zeroHash, nexus.WrapError(nexus.EInvalid, err, "replica history")
	}
	head, ok := refs[mainRef]
	if !ok {
		return zeroHash, nexus.Errorf(nexus.EInvalid, "the replica history names no %s", mainRef)
	}
	if s.repo.hasObject(head) {
		return head, nil // nothing new: the history is here already
	}
	// (a history whose main is here holds nothing this store lacks)
	packTmp := filepath.Join(s.repo.packDir, "tmp_install.pack")
	idxTmp := filepath.Join(s.repo.packDir, "tmp_install.idx")
	defer os.Remove(packTmp)
	defer os.Remove(idxTmp)
	pf, err := os.OpenFile(packTmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, privateFile)
	if err != nil {
		return zeroHash, err
	}
	_, err = io.Copy(pf, br)
	if err == nil {
		err = pf.Sync()
	}
	if cerr := pf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return zeroHash, wrapIOError(err, "install a replica's history")
	}
	if o, err := exec.CommandContext(ctx, "git", gitArgs("--git-dir", s.GitDir(), "index-pack", "--strict", "-o", idxTmp, packTmp)...).CombinedOutput(); err != nil {
		return zeroHash, nexus.Errorf(nexus.EInvalid, "the replica history's pack is damaged: %s", bytes.TrimSpace(o))
	}
	if err := os.Chmod(idxTmp, privateFile); err != nil {
		return zeroHash, err
	}
	if err := syncPath(idxTmp); err != nil {
		return zeroHash, err
	}
	data, err := os.ReadFile(idxTmp)
	if err != nil {
		return zeroHash, err
	}
	idx, err := parseIndex(data)
	if err != nil {
		return zeroHash, nexus.WrapError(nexus.EInvalid, err, "index of the replica history")
	}
	if err := s.repo.installPack("pack-"+idx.packSum().String(), idx, packTmp, idxTmp); err != nil {
		return zeroHash, wrapIOError(err, "install a replica's history")
	}
	if !s.repo.hasObject(head) {
		return zeroHash, nexus.Errorf(nexus.EInvalid, "the replica history lacks its own head %s", head)
	}
	return head, nil
}

// commitInstall moves main to an installed history and rebuilds the
// catalog from it (on the writer, like a restore).
func (s *Store) commitInstall(req *installReq) error {
	if err := s.failure(); err != nil {
		return err
	}
	fresh, err := s.buildCatalog(req.head)
	if err != nil {
		return nexus.WrapError(nexus.EInvalid, err, "the replica history cannot be read")
	}
	if err := s.repo.moveRef(mainRef, req.head); err != nil {
		return s.writeFailed(err, s.refMayHaveMoved())
	}
	if err := s.adoptCatalog(fresh, "replica's history was installed"); err != nil {
		return err
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit()
	}
	return nil
}

// MaxContent is the largest content the store takes, in bytes.
func (s *Store) MaxContent() int { return s.opts.MaxContent }

// Last returns the id and timestamp of the newest context; ok is false
// for an empty store.
func (s *Store) Last() (id nexus.ID, ts time.Time, ok bool) {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	n := len(s.cat.ordered)
	if n == 0 {
		return id, ts, false
	}
	e := s.cat.ordered[n-1]
	return e.id, time.Unix(0, e.ts).UTC(), true
}
