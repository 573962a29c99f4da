package gitstore

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/bits"
	"slices"
	"strconv"

	"github.com/klauspost/compress/zlib"
)

// maxDeltaDepth bounds the delta chains of trees a merge writes (stock
// git's default): reading a tree applies at most this many deltas, fewer
// when the pack's cache holds a base of the chain. Blobs and commits are
// at most one delta away from a whole object.
const maxDeltaDepth = 50

// keyframeEvery is how many blobs (or commits) in a row are deltas
// against the same whole one before another is stored whole.
const keyframeEvery = 128

// segmentBytes bounds the packs (by their size) encoded as one segment:
// a segment's objects are held decoded in memory.
const segmentBytes = 16 << 20

// maxSegObjects bounds the room a merge reserves ahead for a segment's
// objects (more grow it as needed): a segment of the write path's packs
// holds about 60,000.
const maxSegObjects = 1 << 17

// Zlib levels of what a merge writes, by kind of entry. Objects are
// compressed once (a merged pack is later copied as a block), so size
// matters more than on the write path; but a merge compresses a small
// object per entry, where building the Huffman tables costs more than
// finding matches, so the levels were chosen by measuring both bytes and
// CPU per kind (BenchmarkMergeLevels; docs/STORAGE.md):
//
//   - blobs (deltas against a keyframe, and keyframes): level 6, the
//     smallest; lower levels measured no cheaper (level 3) or cheaper by
//     an eighth for 6 % more bytes (level 1);
//   - commits: Huffman coding only, smaller than level 6 and a fifth
//     cheaper (their deltas are a new id, a time and a trailer: few
//     repeats to find);
//   - whole trees: level 1, within 1 % of level 6's bytes, a third
//     cheaper;
//   - tree deltas, a few dozen bytes and mostly an object id, which no
//     level compresses: stored (level 0).
const (
	mergeBlobLevel      = 6
	mergeCommitLevel    = zlib.HuffmanOnly
	mergeTreeLevel      = 1
	mergeTreeDeltaLevel = 0
)

// packMerge writes the objects of the packs of a merge into one pack,
// delta-compressed as `git gc` would.
//
// Packs the write path wrote (whole objects) are encoded in segments of
// consecutive packs (up to segmentBytes), each written newest object
// first, as git does, so that the last version of each tree is stored
// whole and older ones are deltas against the next newer:
//
//   - A commit rewrites the trees on the path from the root to one leaf,
//     each differing from the version before by one entry. A tree's path
//     is found by walking the segment's commits, oldest first, through the
//     segment's trees. A tree is a delta against the newer version of its
//     path written just before it; chains stop at maxDeltaDepth, and the
//     next version is stored whole. The trees a reader needs most, those
//     of the head, are thus whole or a few deltas away.
//   - Blobs (context files, which share their keys and layout) and commits
//     (whose author, committer and trailer lines repeat) are deltas against
//     a whole blob or commit of the segment, the keyframe, renewed every
//     keyframeEvery objects or when a delta does not pay.
//
// A delta is kept when it is under three quarters of the object, else the
// object is stored whole. Packs a merge wrote (they hold OFS_DELTA
// entries, whose bases are in the same pack at a relative offset) are
// copied as one block after checking every entry's CRC-32, so an object
// is encoded once, however often its pack is merged again. Anything else
// that holds deltas (packs from stock git) is resolved object by object
// and encoded again. Every object decoded is checked against its id, so
// a merge never spreads damage.
type packMerge struct {
	repo       *repo
	pw         *packWriter
	z          [objTag + 1]*zlib.Writer // by type: whole objects, and deltas of blobs and commits
	zTreeDelta *zlib.Writer             // tree deltas
	enc        deltaEncoder
	scratch    []byte
	rd         bytes.Reader // the general decoder's input
	inf        *inflater    // the store's decoder, for every stream it takes
	arena      []byte       // decoded objects are allocated from it: alloc
	read       []byte       // the pack being added, as read
	versions   []version    // newVersion's block
	left       int64        // objects of the packs not added yet
	sized      bool         // the buffers of decoded packs are sized: addPack
	sha        hash.Hash    // hashObject's state
	sum        []byte       // hashObject's buffer
	blocks     bool         // packs holding deltas may be copied as blocks

	seg      []segObject // the segment being gathered, oldest first
	segBytes int64

	last     map[string]*version // tree path → its version written last
	keyframe map[objType]*version
	sinceKey map[objType]int
	copied   [][]packEntry // entries of the packs copied as blocks, at their new offsets
}

