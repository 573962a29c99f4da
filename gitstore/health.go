package gitstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/nexus-mem/nexus"
)

// HealthCheckers returns the checkers of the store's components: the git
// repository, the context catalog and the L1 cache.
func (s *Store) HealthCheckers() map[string]nexus.HealthChecker {
	return map[string]nexus.HealthChecker{
		nexus.ComponentGit:   nexus.HealthFunc(s.gitHealth),
		nexus.ComponentStore: nexus.HealthFunc(s.catalogHealth),
		nexus.ComponentCache: nexus.HealthFunc(s.cacheHealth),
	}
}

// gitHealth: the ref is readable and the writer has not stopped on an
// uncertain write.
func (s *Store) gitHealth(context.Context) nexus.ComponentHealth {
	s.repo.mu.RLock()
	packs := len(s.repo.packs)
	var bytes int64
	for _, p := range s.repo.packs {
		bytes += p.size
	}
	s.repo.mu.RUnlock()
	details := map[string]any{"packs": packs, "pack_bytes": bytes}
	if err := s.failure(); err != nil {
		return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: nexus.ErrorMessage(err), Details: details}
	}
	head, err := s.repo.readRef()
	if err != nil {
		return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: "cannot read " + mainRef + ": " + err.Error(), Details: details}
	}
	details["head"] = head.String()
	if err := checkHEAD(s.GitDir()); err != nil {
		return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: err.Error(), Details: details}
	}
	if n := s.repo.corruptReads.Load() - s.corruptSeen.Load(); n > 0 {
		return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Details: details,
			Error: fmt.Sprintf("%d reads found damaged objects since the last deep check, the latest: %v", n, s.repo.lastCorrupt.Load())}
	}
	if rep, p := s.damage(); rep != nil {
		details["last_deep_check"] = map[string]any{"problems": len(rep.Problems), "took_ms": rep.Took.Milliseconds()}
		if p != nil {
			return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Details: details,
				Error: fmt.Sprintf("the last deep check found %d problems, first: %s", len(rep.Problems), p)}
		}
	}
	if why := s.diskFull.Load(); why != nil {
		details["read_only"] = true
		return nexus.ComponentHealth{Status: nexus.StatusDegraded, Details: details,
			Error: *why + ": writes answer 507 (insufficient_storage) until space is freed; they resume by themselves"}
	}
	return nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: details}
}

// catalogHealth: the catalog reflects the head main points to.
func (s *Store) catalogHealth(context.Context) nexus.ComponentHealth {
	// Under refMu a group commit is never seen between moving main and
	// updating the catalog.
	s.refMu.RLock()
	s.cat.mu.RLock()
	head, n := s.cat.head, len(s.cat.ordered)
	s.cat.mu.RUnlock()
	onDisk, err := s.repo.readRef()
	s.refMu.RUnlock()
	details := map[string]any{"contexts": n, "head": head.String()}
	switch {
	case err != nil:
		return nexus.ComponentHealth{Status: nexus.StatusUnhealthy, Error: err.Error(), Details: details}
	case onDisk != head && s.failure() == nil:
		return nexus.ComponentHealth{Status: nexus.StatusDegraded, Details: details,
			Error: "catalog at " + head.String() + " while main is at " + onDisk.String()}
	}
	if m := s.orphanMarks.Load(); m != nil && m.count > 0 {
		details["orphans"] = m.count // marked on refs/nexus/orphans; chains broken, never relinked
	}
	if p := s.catalogProblem(); p != nil {
		return nexus.ComponentHealth{Status: nexus.StatusDegraded, Details: details,
			Error: "the last deep check found the catalog disagrees with git: " + p.Message}
	}
	return nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: details}
}

// cacheHealth reports the L1 cache; entries that failed their checksum
// make it degraded (they were dropped and reloaded from git).
func (s *Store) cacheHealth(context.Context) nexus.ComponentHealth {
	st := s.cache.stats()
	rate := 0.0
	if st.Hits+st.Misses > 0 {
		rate = float64(st.Hits) / float64(st.Hits+st.Misses)
	}
	h := nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{
		"entries": st.Entries, "bytes": st.Bytes, "max_bytes": st.MaxBytes, "hits": st.Hits, "misses": st.Misses,
		"hit_rate": rate, "corrupt_drops": st.CorruptDrops,
	}}
	if st.CorruptDrops > st.ClearedDrops {
		h.Status = nexus.StatusDegraded
		h.Error = fmt.Sprintf("%d cache entries failed their checksum (reloaded from git)", st.CorruptDrops-st.ClearedDrops)
	}
	if s.memPressure.Load() {
		h.Status = nexus.StatusDegraded
		h.Details["memory_pressure"] = true
		h.Error = strings.TrimPrefix(h.Error+"; ", "; ") + fmt.Sprintf("shrunk to %d bytes under memory pressure", st.MaxBytes)
	}
	return h
}
