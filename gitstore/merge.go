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
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	cands := s.repo.mergeCandidates(s.opts.MergePacks)
	if len(cands) == 0 {
		return false, nil
	}
	return true, s.merge(cands)
}

// merge rewrites cands (newest first) as one pack.
func (s *Store) merge(cands []*pack) error {
	var total int64
	for _, p := range cands {
		total += p.size
	}
	pw := newPackWriter()
	pw.buf = make([]byte, packHeaderLen, total)
	ok, err := blockCopy(pw, cands)
	if err != nil {
		return err
	}
	if !ok {
		pw.reset()
		for i := len(cands) - 1; i >= 0; i-- { // oldest first
			if err := s.copyPack(pw, cands[i]); err != nil {
				return err
			}
		}
	}
	data, idx := pw.finish()
	return s.repo.replacePacks(cands, data, idx)
}

// blockCopy is the fast path of a merge, taken for packs this store wrote:
// every entry is a whole object and no object is in two packs. Each pack's
// entries are checked against the CRC-32s of its index, then its body is
// appended in one piece, and the merged index comes from merging the
// packs' sorted indexes, shifted by where each body landed. It reports
// false, with pw in an unspecified state, when a pack holds a delta or
// objects repeat; the caller then copies object by object.
func blockCopy(pw *packWriter, packs []*pack) (bool, error) {
	var lists [][]packEntry
	for i := len(packs) - 1; i >= 0; i-- { // oldest first
		p := packs[i]
		data := make([]byte, p.size-20)
		if _, err := p.f.ReadAt(data, 0); err != nil {
			return false, fmt.Errorf("merge %s: %w", p.name, err)
		}
		ents := p.idx.byOffset()
		for j, e := range ents {
			end := uint64(len(data))
			if j+1 < len(ents) {
				end = ents[j+1].offset
			}
			raw, err := checkEntry(p, e, data, end)
			if err != nil {
				return false, fmt.Errorf("merge %s: %w", p.name, err)
			}
			if t := objType(raw[0] >> 4 & 7); t < objCommit || t > objTag {
				return false, nil
			}
		}
		shift := uint64(len(pw.buf)) - packHeaderLen
		pw.buf = append(pw.buf, data[packHeaderLen:]...)
		list := p.idx.entries()
		for j := range list {
			list[j].offset += shift
		}
		lists = append(lists, list)
	}
	for len(lists) > 1 {
		var next [][]packEntry
		for i := 0; i < len(lists); i += 2 {
			if i+1 == len(lists) {
				next = append(next, lists[i])
				continue
			}
			m, ok := mergeByHash(lists[i], lists[i+1])
			if !ok {
				return false, nil
			}
			next = append(next, m)
		}
		lists = next
	}
	pw.entries = lists[0]
	return true, nil
}

// mergeByHash merges two lists sorted by object id; it reports false if
// an id is in both.
func mergeByHash(a, b []packEntry) ([]packEntry, bool) {
	out := make([]packEntry, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		switch c := compareHash(&a[0].hash, &b[0].hash); {
		case c < 0:
			out, a = append(out, a[0]), a[1:]
		case c > 0:
			out, b = append(out, b[0]), b[1:]
		default:
			return nil, false
		}
	}
	return append(append(out, a...), b...), true
}

// copyPack adds every object of p to pw. Whole objects are copied as
// they are stored, checked against the CRC-32 of the pack index; deltas
// (which only packs written by stock git contain) are resolved and stored
// whole, since their base offsets change. The pack is read in one call:
// merged packs are small (the largest tier merged is maxMergeBytes/fanIn).
func (s *Store) copyPack(pw *packWriter, p *pack) error {
	ents := p.idx.byOffset()
	data := make([]byte, p.size-20)
	if _, err := p.f.ReadAt(data, 0); err != nil {
		return fmt.Errorf("merge %s: %w", p.name, err)
	}
	for i, e := range ents {
		end := uint64(len(data))
		if i+1 < len(ents) {
			end = ents[i+1].offset
		}
		if err := s.copyObject(pw, p, e, data, end); err != nil {
			return fmt.Errorf("merge %s: %w", p.name, err)
		}
	}
	return nil
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

func (s *Store) copyObject(pw *packWriter, p *pack, e packEntry, data []byte, end uint64) error {
	raw, err := checkEntry(p, e, data, end)
	if err != nil {
		return err
	}
	if t := objType(raw[0] >> 4 & 7); t >= objCommit && t <= objTag {
		pw.addRaw(e.hash, raw, e.crc)
		return nil
	}
	t, obj, err := s.repo.readObject(e.hash)
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