// segObject is a decoded object of the segment.
type segObject struct {
	h    Hash
	t    objType
	data []byte
	path string // trees: "" until a commit names it
}

// version is an object written to the merged pack, a possible delta base.
type version struct {
	off   uint64
	data  []byte
	depth int // deltas between it and a whole object
}

// newPackMerge returns a merge of packs of size bytes and objects in all.
// With a repository, the merged pack is written to a temp file in its
// pack directory as it is assembled (packstream.go; Store.merge); without
// (the tests' mergeInMemory), it is assembled in memory.
func newPackMerge(r *repo, size, objects int64, blocks bool) (*packMerge, error) {
	m := &packMerge{repo: r, pw: newPackWriter(), blocks: blocks, left: objects, inf: new(inflater)}
	if r != nil {
		f, err := mergeFile(r)
		if err != nil {
			return nil, err
		}
		m.pw.buf = make([]byte, packHeaderLen, packHeaderLen+streamFlush+streamFlush/4)
		m.pw.stream(f, objects)
	} else {
		m.pw.buf = make([]byte, packHeaderLen, size)
	}
	newZ := func(level int) *zlib.Writer {
		zw, _ := zlib.NewWriterLevel(io.Discard, level) // levels are valid: no error
		return zw
	}
	blobs := newZ(mergeBlobLevel)
	m.z = [...]*zlib.Writer{objCommit: newZ(mergeCommitLevel), objTree: newZ(mergeTreeLevel), objBlob: blobs, objTag: blobs}
	m.zTreeDelta = newZ(mergeTreeDeltaLevel)
	m.restart()
	return m, nil
}

// restart forgets every delta base: what follows is based on objects
// written after it.
func (m *packMerge) restart() {
	m.last = map[string]*version{}
	m.keyframe = map[objType]*version{}
	m.sinceKey = map[objType]int{}
}

// merge rewrites cands (newest first) as one pack. Packs are copied as
// blocks where they can be; if that leaves an object twice (packs from
// stock git may repeat objects of other packs) the merge is done again
// object by object.
func (s *Store) merge(cands []*pack) error {
	var total, objects int64
	for _, p := range cands {
		total, objects = total+p.size, objects+p.count
	}
	for _, blocks := range []bool{true, false} {
		m, err := newPackMerge(s.repo, total, objects, blocks)
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		for i := len(cands) - 1; i >= 0; i-- { // oldest first
			err := m.addPack(cands[i])
			if err == nil {
				err = m.pw.out.err // a write failed (the disk is full): stop here
			}
			if err != nil {
				m.pw.abortStream()
				return fmt.Errorf("merge %s: %w", cands[i].name, err)
			}
		}
		if !m.index() {
			m.pw.abortStream()
			continue
		}
		tmp, idx, err := m.pw.finishStream()
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		return s.repo.replaceStaged(cands, tmp, idx)
	}
	return errors.New("merge: an object repeats after merging object by object") // cannot happen: the writer dedups
}

// index writes what is left of the merge and orders the merged pack's
// entries by id; false if an object is in it twice.
func (m *packMerge) index() bool {
	m.writeSegment()
	all := m.pw.entries
	if len(m.copied) > 0 {
		n := 0
		for _, c := range m.copied {
			n += len(c)
		}
		all = slices.Grow(all, n)
		for _, c := range m.copied {
			all = append(all, c...)
		}
	}
	m.pw.entries = sortByHash(all)
	if len(m.copied) > 0 {
		// The objects written here are unique (claim); a block copied may
		// hold one of them or of another block.
		for i := 1; i < len(m.pw.entries); i++ {
			if m.pw.entries[i].hash == m.pw.entries[i-1].hash {
				return false
			}
		}
	}
	return true
}

