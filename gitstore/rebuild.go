package gitstore

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"hash"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/nexus-mem/nexus"
)

// Reading many context blobs at once (a rebuild, a long catch-up) goes
// through the packs in file order rather than object by object through
// the index: the blobs are located with one merge of their sorted ids
// against each pack's sorted index, then each pack's blobs are read in
// offset order, in windows of up to readWindow bytes (one read for many
// neighbouring objects), and inflated (by the store's own decoder,
// inflate.go, into per-worker buffers), hash-checked and parsed on all
// cores. A delta entry whose base is earlier in the same pack (OFS_DELTA,
// as merges write them: blobs and commits against a keyframe, trees
// against another version of their path) is resolved by the worker, which
// keeps the bases it decoded (a keyframe serves many deltas). Whatever
// this path does not handle itself — a REF_DELTA, an object it cannot
// inflate from its window or whose delta does not apply, a blob
// scanContext declines, a pack merged away meanwhile, any error — goes
// through the ordinary per-object reader (readEntry), which gives the
// verdict and the error.

const (
	readWindow = 1 << 20 // bytes per read
	readJob    = 4096    // objects per unit of work
	readGap    = 64 << 10
)

// objRef is one object to read: its place in the caller's list and its
// offset in the pack that holds it.
type objRef struct {
	i   int
	off uint64
}

// readJobT is a run of one pack's objects, in offset order.
type readJobT struct {
	p    *pack
	refs []objRef
}

// packedRead reads the objects hashes (all of type want) through the
// packs in order, on all cores. Each worker calls handle(w, i, data) with
// object i's verified content (valid only during the call); when the
// object cannot be read this way, or handle returns false, it calls
// slow(i) instead. w is the worker's reader, for its scratch state. It
// returns how many of the objects handled were delta entries.
func (s *Store) packedRead(hashes []Hash, want objType, handle func(w *packReader, i int, data []byte) bool, slow func(i int)) int {
	jobs, rest := s.planReads(hashes)
	work := make(chan readJobT)
	var wg sync.WaitGroup
	var deltas atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newPackReader(s)
			for j := range work {
				w.job(j, hashes, want, handle, slow)
			}
			deltas.Add(int64(w.deltas))
		}()
	}
	for _, j := range jobs {
		work <- j
	}
	// Objects no pack holds: the ordinary reader says what is wrong.
	for _, i := range rest {
		work <- readJobT{refs: []objRef{{i: i}}}
	}
	close(work)
	wg.Wait()
	return int(deltas.Load())
}

// readEntriesPacked reads and checks the blobs of added, which are all
// additions, and returns their entries in the same order.
func (s *Store) readEntriesPacked(added []fileChange) ([]*entry, error) {
	out := make([]*entry, len(added))
	errs := make([]error, len(added))
	hashes := make([]Hash, len(added))
	for i := range added {
		hashes[i] = added[i].blob
	}
	var done atomic.Int64
	var progMu sync.Mutex
	progress := func() {
		d := done.Add(1)
		if s.opts.Progress == nil || d%1024 != 0 && int(d) != len(added) {
			return
		}
		progMu.Lock()
		s.opts.Progress(int(d), len(added))
		progMu.Unlock()
	}
	s.packedRead(hashes, objBlob, func(w *packReader, i int, data []byte) bool {
		plain, err := s.unseal(data)
		if err != nil {
			return false
		}
		e, ok := w.parse(plain, &added[i])
		if ok {
			out[i] = e
			progress()
		}
		return ok
	}, func(i int) {
		out[i], errs[i] = s.readEntry(added[i])
		progress()
	})
	return out, errors.Join(errs...)
}

