package gitstore

import (
	"fmt"
	"hash/crc32"
	"math/bits"
	"path/filepath"
	"sort"
)

// Packs are merged by size tier, as in a log-structured merge tree: a tier
// holds packs whose sizes have the same power of 8, and when one holds
// MergePacks packs, the MergePacks oldest of them are rewritten as one pack
// of a higher tier. A merge never takes more than one tier's MergePacks
// packs, however many wait (a merger that fell behind a fast fill catches
// up tier by tier, never with one merge of everything that accumulated),
// so the bytes one merge reads and holds in memory are bounded by its
// tier: under MergePacks times the tier's upper size. Each object is thus
// rewritten about log8(store size / batch size) times and, once the merger
// has caught up, each tier holds fewer than MergePacks packs. Packs of
// maxMergeBytes/MergePacks and more are left alone: a merged pack is
// assembled in memory.
const maxMergeBytes = 512 << 20

// kickMerge asks the merger to look at the packs, without blocking.
func (s *Store) kickMerge() {
	select {
	case s.mergeKick <- struct{}{}:
	default:
	}
}

// merger runs merges when kicked, until the store closes.
func (s *Store) merger() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closing:
			return
		case <-s.mergeKick:
		}
		for {
			merged, err := s.mergeOnce()
			if err != nil {
				s.log.Warn("pack merge failed", "err", err)
			}
			if !merged || err != nil {
				break
			}
		}
	}
}

// mergeCandidates returns the fanIn oldest packs (newest first) of the
// lowest tier that holds fanIn packs or more.
func (r *repo) mergeCandidates(fanIn int) []*pack {
	r.mu.RLock()
	defer r.mu.RUnlock()
	tiers := map[int][]*pack{}
	for _, p := range r.packs { // newest first
		if p.size < maxMergeBytes/int64(fanIn) {
			t := packTier(p.size)
			tiers[t] = append(tiers[t], p)
		}
	}
	keys := make([]int, 0, len(tiers))
	for t := range tiers {
		keys = append(keys, t)
	}
	sort.Ints(keys)
	for _, t := range keys {
		if ps := tiers[t]; len(ps) >= fanIn {
			return ps[len(ps)-fanIn:]
		}
	}
	return nil
}

// packTier is the merge tier of a pack of size bytes: sizes with the same
// power of 8 share a tier.
func packTier(size int64) int { return bits.Len64(uint64(size)) / 3 }

// mergeOnce merges one full tier. It reports whether it merged anything.
func (s *Store) mergeOnce() (bool, error) {
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	cands := s.repo.mergeCandidates(s.opts.MergePacks)
	if len(cands) == 0 {
		return false, nil
	}
	return true, s.merge(cands)
}

// checkEntry returns the stored bytes of entry e, which end at end, after
// checking them against the index's CRC-32.
func checkEntry(p *pack, e packEntry, data []byte, end uint64) ([]byte, error) {
	if end <= e.offset || end > uint64(len(data)) || e.offset < packHeaderLen {
		return nil, &CorruptError{Object: e.hash, Err: fmt.Errorf("bad offsets %d-%d", e.offset, end)}
	}
	raw := data[e.offset:end]
	if crc32.ChecksumIEEE(raw) != e.crc {
		return nil, &CorruptError{Object: e.hash, Err: fmt.Errorf("in %s at offset %d: CRC-32 mismatch", p.name, e.offset)}
	}
	return raw, nil
}

// replacePacks makes the merged pack durable and adds it to the set (the
// same path as a group commit's pack), then drops old from the set and
// deletes their files (index first, so a crash leaves at most an orphan
// pack that the next open removes).
func (r *repo) replacePacks(old []*pack, data []byte, idx *packIndex) error {
	name := "pack-" + idx.packSum().String()
	if err := r.writePack(data, idx); err != nil {
		return err
	}
	gone := map[*pack]bool{}
	for _, p := range old {
		gone[p] = true
	}
	r.mu.Lock()
	keep := r.packs[:0:0]
	for _, p := range r.packs {
		if !gone[p] {
			keep = append(keep, p)
		}
	}
	r.packs = keep
	for _, p := range old {
		p.f.Close()
		if p.name != name {
			r.spares.recycle(filepath.Join(r.packDir, p.name+".idx"))
			r.spares.recycle(filepath.Join(r.packDir, p.name+".pack"))
		}
	}
	r.mu.Unlock()
	return syncDir(r.packDir)
}