// sortByHash returns entries sorted by object id (as an index lists
// them). Ids are uniform, so their first 32 bits spread them evenly over
// the buckets of bucketSort.
func sortByHash(entries []packEntry) []packEntry {
	return bucketSort(entries, func(e *packEntry) uint64 { return uint64(binary.BigEndian.Uint32(e.hash[:4])) }, 1<<32,
		func(x, y packEntry) int { return compareHash(&x.hash, &y.hash) })
}

// sortByOffset returns entries in pack order: offsets spread over the
// pack about as evenly as its objects' sizes do.
func sortByOffset(entries []packEntry) []packEntry {
	var last uint64
	for i := range entries {
		last = max(last, entries[i].offset)
	}
	return bucketSort(entries, func(e *packEntry) uint64 { return e.offset }, last+1,
		func(x, y packEntry) int { return cmp.Compare(x.offset, y.offset) })
}

// bucketSort returns a sorted copy of entries: a counting pass spreads
// them by key (below limit, ascending in order) over about one bucket
// per four entries, and each bucket is then sorted by order. Keys that
// spread evenly leave a few entries per bucket, so a sort costs about
// two passes over the entries however many there are (a sort of the
// whole list compares each entry log2(n) times); keys that crowd a
// bucket only make that bucket's sort longer.
func bucketSort(entries []packEntry, key func(*packEntry) uint64, limit uint64, order func(x, y packEntry) int) []packEntry {
	want := max(8, min(20, bits.Len(uint(len(entries)))-2)) // log2 of the buckets
	shift := max(0, bits.Len64(limit-1)-want)
	at := make([]int32, (limit-1)>>shift+2)
	for i := range entries {
		at[key(&entries[i])>>shift+1]++
	}
	for b := 1; b < len(at); b++ {
		at[b] += at[b-1]
	}
	out := make([]packEntry, len(entries))
	for i := range entries {
		b := key(&entries[i]) >> shift
		out[at[b]] = entries[i]
		at[b]++
	}
	// at[b] is now where bucket b ends.
	start := int32(0)
	for _, end := range at[:len(at)-1] {
		if end-start > 1 {
			slices.SortFunc(out[start:end], order)
		}
		start = end
	}
	return out
}

// packedEntry is one entry of a pack being merged.
type packedEntry struct {
	packEntry
	raw     []byte // header and zlib data as stored
	t       objType
	size    uint64 // of the object, or of the delta
	hdr     int    // header length, including a delta's base
	baseOff uint64 // OFS_DELTA: offset of the base
	baseRef Hash   // REF_DELTA: id of the base
}