// planReads locates each object in the newest pack holding it (as
// readObject does) and cuts each pack's list into jobs in offset order. It
// returns the indexes of objects found in no pack.
func (s *Store) planReads(hashes []Hash) ([]readJobT, []int) {
	// The ids sorted, with their places, in one array: the merges below
	// read it in order.
	pending := make([]wantedID, len(hashes))
	for i := range pending {
		pending[i] = wantedID{hashes[i], i}
	}
	sortWanted(pending, runtime.GOMAXPROCS(0), 0)
	s.repo.mu.RLock()
	packs := slices.Clone(s.repo.packs)
	s.repo.mu.RUnlock()
	var jobs []readJobT
	for _, p := range packs {
		if len(pending) == 0 {
			break
		}
		var refs []objRef
		left := pending[:0]
		x := p.idx
		if len(pending)*16 < x.n {
			// Few objects: search the index for each.
			for _, w := range pending {
				if off, ok := x.find(w.h); ok {
					refs = append(refs, objRef{i: w.i, off: off})
				} else {
					left = append(left, w)
				}
			}
		} else {
			// Many: one merge of two sorted lists, comparing the first
			// eight bytes as a number.
			k := 0
			for _, w := range pending {
				hp := binary.BigEndian.Uint64(w.h[:8])
				for k < x.n {
					np := binary.BigEndian.Uint64(x.data[x.names+20*k:])
					if np > hp || np == hp && bytes.Compare(x.name(k), w.h[:]) >= 0 {
						break
					}
					k++
				}
				if k < x.n && bytes.Equal(x.name(k), w.h[:]) {
					refs = append(refs, objRef{i: w.i, off: x.offsetAt(k)})
				} else {
					left = append(left, w)
				}
			}
		}
		pending = left
		slices.SortFunc(refs, func(a, b objRef) int { return cmp.Compare(a.off, b.off) })
		for len(refs) > 0 {
			n := min(len(refs), readJob)
			jobs = append(jobs, readJobT{p: p, refs: refs[:n:n]})
			refs = refs[n:]
		}
	}
	rest := make([]int, len(pending))
	for k, w := range pending {
		rest[k] = w.i
	}
	return jobs, rest
}

// wantedID is an object to locate: its id and its place in the caller's
// list.
type wantedID struct {
	h Hash
	i int
}

