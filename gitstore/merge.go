package gitstore

import (
	"fmt"
	"hash/crc32"
	"math/bits"
	"os"
	"path/filepath"
	"sort"

	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
)

// Packs are merged by size tier, as in a log-structured merge tree: a tier
// holds packs whose sizes have the same power of 8, and when one holds
// MergePacks packs they are rewritten as one pack of a higher tier. Each
// object is thus rewritten about log8(store size / batch size) times and
// the number of packs stays logarithmic. Packs above maxMergeBytes are left
// alone: a merged pack is assembled in memory.
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

// mergeCandidates returns the packs of the lowest tier that is full.
func (r *repo) mergeCandidates(fanIn int) []*pack {
	r.mu.RLock()
	defer r.mu.RUnlock()
	tiers := map[int][]*pack{}
	for _, p := range r.packs {
		if p.size < maxMergeBytes/int64(fanIn) {
			t := bits.Len64(uint64(p.size)) / 3
			tiers[t] = append(tiers[t], p)
		}
	}
	keys := make([]int, 0, len(tiers))
	for t := range tiers {
		keys = append(keys, t)
	}
	sort.Ints(keys)
	for _, t := range keys {
		if len(tiers[t]) >= fanIn {
			return tiers[t]
		}
	}
	return nil
}

// mergeOnce merges one full tier. It reports whether it merged anything.
func (s *Store) mergeOnce() (bool, error) {
	cands := s.repo.mergeCandidates(s.opts.MergePacks)
	if len(cands) == 0 {
		return false, nil
	}
	pw := newPackWriter()
	var total int64
	for _, p := range cands {
		total += p.size
	}
	pw.buf = make([]byte, packHeaderLen, total)
	for i := len(cands) - 1; i >= 0; i-- { // oldest first
		if err := s.copyPack(pw, cands[i]); err != nil {
			return false, err
		}
	}
	data, idx, idxBytes, sum, err := pw.finish()
	if err != nil {
		return false, err
	}
	if err := s.repo.replacePacks(cands, data, idx, idxBytes, sum); err != nil {
		return false, err
	}
	return true, nil
}

// copyPack adds every object of p to pw. Whole objects are copied as
// they are stored, checked against the CRC-32 of the pack index; deltas
// (which only packs written by stock git contain) are resolved and stored
// whole, since their base offsets change. The pack is read in one call:
// merged packs are small (the largest tier merged is maxMergeBytes/fanIn).
func (s *Store) copyPack(pw *packWriter, p *pack) error {
	it, err := p.idx.EntriesByOffset()
	if err != nil {
		return err
	}
	defer it.Close()
	var ents []*idxfile.Entry
	for {
		e, err := it.Next()
		if err != nil {
			break
		}
		ents = append(ents, e)
	}
	data := make([]byte, p.size-20)
	if _, err := p.f.ReadAt(data, 0); err != nil {
		return fmt.Errorf("merge %s: %w", p.name, err)
	}
	for i, e := range ents {
		end := uint64(len(data))
		if i+1 < len(ents) {
			end = ents[i+1].Offset
		}
		if err := s.copyObject(pw, p, e, data, end); err != nil {
			return fmt.Errorf("merge %s: %w", p.name, err)
		}
	}
	return nil
}

func (s *Store) copyObject(pw *packWriter, p *pack, e *idxfile.Entry, data []byte, end uint64) error {
	h := Hash(e.Hash)
	if end < e.Offset || end > uint64(len(data)) || e.Offset < packHeaderLen {
		return &CorruptError{Object: h, Err: fmt.Errorf("bad offsets %d-%d", e.Offset, end)}
	}
	raw := data[e.Offset:end]
	if crc32.ChecksumIEEE(raw) != e.CRC32 {
		return &CorruptError{Object: h, Err: fmt.Errorf("in %s at offset %d: CRC-32 mismatch", p.name, e.Offset)}
	}
	if t := objType(raw[0] >> 4 & 7); t >= objCommit && t <= objTag {
		pw.addRaw(h, raw, e.CRC32)
		return nil
	}
	t, obj, err := s.repo.readObject(h)
	if err != nil {
		return err
	}
	pw.add(t, obj)
	return nil
}

// replacePacks makes the merged pack durable and adds it to the set (the
// same path as a group commit's pack), then drops old from the set and
// deletes their files (index first, so a crash leaves at most an orphan
// pack that the next open removes).
func (r *repo) replacePacks(old []*pack, data []byte, idx *idxfile.MemoryIndex, idxBytes []byte, sum Hash) error {
	name := "pack-" + sum.String()
	packTmp, err := stageFile(nil, r.packDir, data)
	if err != nil {
		return err
	}
	idxTmp, err := stageFile(nil, r.packDir, idxBytes)
	if err != nil {
		os.Remove(packTmp)
		return err
	}
	if err := r.installPack(name, idx, packTmp, idxTmp); err != nil {
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
			os.Remove(filepath.Join(r.packDir, p.name+".idx"))
			os.Remove(filepath.Join(r.packDir, p.name+".pack"))
		}
	}
	r.mu.Unlock()
	return syncDir(r.packDir)
}