// addPack adds every object of p to the merged pack, in p's order. The
// pack is read in one call: merged packs are small (under
// maxMergeBytes/fanIn, and under maxMergeBytes in all).
func (m *packMerge) addPack(p *pack) error {
	// An open checks an index's structure, not its checksum: verify it
	// before its entries are trusted (a block copy takes its ids as they
	// are and a new index is checksummed over them).
	if err := p.idx.verify(); err != nil {
		return fmt.Errorf("pack index %s.idx: %w", p.name, err)
	}
	// Nothing refers to data once addPack returns (decoded objects are in
	// the arena, copied blocks in the new pack): the next pack reuses it.
	m.read = slices.Grow(m.read[:0], int(p.size-20))[:p.size-20]
	data := m.read
	if _, err := p.f.ReadAt(data, 0); err != nil {
		return err
	}
	ents := p.idx.byOffset()
	end := func(i int) uint64 {
		if i+1 < len(ents) {
			return ents[i+1].offset
		}
		return uint64(len(data))
	}
	// Every entry is checked and its header read first; a pack copied as
	// a block needs no more (a list of its entries would take a hundred
	// bytes each: hundreds of megabytes for the largest merges).
	deltas, refs := 0, false
	for i, e := range ents {
		raw, err := checkEntry(p, e, data, end(i))
		if err != nil {
			return err
		}
		pe, err := parsePacked(e, raw)
		if err != nil {
			return err
		}
		switch pe.t {
		case objOfsDelta:
			deltas++
		case objRefDelta:
			refs = true
		}
	}
	m.left -= p.count
	if m.blocks && deltas > 0 && !refs {
		m.copyBlock(data, ents)
		return nil
	}
	list := make([]packedEntry, len(ents))
	need := make(map[uint64]int, deltas) // offset → deltas of this pack based on it, still to read
	for i, e := range ents {
		pe, err := parsePacked(e, data[e.offset:end(i)]) // checked above
		if err != nil {
			return err
		}
		if pe.t == objOfsDelta {
			need[pe.baseOff]++
		}
		list[i] = pe
	}
	if !m.sized {
		// The first pack decoded: the merge's entries, its set of ids and
		// a segment are sized for it and every pack after it (a merge
		// takes packs of one tier, so those are decoded too; a merge of
		// packs copied as blocks needs none of it).
		n := int64(len(list)) + m.left
		m.pw.entries = slices.Grow(m.pw.entries, int(n))
		m.pw.seen = make(map[Hash]struct{}, n)
		m.seg = make([]segObject, 0, min(n, maxSegObjects))
		m.sized = true
	}
	kept := map[uint64]keptBase{} // decoded objects that a later delta of p needs
	for i := range list {
		pe := &list[i]
		t, obj, err := m.decode(pe, kept, need)
		if err != nil {
			return err
		}
		if need[pe.offset] > 0 {
			kept[pe.offset] = keptBase{t, obj}
		}
		m.seg = append(m.seg, segObject{h: pe.hash, t: t, data: obj})
	}
	if m.segBytes += p.size; m.segBytes >= segmentBytes {
		m.writeSegment()
	}
	return nil
}

// copyBlock appends the body of a pack (data, checked by the caller) to
// the merged pack in one piece: OFS_DELTA bases are at relative offsets,
// which stay right. Its entries (ents, which the merge owns) are kept,
// shifted, for the index.
func (m *packMerge) copyBlock(data []byte, ents []packEntry) {
	m.writeSegment()
	shift := m.pw.offset() - packHeaderLen
	m.pw.appendBlock(data[packHeaderLen:])
	for j := range ents {
		ents[j].offset += shift
	}
	m.copied = append(m.copied, ents)
	m.restart()
}

// parsePacked reads the header of a stored entry.
func parsePacked(e packEntry, raw []byte) (packedEntry, error) {
	pe := packedEntry{packEntry: e, raw: raw}
	bad := func(what string) (packedEntry, error) {
		return pe, &CorruptError{Object: e.hash, Err: fmt.Errorf("at offset %d: %s", e.offset, what)}
	}
	if len(raw) == 0 {
		return bad("empty entry")
	}
	pe.t = objType(raw[0] >> 4 & 7)
	pe.size = uint64(raw[0] & 0x0f)
	i, shift := 1, 4
	for raw[i-1]&0x80 != 0 {
		if i >= len(raw) || shift > 60 {
			return bad("bad object header")
		}
		pe.size |= uint64(raw[i]&0x7f) << shift
		shift += 7
		i++
	}
	switch pe.t {
	case objCommit, objTree, objBlob, objTag:
	case objOfsDelta:
		rel, j, err := ofsDeltaOffset(raw[i:])
		if err != nil || rel <= 0 || uint64(rel) > e.offset {
			return bad("bad delta base offset")
		}
		pe.baseOff = e.offset - uint64(rel)
		i += j
	case objRefDelta:
		if len(raw) < i+20 {
			return bad("truncated delta base")
		}
		pe.baseRef = Hash(raw[i : i+20])
		i += 20
	default:
		return bad(fmt.Sprintf("unknown object type %d", pe.t))
	}
	pe.hdr = i
	return pe, nil
}

type keptBase struct {
	t    objType
	data []byte
}

