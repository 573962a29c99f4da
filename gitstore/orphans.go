package gitstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nexus-mem/nexus"
)

// An orphan is a context whose parent is not in the store (or is in
// another namespace): its chain is broken. Nexus never relinks it to
// another parent. Each time the set of orphans changes it is recorded as
// one commit on the side ref refs/nexus/orphans (file orphans.json, the
// whole set), so the mark is durable, versioned, travels with backups
// and mirrors, and `git log refs/nexus/orphans` shows when each appeared.

// OrphansRef is the side ref that marks orphaned contexts.
const OrphansRef = "orphans"

const orphansFile = "orphans.json"

// Orphan is one context whose chain is broken.
type Orphan struct {
	ID     nexus.ID  `json:"id"`
	Parent nexus.ID  `json:"parent"`
	Reason string    `json:"reason"`
	Found  time.Time `json:"found"`
}

// findOrphans lists the orphans of the catalog now.
func (s *Store) findOrphans() map[nexus.ID]Orphan {
	now := time.Now().UTC()
	out := map[nexus.ID]Orphan{}
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	for _, e := range s.cat.ordered {
		if e.parent.IsZero() {
			continue
		}
		p, ok := s.cat.byID[e.parent]
		switch {
		case !ok:
			out[e.id] = Orphan{ID: e.id, Parent: e.parent, Reason: "parent is not in the store", Found: now}
		case p.ns != e.ns:
			out[e.id] = Orphan{ID: e.id, Parent: e.parent, Reason: fmt.Sprintf("parent is in namespace %q, not %q", p.ns, e.ns), Found: now}
		}
	}
	return out
}

// Orphans returns the orphans last marked on refs/nexus/orphans.
func (s *Store) Orphans(ctx context.Context) ([]Orphan, error) {
	var out []Orphan
	errStop := errors.New("stop")
	err := s.WalkSide(ctx, OrphansRef, func(files map[string][]byte) error {
		if b, ok := files[orphansFile]; ok {
			if err := json.Unmarshal(b, &out); err != nil {
				return fmt.Errorf("refs/nexus/%s: %s: %w", OrphansRef, orphansFile, err)
			}
		}
		return errStop // the newest mark is the whole set
	})
	if err != nil && err != errStop {
		return nil, err
	}
	return out, nil
}

// UnmarkedOrphans says how many contexts are orphans now without being
// marked as such, and how many are marked but no longer orphans.
func (s *Store) UnmarkedOrphans(ctx context.Context) (unmarked, stale int, err error) {
	marked, err := s.Orphans(ctx)
	if err != nil {
		return 0, 0, err
	}
	now := s.findOrphans()
	had := map[nexus.ID]bool{}
	for _, o := range marked {
		had[o.ID] = true
		if _, ok := now[o.ID]; !ok {
			stale++
		}
	}
	for id := range now {
		if !had[id] {
			unmarked++
		}
	}
	return unmarked, stale, nil
}

// MarkOrphans records the current set of orphans on refs/nexus/orphans
// when it differs from the last mark (an orphan keeps the time it was
// first found) and returns it.
func (s *Store) MarkOrphans(ctx context.Context) ([]Orphan, bool, error) {
	marked, err := s.Orphans(ctx)
	if err != nil {
		return nil, false, err
	}
	now := s.findOrphans()
	same := len(marked) == len(now)
	for _, o := range marked {
		if cur, ok := now[o.ID]; ok {
			cur.Found = o.Found
			now[o.ID] = cur
		} else {
			same = false
		}
	}
	list := slices.SortedFunc(maps.Values(now), func(a, b Orphan) int { return a.ID.Compare(b.ID) })
	checked := s.lastDeep.Load()
	if same {
		s.noteMarked(checked, len(list))
		return list, false, nil
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, false, err
	}
	msg := fmt.Sprintf("Mark %d orphaned contexts (parent missing; never relinked)", len(list))
	if _, err := s.AppendSide(ctx, OrphansRef, map[string][]byte{orphansFile: append(b, '\n')}, msg); err != nil {
		return nil, false, err
	}
	s.noteMarked(checked, len(list))
	return list, true, nil
}

// orphanMarks is what the store knows of its marks without reading the
// side ref: how many are marked, and for which deep check.
type orphanMarks struct {
	count int
	for_  *FsckReport
}

func (s *Store) noteMarked(checked *FsckReport, n int) {
	s.orphanMarks.Store(&orphanMarks{count: n, for_: checked})
}

// OrphansToMark says whether the last deep check found orphans other than
// those marked (or none while some are marked): MarkOrphans is then due.
func (s *Store) OrphansToMark(ctx context.Context) (string, error) {
	rep := s.lastDeep.Load()
	if rep == nil {
		return "", nil
	}
	m := s.orphanMarks.Load()
	if m == nil {
		marked, err := s.Orphans(ctx)
		if err != nil {
			return "", err
		}
		m = &orphanMarks{count: len(marked)}
		s.orphanMarks.Store(m)
	}
	if m.for_ == rep {
		return "", nil
	}
	n := 0
	for _, p := range rep.Problems {
		if p.Kind == ProblemChain {
			n++
		}
	}
	if n == 0 && m.count == 0 {
		return "", nil
	}
	return fmt.Sprintf("the last deep check found %d orphaned contexts (%d marked before)", n, m.count), nil
}
