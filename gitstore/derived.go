package gitstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nexus-mem/nexus"
)

// The repair policy, in one place: derived state (the catalog, the L1
// cache) is rebuilt from git, orphans are marked on refs/nexus/orphans
// and never relinked, and everything else is left for a repair from a
// backup or a mirror (RepairFrom) or for a restore.

// DerivedRepair is what [Store.RepairDerived] did with a check's report.
type DerivedRepair struct {
	// Repaired lists each piece of derived state found damaged, with
	// what was done about it.
	Repaired []Repair `json:"repaired"`
	// Orphans are the contexts marked on refs/nexus/orphans after the
	// repair, when it marked them (the report is deep or found broken
	// chains); nil otherwise.
	Orphans []Orphan `json:"orphans,omitempty"`
	// Left are the report's problems still there after the repair: those
	// that are not derived (repository damage, see
	// [ProblemKind.Damage]; broken chains, which stay once marked) and
	// derived ones whose repair failed.
	Left []Problem `json:"left"`
}

// Clean reports whether no problem is left.
func (d DerivedRepair) Clean() bool { return len(d.Left) == 0 }

// Repair is one repair of derived state: what was damaged, and what was
// done.
type Repair struct {
	Kind   ProblemKind `json:"kind"`
	Damage string      `json:"damage"`
	Action string      `json:"action"`
}

func (r Repair) String() string { return r.Damage + ": " + r.Action }

// RepairDerived applies the repair policy to rep, a report of [Store.Fsck]
// (which it does not change): on catalog problems the catalog is rebuilt
// from git and saved; on cache problems the cache is re-verified and
// emptied; when rep is deep or found broken chains, the orphans are
// marked on refs/nexus/orphans (never relinked). Every problem it does not
// repair is returned in Left. A repair that fails leaves its problems in
// Left and is named in the error; the other repairs still run.
func (s *Store) RepairDerived(ctx context.Context, rep *FsckReport) (DerivedRepair, error) {
	out := DerivedRepair{Repaired: []Repair{}, Left: []Problem{}}
	if rep == nil {
		return out, nexus.Errorf(nexus.EInvalid, "no check report to repair from")
	}
	var catalog, cache []Problem
	chains := false
	for _, p := range rep.Problems {
		switch {
		case p.Kind == ProblemCatalog:
			catalog = append(catalog, p)
		case p.Kind == ProblemCache:
			cache = append(cache, p)
		default:
			chains = chains || p.Kind == ProblemChain
			out.Left = append(out.Left, p)
		}
	}
	var errs []error
	if len(catalog) > 0 {
		errs = append(errs, s.repairCatalog(catalog, &out))
	}
	if len(cache) > 0 {
		s.repairCache(cache, &out)
	}
	if rep.Deep || chains {
		errs = append(errs, s.markOrphans(ctx, &out))
	}
	return out, errors.Join(errs...)
}

// repairCatalog rebuilds the catalog from git. A catalog problem that a
// rebuild cannot explain (main on disk is not the acknowledged head: a
// ref problem, see RepairRef) stays in Left.
func (s *Store) repairCatalog(ps []Problem, out *DerivedRepair) error {
	if err := s.RebuildCatalog(); err != nil {
		out.Left = append(out.Left, ps...)
		return fmt.Errorf("rebuild the catalog from git: %w", err)
	}
	out.Repaired = append(out.Repaired, Repair{Kind: ProblemCatalog,
		Damage: "catalog disagreed with git (" + firstOf(ps) + ")",
		Action: fmt.Sprintf("rebuilt from git (%d contexts)", s.Len())})
	if onDisk, err := s.repo.readRef(); err != nil || onDisk != s.Head() {
		out.Left = append(out.Left, ps...)
	}
	return nil
}

// repairCache re-verifies the L1 cache and empties it: reads reload from
// git.
func (s *Store) repairCache(ps []Problem, out *DerivedRepair) {
	n := s.RecoverCache()
	s.forgetProblems(ProblemCache)
	action := "re-verified and emptied; reads reload from git"
	if n > 0 {
		action += fmt.Sprintf(" (%d more entries failed their checksum)", n)
	}
	out.Repaired = append(out.Repaired, Repair{Kind: ProblemCache, Damage: "cache: " + firstOf(ps), Action: action})
}

// markOrphans records the orphans on refs/nexus/orphans when the mark is
// not up to date.
func (s *Store) markOrphans(ctx context.Context, out *DerivedRepair) error {
	before, err := s.Orphans(ctx)
	if err != nil {
		return fmt.Errorf("read the orphan mark: %w", err)
	}
	list, changed, err := s.MarkOrphans(ctx)
	if err != nil {
		return fmt.Errorf("mark orphans: %w", err)
	}
	out.Orphans = list
	if changed {
		out.Repaired = append(out.Repaired, Repair{Kind: ProblemChain,
			Damage: fmt.Sprintf("%d orphaned contexts (parent missing), %d marked on refs/nexus/%s", len(list), len(before), OrphansRef),
			Action: fmt.Sprintf("marked the %d on refs/nexus/%s, never relinked", len(list), OrphansRef)})
	}
	return nil
}

// firstOf names the first of ps and counts the others.
func firstOf(ps []Problem) string {
	var b strings.Builder
	b.WriteString(ps[0].Message)
	if len(ps) > 1 {
		fmt.Fprintf(&b, "; and %d more", len(ps)-1)
	}
	return b.String()
}