// decode returns the object of pe, checked against its id. The bases of
// OFS_DELTA entries come from kept, which forgets each once its last
// delta was read.
func (m *packMerge) decode(pe *packedEntry, kept map[uint64]keptBase, need map[uint64]int) (objType, []byte, error) {
	body, err := m.inflate(pe.raw[pe.hdr:], pe.size)
	if err != nil {
		return 0, nil, &CorruptError{Object: pe.hash, Err: fmt.Errorf("at offset %d: %w", pe.offset, err)}
	}
	t, obj := pe.t, body
	switch pe.t {
	case objOfsDelta:
		b, ok := kept[pe.baseOff]
		if !ok {
			return 0, nil, &CorruptError{Object: pe.hash, Err: fmt.Errorf("at offset %d: no object at its delta base %d", pe.offset, pe.baseOff)}
		}
		if need[pe.baseOff]--; need[pe.baseOff] == 0 {
			delete(kept, pe.baseOff)
		}
		t = b.t
		obj, err = applyDelta(b.data, body)
	case objRefDelta:
		var base []byte
		if t, base, err = m.repo.readObject(pe.baseRef); err == nil {
			obj, err = applyDelta(base, body)
		}
	}
	if err != nil {
		return 0, nil, &CorruptError{Object: pe.hash, Err: fmt.Errorf("at offset %d: %w", pe.offset, err)}
	}
	if got := m.hashObject(t, obj); got != pe.hash {
		return 0, nil, &CorruptError{Object: pe.hash, Err: fmt.Errorf("at offset %d: content hashes to %s", pe.offset, got)}
	}
	return t, obj, nil
}

// inflate returns the data of zlib stream src, size bytes, in memory of
// the merge's arena, decoded by the store's inflater; a stream it refuses
// goes to the general decoder, which says what is wrong with it. Both
// check the stream's Adler-32; the caller checks the object's id.
func (m *packMerge) inflate(src []byte, size uint64) ([]byte, error) {
	if size > maxObjectSize {
		return nil, fmt.Errorf("object of %d bytes is over the %d byte limit", size, maxObjectSize)
	}
	out := m.alloc(int(size))
	if _, ok := m.inf.inflate(out, src); ok {
		return out, nil
	}
	m.rd.Reset(src)
	if err := inflateTo(out, &m.rd); err != nil {
		return nil, err
	}
	return out, nil
}

// arenaChunk is the size of the blocks the merge's arena hands decoded
// objects out of (larger objects get their own).
const arenaChunk = 256 << 10

// alloc returns n bytes for a decoded object. They are carved out of a
// block shared with the objects decoded before it, so that a segment's
// tens of thousands of small objects cost a few allocations; a block is
// freed once no object in it is referenced (a segment and the versions
// based on it are dropped when it is written).
func (m *packMerge) alloc(n int) []byte {
	if n > arenaChunk/8 {
		return make([]byte, n)
	}
	if len(m.arena)+n > cap(m.arena) {
		m.arena = make([]byte, 0, arenaChunk)
	}
	out := m.arena[len(m.arena) : len(m.arena)+n : len(m.arena)+n]
	m.arena = m.arena[:len(m.arena)+n]
	return out
}

// hashObject is the package's hashObject with one SHA-1 state and output
// buffer kept for the whole merge (two allocations fewer per object).
func (m *packMerge) hashObject(t objType, data []byte) Hash {
	if m.sha == nil {
		m.sha = sha1.New()
	}
	m.sha.Reset()
	hdr := append(m.sum[:0], t.String()...)
	hdr = append(hdr, ' ')
	hdr = strconv.AppendInt(hdr, int64(len(data)), 10)
	m.sha.Write(append(hdr, 0))
	m.sha.Write(data)
	m.sum = m.sha.Sum(hdr[:0])
	return Hash(m.sum)
}