// sortWanted sorts p by id on up to ways cores: it splits p on bit bit of
// the ids (counting from the first byte's highest), then sorts the two
// parts at once, each split again while ways allow. Ids are uniform, so
// the parts are even.
func sortWanted(p []wantedID, ways int, bit uint) {
	if ways < 2 || len(p) < 1<<14 || bit >= 8 {
		slices.SortFunc(p, func(a, b wantedID) int { return compareHash(&a.h, &b.h) })
		return
	}
	mask := byte(0x80) >> bit
	k := 0
	for j := range p {
		if p[j].h[0]&mask == 0 {
			p[k], p[j] = p[j], p[k]
			k++
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { sortWanted(p[:k], ways/2, bit+1) })
	sortWanted(p[k:], ways-ways/2, bit+1)
	wg.Wait()
}

// packReader is one worker's state.
type packReader struct {
	s     *Store
	buf   []byte // the current window
	base  uint64 // its offset in the pack
	inf   inflater
	sha   hash.Hash
	data  []byte // a whole object's content
	delta []byte // a delta's data
	strs  map[string]string

	// Delta bases decoded, by offset in basesOf, oldest first in baseFIFO.
	basesOf   *pack
	bases     map[uint64]cachedBase
	baseFIFO  []uint64
	baseBytes int

	wasDelta bool // the last object read was a delta
	deltas   int  // delta entries read and handled
}

// workerBaseBytes bounds each worker's cache of delta bases. A keyframe
// serves the up to keyframeEvery deltas that follow it.
const workerBaseBytes = 4 << 20

func newPackReader(s *Store) *packReader {
	return &packReader{s: s, sha: sha1.New(), strs: map[string]string{}, bases: map[uint64]cachedBase{}}
}

// job reads j's objects while j's pack is still in the set (a merge may
// replace it meanwhile; its objects then go to slow).
func (w *packReader) job(j readJobT, hashes []Hash, want objType, handle func(*packReader, int, []byte) bool, slow func(int)) {
	r := w.s.repo
	r.mu.RLock()
	live := j.p != nil && slices.Contains(r.packs, j.p)
	var failed []int
	if live {
		w.buf = w.buf[:0]
		for _, ref := range j.refs {
			data, ok := w.read(j.p, ref.off, want, &hashes[ref.i])
			if !ok || !handle(w, ref.i, data) {
				failed = append(failed, ref.i)
			} else if w.wasDelta {
				w.deltas++
			}
		}
	}
	r.mu.RUnlock()
	if !live {
		for _, ref := range j.refs {
			failed = append(failed, ref.i)
		}
	}
	for _, i := range failed {
		slow(i)
	}
}

// window makes [off, off+need) available in w.buf, reading up to
// readWindow bytes from off, and returns the bytes from off to the end
// of the window.
func (w *packReader) window(p *pack, off uint64, need int) ([]byte, bool) {
	end := uint64(p.size - 20)
	if off >= end {
		return nil, false
	}
	inWindow := off >= w.base && off < w.base+uint64(len(w.buf))
	if inWindow && (off+uint64(need) <= w.base+uint64(len(w.buf)) || w.base+uint64(len(w.buf)) == end) {
		return w.buf[off-w.base:], true
	}
	n := min(uint64(max(need, readWindow)), end-off)
	if uint64(cap(w.buf)) < n {
		w.buf = make([]byte, n)
	}
	w.buf = w.buf[:n]
	w.base = off
	if _, err := p.f.ReadAt(w.buf, int64(off)); err != nil {
		w.buf = w.buf[:0]
		return nil, false
	}
	return w.buf, true
}

// read returns the content of the object at off in p if it is an object
// of type want hashing to h: stored whole, or as an OFS_DELTA whose base
// this reader resolves itself (see object). The content is valid until
// the next read. A REF_DELTA, another type, anything it cannot inflate or
// apply, or a hash that does not match gives false: the ordinary reader
// then decides.
func (w *packReader) read(p *pack, off uint64, want objType, h *Hash) ([]byte, bool) {
	t, size, i, ok := w.header(p, off)
	if !ok || size > maxObjectSize {
		return nil, false
	}
	var data []byte
	w.wasDelta = t == objOfsDelta
	switch t {
	case want:
		if uint64(cap(w.data)) < size {
			w.data = make([]byte, size)
		}
		if data, ok = w.inflate(p, off+uint64(i), size, w.data[:size]); !ok {
			return nil, false
		}
	case objOfsDelta:
		var bt objType
		if bt, data, ok = w.patch(p, off, i, size, 0, w.data); !ok || bt != want {
			return nil, false
		}
		if cap(data) > cap(w.data) {
			w.data = data[:0] // grown: keep the larger buffer
		}
	default:
		return nil, false // a REF_DELTA, or another type: the ordinary reader decides
	}
	w.sha.Reset()
	var hdr [32]byte
	w.sha.Write(strconv.AppendUint(append(append(hdr[:0], want.String()...), ' '), uint64(len(data)), 10))
	w.sha.Write([]byte{0})
	w.sha.Write(data)
	var got Hash
	if w.sha.Sum(got[:0]); got != *h {
		return nil, false
	}
	return data, true
}

// header decodes the type and size of the object at off and returns the
// header's length.
func (w *packReader) header(p *pack, off uint64) (objType, uint64, int, bool) {
	b, ok := w.window(p, off, 32)
	if !ok {
		return 0, 0, 0, false
	}
	// Type and size, 4 bits then 7 bits a byte.
	t := objType(b[0] >> 4 & 7)
	size := uint64(b[0] & 0x0f)
	i, shift := 1, 4
	for b[i-1]&0x80 != 0 {
		if i >= len(b) || shift > 60 {
			return 0, 0, 0, false
		}
		size |= uint64(b[i]&0x7f) << shift
		shift += 7
		i++
	}
	return t, size, i, true
}

// inflate inflates the zlib stream at off in p into dst, which must be
// exactly as long as the stream's content.
func (w *packReader) inflate(p *pack, off uint64, size uint64, dst []byte) ([]byte, bool) {
	// zlib adds at most 5 bytes per 16 KiB block plus header and trailer.
	b, ok := w.window(p, off, int(size)+int(size/16384+1)*5+64)
	if !ok {
		return nil, false
	}
	if _, ok := w.inf.inflate(dst, b); !ok {
		return nil, false
	}
	return dst, true
}

// patch resolves the OFS_DELTA at off (header of hdrLen bytes, delta of
// size bytes): its base, earlier in the same pack, through object, then
// the delta applied to it, into dst's memory when it has room (nil: a new
// slice).
func (w *packReader) patch(p *pack, off uint64, hdrLen int, size uint64, depth int, dst []byte) (objType, []byte, bool) {
	b, ok := w.window(p, off+uint64(hdrLen), 16)
	if !ok {
		return 0, nil, false
	}
	rel, j, err := ofsDeltaOffset(b[:min(len(b), 16)])
	if err != nil || rel <= 0 || uint64(rel) > off {
		return 0, nil, false
	}
	bt, base, ok := w.object(p, off-uint64(rel), depth+1)
	if !ok {
		return 0, nil, false
	}
	if uint64(cap(w.delta)) < size {
		w.delta = make([]byte, size)
	}
	delta, ok := w.inflate(p, off+uint64(hdrLen+j), size, w.delta[:size])
	if !ok {
		return 0, nil, false
	}
	out, err := applyDeltaTo(dst, base, delta)
	if err != nil {
		return 0, nil, false
	}
	return bt, out, true
}

// object returns the object at off in p as the base of a delta: from the
// reader's cache of bases, else decoded (through its own chain of deltas,
// up to maxDeltaChain) and cached. Bases are not hash-checked here: a
// wrong base gives a target that does not hash to its id.
func (w *packReader) object(p *pack, off uint64, depth int) (objType, []byte, bool) {
	if depth > maxDeltaChain {
		return 0, nil, false
	}
	if p != w.basesOf {
		clear(w.bases)
		w.baseFIFO, w.baseBytes, w.basesOf = w.baseFIFO[:0], 0, p
	}
	if b, ok := w.bases[off]; ok {
		return b.t, b.data, true
	}
	t, size, i, ok := w.header(p, off)
	if !ok || size > maxObjectSize {
		return 0, nil, false
	}
	var data []byte
	switch t {
	case objCommit, objTree, objBlob, objTag:
		if data, ok = w.inflate(p, off+uint64(i), size, make([]byte, size)); !ok {
			return 0, nil, false
		}
	case objOfsDelta:
		if t, data, ok = w.patch(p, off, i, size, depth, nil); !ok {
			return 0, nil, false
		}
	default:
		return 0, nil, false
	}
	w.keepBase(off, t, data)
	return t, data, true
}

// keepBase caches a decoded base, dropping the oldest ones beyond
// workerBaseBytes. Bases are read in offset order, so the oldest is the
// furthest behind the read.
func (w *packReader) keepBase(off uint64, t objType, data []byte) {
	if len(data) > baseCacheMaxObject {
		return
	}
	w.bases[off] = cachedBase{t: t, data: data}
	w.baseFIFO = append(w.baseFIFO, off)
	w.baseBytes += len(data)
	for w.baseBytes > workerBaseBytes && len(w.baseFIFO) > 1 {
		old := w.baseFIFO[0]
		w.baseFIFO = w.baseFIFO[1:]
		w.baseBytes -= len(w.bases[old].data)
		delete(w.bases, old)
	}
}

// parse builds the entry of a context blob found at fc.
func (rd *packReader) parse(b []byte, fc *fileChange) (*entry, bool) {
	f, ok := scanContext(b)
	if !ok {
		c, err := decodeContext(b)
		if err != nil || c.ID != fc.id || c.Namespace != fc.ns {
			return nil, false
		}
		return entryOf(c, fc.blob, fc.leaf, len(b)), true
	}
	if f.id != fc.id || string(f.ns) != fc.ns {
		return nil, false
	}
	return &entry{
		id: f.id, parent: f.parent, ts: f.ts, ns: rd.intern(f.ns), typ: nexus.Type(rd.intern(f.typ)),
		agent: rd.intern(f.agent), blob: fc.blob, leaf: fc.leaf, size: uint32(len(b)),
	}, true
}

func (rd *packReader) intern(b []byte) string {
	if s, ok := rd.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(rd.strs) < 1<<16 {
		rd.strs[s] = s
	}
	return s
}

// readEntriesOf reads the entries of the added files: through the packs
// in order when there are many, one by one otherwise.
func (s *Store) readEntriesOf(added []fileChange) ([]*entry, error) {
	if len(added) < 256 {
		return s.readEntries(added)
	}
	return s.readEntriesPacked(added)
}
