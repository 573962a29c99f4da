package gitstore

import (
	"fmt"
	"hash/crc32"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
)

// Packs are merged by size tier, as in a log-structured merge tree: a tier
// holds packs whose sizes have the same power of 8, and when one holds
// MergePacks packs, its oldest packs are rewritten as one pack of a higher
// tier: as many of them as fit in maxMergeBytes in all (at least
// MergePacks, which always fit). Each object is thus rewritten about
// log8(store size / batch size) times and, once the merger has caught up,
// each tier holds fewer than MergePacks packs. A merger that fell behind a
// fast fill takes the waiting packs of a tier together, up to the bound,
// so that each of them is rewritten once at that tier and not again at
// every tier above (taking MergePacks at a time rewrote a fill's packs
// about three times while the merger caught up: docs/STORAGE.md), and no
// merge reads or writes more than maxMergeBytes (it reads each pack whole,
// and streams the merged one to its file: packstream.go). Packs of
// maxMergeBytes/MergePacks and more are left alone.
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
		if _, err := s.MergeAll(); err != nil {
			s.log.Warn("pack merge failed", "err", err)
		}
	}
}

// MergeAll runs pack merges until no size tier is full, as the
// background merger would in time, and returns how many it ran: a tool
// that filled a store in bulk settles it before measuring it.
func (s *Store) MergeAll() (int, error) {
	for n := 0; ; n++ {
		merged, err := s.mergeOnce()
		if err != nil || !merged {
			return n, err
		}
	}
}

// mergeCandidates returns the oldest packs (newest first) of the lowest
// tier that holds fanIn packs or more: as many as fit in budget bytes in
// all, at least fanIn (only packs under budget/fanIn are merged, so fanIn
// of them always fit).
func (r *repo) mergeCandidates(fanIn int, budget int64) []*pack {
	r.mu.RLock()
	defer r.mu.RUnlock()
	tiers := map[int][]*pack{}
	for _, p := range r.packs { // newest first
		if p.size < budget/int64(fanIn) {
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
			n, total := 0, int64(0)
			for i := len(ps) - 1; i >= 0 && (n < fanIn || total+ps[i].size <= budget); i-- {
				n, total = n+1, total+ps[i].size
			}
			return ps[len(ps)-n:]
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
	cands := s.repo.mergeCandidates(s.opts.MergePacks, maxMergeBytes)
	if len(cands) == 0 {
		return false, nil
	}
	return true, s.merge(cands)
}

// checkEntry returns the stored bytes of entry e, which end at end, after
// checking them against the index's CRC-32.
func checkEntry(p *pack, e packEntry, data []byte, end uint64) ([]byte, error) {
	if err := checkBounds(e, end, uint64(len(data))); err != nil {
		return nil, err
	}
	raw := data[e.offset:end]
	return raw, checkCRC(p, e, raw)
}

// checkBounds checks that entry e, which ends at end, lies in the first
// body bytes of its pack, after the header.
func checkBounds(e packEntry, end, body uint64) error {
	if end <= e.offset || end > body || e.offset < packHeaderLen {
		return &CorruptError{Object: e.hash, Err: fmt.Errorf("bad offsets %d-%d", e.offset, end)}
	}
	return nil
}

// checkCRC checks raw, the stored bytes of entry e, against the index's
// CRC-32.
func checkCRC(p *pack, e packEntry, raw []byte) error {
	if crc32.ChecksumIEEE(raw) != e.crc {
		return &CorruptError{Object: e.hash, Err: fmt.Errorf("in %s at offset %d: CRC-32 mismatch", p.name, e.offset)}
	}
	return nil
}

// replacePacks makes the merged pack durable and adds it to the set (the
// same path as a group commit's pack), then drops old from the set and
// deletes their files (index first, so a crash leaves at most an orphan
// pack that the next open removes).
func (r *repo) replacePacks(old []*pack, data []byte, idx *packIndex) error {
	if err := r.writePack(data, idx); err != nil {
		return err
	}
	return r.retire(old, "pack-"+idx.packSum().String())
}

// replaceStaged is replacePacks for a pack already written and fsynced
// to packTmp (a merge's: packstream.go), which it installs with its index.
func (r *repo) replaceStaged(old []*pack, packTmp string, idx *packIndex) error {
	idxTmp, err := stageFile(r.spares, r.packDir, idx.data)
	if err != nil {
		os.Remove(packTmp)
		return err
	}
	name := "pack-" + idx.packSum().String()
	if err := r.installPack(name, idx, packTmp, idxTmp); err != nil {
		return err
	}
	return r.retire(old, name)
}

// retire drops old, replaced by the pack name, from the set and deletes
// their files.
func (r *repo) retire(old []*pack, name string) error {
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