// writeSegment writes the segment gathered, newest object first, and
// empties it.
func (m *packMerge) writeSegment() {
	if len(m.seg) == 0 {
		return
	}
	trees := make(map[Hash]int, len(m.seg))
	for i, o := range m.seg {
		if o.t == objTree {
			trees[o.h] = i
		}
	}
	for _, o := range m.seg {
		if root, ok := commitTree(o.data); ok && o.t == objCommit {
			m.name(trees, root, "")
		}
	}
	m.restart()
	for i := len(m.seg) - 1; i >= 0; i-- {
		o := &m.seg[i]
		switch {
		case o.t == objTree && o.path != "":
			m.last[o.path] = m.put(o.t, o.h, o.data, m.last[o.path], maxDeltaDepth)
		case o.t == objBlob || o.t == objCommit:
			m.putKeyed(o.t, o.h, o.data)
		default:
			if m.pw.claim(o.h) {
				m.pw.addHashed(m.z[o.t], o.h, o.t, o.data)
			}
		}
	}
	m.restart()
	m.seg, m.segBytes = m.seg[:0], 0
}

// putKeyed writes a blob or commit as a delta against the keyframe of its
// type, or whole as the new keyframe.
func (m *packMerge) putKeyed(t objType, h Hash, obj []byte) {
	key := m.keyframe[t]
	if m.sinceKey[t] >= keyframeEvery {
		key = nil
	}
	v := m.put(t, h, obj, key, 1)
	if v != key && v.depth == 0 {
		m.keyframe[t], m.sinceKey[t] = v, 0
	} else {
		m.sinceKey[t]++
	}
}

// commitTree returns the tree a commit names on its first line.
func commitTree(obj []byte) (Hash, bool) {
	const prefix = "tree "
	if len(obj) < len(prefix)+40 || string(obj[:len(prefix)]) != prefix {
		return zeroHash, false
	}
	h, err := ParseHash(string(obj[len(prefix) : len(prefix)+40]))
	return h, err == nil
}

// name gives tree h of the segment (its index in trees) the path key and
// walks its subtrees. A root's key is its first entry's name ("/default"
// for a store whose first namespace is default), so the roots of main and
// of side refs, which hold other names, are told apart. A tree already
// named (by an older commit) keeps its name, and so do its subtrees.
func (m *packMerge) name(trees map[Hash]int, h Hash, key string) {
	i, ok := trees[h]
	if !ok || m.seg[i].path != "" {
		return
	}
	data := m.seg[i].data
	root := key == ""
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		nul := bytes.IndexByte(data, 0)
		if sp < 0 || nul < sp || len(data) < nul+21 {
			return // not a tree this package can walk: stored whole
		}
		name := data[sp+1 : nul]
		if root {
			key, root = "/"+string(name), false
			m.seg[i].path = key
		}
		if string(data[:sp]) == modeDir {
			// Only a subtree of the segment not named yet is walked (most
			// are unchanged ones, in older segments or named by an older
			// commit): the key is built for it alone.
			if j, ok := trees[Hash(data[nul+1:nul+21])]; ok && m.seg[j].path == "" {
				m.name(trees, m.seg[j].h, key+"/"+string(name))
			}
		}
		data = data[nul+21:]
	}
	m.seg[i].path = key
}

// put writes object h (of type t) as a delta against base when that
// pays and base is less than maxDepth deltas deep, else whole, and
// returns the version the next object of the same path or kind is based
// on.
func (m *packMerge) put(t objType, h Hash, obj []byte, base *version, maxDepth int) *version {
	if !m.pw.claim(h) {
		return base
	}
	if base != nil && base.depth < maxDepth {
		m.scratch = m.enc.encode(m.scratch[:0], base.data, obj)
		if 4*len(m.scratch) < 3*len(obj) {
			zw := m.z[t]
			if t == objTree {
				zw = m.zTreeDelta
			}
			off := m.pw.addDeltaWith(zw, h, base.off, m.scratch)
			return m.newVersion(version{off: off, data: obj, depth: base.depth + 1})
		}
	}
	return m.newVersion(version{off: m.pw.addHashed(m.z[t], h, t, obj), data: obj})
}

// newVersion returns v in memory of the merge: versions are carved out of
// blocks of 4096 (one allocation for as many objects written).
func (m *packMerge) newVersion(v version) *version {
	if len(m.versions) == cap(m.versions) {
		m.versions = make([]version, 0, 4096)
	}
	m.versions = append(m.versions, v)
	return &m.versions[len(m.versions)-1]
}
