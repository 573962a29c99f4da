package gitstore

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// loadedCatalog is what [loadCatalog] returned.
type loadedCatalog struct {
	c   *catalog
	err error
}

// loadCatalog brings the catalog to head from the persisted file, as
// [loadCatalog] read it: verified, then caught up by diffing its tree
// against head's, or rebuilt from git when it is missing, damaged or
// refers to an unknown commit.
func (s *Store) loadCatalog(head Hash, file loadedCatalog) error {
	c, err := file.c, file.err
	switch {
	case errors.Is(err, errCatalogDamaged):
		s.log.Warn("catalog damaged; rebuilding from git", "err", err)
		c = nil
	case err != nil:
		return wrapIOError(err, "read catalog")
	}
	if c != nil && !c.head.IsZero() && !s.repo.hasObject(c.head) {
		s.log.Warn("catalog refers to an unknown commit; rebuilding from git", "catalog_head", c.head)
		c = nil
	}
	if c == nil {
		c = newCatalog()
	}
	s.cat = c
	if c.head == head {
		return nil
	}
	start := time.Now()
	from := c.head
	if err := s.catchUp(head); err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "cannot bring the catalog up to date with %s (run `nexus fsck`)", head)
	}
	s.log.Info("catalog caught up", "from", from, "to", head, "contexts", c.len(), "took", time.Since(start))
	return nil // saved by background, which starts with it
}

// catchUp applies to the catalog every file change between its head's tree
// and head's tree, reading added blobs in parallel.
func (s *Store) catchUp(head Hash) error {
	oldRoot, err := s.rootTree(s.cat.head)
	if err != nil {
		return err
	}
	newRoot, err := s.rootTree(head)
	if err != nil {
		return err
	}
	var added []fileChange
	var removed []nexus.ID
	if oldRoot.IsZero() {
		// A build from scratch: every file is an addition.
		if added, err = s.allFiles(newRoot); err != nil {
			return err
		}
	} else if err := s.trees.diff(oldRoot, newRoot, func(fc fileChange) error {
		if fc.added {
			added = append(added, fc)
		} else {
			removed = append(removed, fc.id)
		}
		return nil
	}); err != nil {
		return err
	}
	entries, err := s.readEntriesOf(added)
	if err != nil {
		return err
	}
	c := s.cat
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range removed {
		c.removeLocked(id)
	}
	if len(entries) >= bulkAdd {
		c.addAllLocked(entries)
	} else {
		for _, e := range entries {
			c.addLocked(e)
		}
	}
	if len(removed) > 0 {
		c.recomputeLeafFillLocked()
	}
	c.head = head
	return nil
}

// readEntries reads and checks the blobs of the added files one by one,
// on all cores.
func (s *Store) readEntries(added []fileChange) ([]*entry, error) {
	out := make([]*entry, len(added))
	errs := make([]error, len(added))
	var done int64
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = s.readEntry(added[i])
				mu.Lock()
				done++
				if s.opts.Progress != nil && (done%1024 == 0 || int(done) == len(added)) {
					s.opts.Progress(int(done), len(added))
				}
				mu.Unlock()
			}
		}()
	}
	for i := range added {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}

// readEntry reads one context file and checks it against its path.
func (s *Store) readEntry(fc fileChange) (*entry, error) {
	data, err := s.repo.readTyped(fc.blob, objBlob)
	if err != nil {
		return nil, err
	}
	if data, err = s.unseal(data); err != nil {
		return nil, fmt.Errorf("context %s: %w", fc.id, err)
	}
	c, err := decodeContext(data)
	if err != nil {
		return nil, fmt.Errorf("context %s: %w", fc.id, err)
	}
	if c.ID != fc.id || c.Namespace != fc.ns {
		return nil, fmt.Errorf("context file %s/%s holds context %s of namespace %q", fc.ns, fc.id, c.ID, c.Namespace)
	}
	return entryOf(c, fc.blob, fc.leaf, len(data)), nil
}

func (c *catalog) recomputeLeafFillLocked() {
	clear(c.leafFill)
	for _, e := range c.ordered {
		lf := c.leafFill[e.ns]
		switch {
		case lf.count == 0 || e.leaf > lf.leaf:
			c.leafFill[e.ns] = leafFill{e.leaf, 1}
		case e.leaf == lf.leaf:
			c.leafFill[e.ns] = leafFill{e.leaf, lf.count + 1}
		}
	}
}

// VerifyCatalog builds a catalog from git alone and compares it with the
// live one. It returns nil when they are equal. Tests and fsck use it.
func (s *Store) VerifyCatalog() error {
	// Compare at one head: writes that land while git is read must not
	// look like a difference. The entries are copied, not shared.
	s.cat.mu.RLock()
	snap := &catalog{head: s.cat.head, ordered: make([]*entry, len(s.cat.ordered))}
	for i, e := range s.cat.ordered {
		c := *e
		snap.ordered[i] = &c
	}
	s.cat.mu.RUnlock()
	fresh, err := s.buildCatalog(snap.head)
	if err != nil {
		return err
	}
	if err := snap.equal(fresh); err != nil {
		return fmt.Errorf("catalog differs from a rebuild from git: %w", err)
	}
	return nil
}

// background persists the catalog periodically, and at once when the open
// had to catch it up or rebuild it (so that the open does not wait for the
// file: at a million contexts it is ≈ 90 MB; a crash before it is written
// makes the next open catch up again, as it would have had to anyway).
func (s *Store) background() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.SaveInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-s.closing:
				return
			case <-tick.C:
			}
		}
		if s.cat.unsaved() && s.failure() == nil {
			if err := s.cat.save(s.dir); err != nil {
				s.log.Warn("cannot save catalog", "err", err)
			}
		}
	}
}

// RebuildCatalog replaces the catalog with one built from git alone and
// saves it. A group commit that lands meanwhile makes it build again.
func (s *Store) RebuildCatalog() error {
	for {
		s.cat.mu.RLock()
		head := s.cat.head
		s.cat.mu.RUnlock()
		fresh, err := s.buildCatalog(head)
		if err != nil {
			return err
		}
		s.cat.mu.Lock()
		if s.cat.head != head {
			s.cat.mu.Unlock()
			continue
		}
		s.cat.replaceLocked(fresh)
		s.cat.mu.Unlock()
		if err := s.cat.save(s.dir); err != nil {
			return err
		}
		s.forgetProblems(ProblemCatalog)
		return nil
	}
}

// buildCatalog builds a catalog of head from git alone.
func (s *Store) buildCatalog(head Hash) (*catalog, error) {
	fresh := &Store{repo: s.repo, trees: newTrees(s.repo), cat: newCatalog(), opts: s.opts}
	fresh.keys.Store(s.keys.Load())
	fresh.opts.Progress = nil
	if err := fresh.catchUp(head); err != nil {
		return nil, err
	}
	return fresh.cat, nil
}
