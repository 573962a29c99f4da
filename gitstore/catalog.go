package gitstore

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/nexus-mem/nexus"
)

// entry is what the catalog knows of one live context: enough to filter
// listings and to find the blob without touching git trees.
type entry struct {
	id     nexus.ID
	parent nexus.ID
	ts     int64 // Unix nanoseconds
	ns     string
	typ    nexus.Type
	agent  string
	blob   Hash
	leaf   uint64 // shard leaf index within the namespace
	size   uint32 // bytes of the blob
}

// catalog is the derived index of the live contexts at commit head.
type catalog struct {
	mu       sync.RWMutex
	head     Hash
	byID     map[nexus.ID]*entry
	ordered  []*entry // by id, ascending (ids are time-ordered)
	children map[nexus.ID][]*entry
	byNS     map[string][]*entry // per namespace, by id ascending: a listing of one namespace reads only its own
	leafFill map[string]leafFill // per namespace: the newest leaf and its size
	strs     map[string]string   // interned namespaces and agents
	saved    Hash                // head of the catalog file as last loaded or saved
	hasFile  bool                // the catalog was loaded from or saved to its file
}

// leafFill says where the next context of a namespace goes.
type leafFill struct {
	leaf  uint64
	count int
}

func newCatalog() *catalog {
	return &catalog{
		byID:     map[nexus.ID]*entry{},
		children: map[nexus.ID][]*entry{},
		byNS:     map[string][]*entry{},
		leafFill: map[string]leafFill{},
		strs:     map[string]string{},
	}
}

func (c *catalog) intern(s string) string {
	if v, ok := c.strs[s]; ok {
		return v
	}
	c.strs[s] = s
	return s
}

// addLocked inserts e, keeping ordered sorted even if e is not the newest
// (which happens only while rebuilding from a tree walk).
func (c *catalog) addLocked(e *entry) {
	if _, dup := c.byID[e.id]; dup {
		return
	}
	e.ns, e.agent = c.intern(e.ns), c.intern(e.agent)
	c.byID[e.id] = e
	n := len(c.ordered)
	if n == 0 || c.ordered[n-1].id.Compare(e.id) < 0 {
		c.ordered = append(c.ordered, e)
	} else {
		i := sort.Search(n, func(i int) bool { return c.ordered[i].id.Compare(e.id) > 0 })
		c.ordered = append(c.ordered, nil)
		copy(c.ordered[i+1:], c.ordered[i:])
		c.ordered[i] = e
	}
	if !e.parent.IsZero() {
		c.children[e.parent] = insertSorted(c.children[e.parent], e)
	}
	c.byNS[e.ns] = insertSorted(c.byNS[e.ns], e)
	c.countLeaf(e)
}

// countLeaf counts e in the fill of its namespace's newest leaf.
func (c *catalog) countLeaf(e *entry) {
	lf := c.leafFill[e.ns]
	switch {
	case e.leaf > lf.leaf || lf.count == 0:
		c.leafFill[e.ns] = leafFill{e.leaf, 1}
	case e.leaf == lf.leaf:
		c.leafFill[e.ns] = leafFill{lf.leaf, lf.count + 1}
	}
}

func insertSorted(s []*entry, e *entry) []*entry {
	i := sort.Search(len(s), func(i int) bool { return s[i].id.Compare(e.id) > 0 })
	s = append(s, nil)
	copy(s[i+1:], s[i:])
	s[i] = e
	return s
}

// bulkAdd is how many new entries make addAllLocked worth it: it costs a
// pass over the whole catalog, inserting one by one costs a shift of the
// ordered lists per entry (quadratic when a rebuild adds namespace after
// namespace, each interleaved in time with the ones before).
const bulkAdd = 4096

// addAllLocked adds ents as addLocked would one by one (an id already
// present, or met earlier in ents, is skipped), by merging them into the
// ordered list and rebuilding the other indexes: O(n log n) in all.
func (c *catalog) addAllLocked(ents []*entry) {
	sorted := mergeSortByID(slices.Clone(ents))
	all := make([]*entry, 0, len(c.ordered)+len(sorted))
	i, j := 0, 0
	for i < len(c.ordered) || j < len(sorted) {
		var e *entry
		if j == len(sorted) || i < len(c.ordered) && compareIDs(&c.ordered[i].id, &sorted[j].id) <= 0 {
			e, i = c.ordered[i], i+1
		} else {
			e, j = sorted[j], j+1
		}
		if n := len(all); n > 0 && all[n-1].id == e.id {
			continue // the first one stays
		}
		all = append(all, e)
	}
	for _, e := range sorted {
		e.ns, e.agent = c.intern(e.ns), c.intern(e.agent)
	}
	c.ordered = all
	clear(c.children)
	clear(c.byNS)
	clear(c.leafFill)
	c.indexOrderedLocked() // the id map on another core
}

// compareIDs is nexus.ID.Compare, a word at a time.
func compareIDs(a, b *nexus.ID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

// mergeSortByID sorts s by id, stably, merging its ascending runs: linear
// on sorted input, a few passes on a rebuild's one run per namespace.
func mergeSortByID(s []*entry) []*entry {
	type run struct{ lo, hi int }
	var runs []run
	for lo := 0; lo < len(s); {
		hi := lo + 1
		for hi < len(s) && compareIDs(&s[hi-1].id, &s[hi].id) <= 0 {
			hi++
		}
		runs = append(runs, run{lo, hi})
		lo = hi
	}
	if len(runs) <= 1 {
		return s
	}
	tmp := make([]*entry, len(s))
	for len(runs) > 1 {
		var next []run
		for k := 0; k < len(runs); k += 2 {
			if k+1 == len(runs) {
				copy(tmp[runs[k].lo:runs[k].hi], s[runs[k].lo:runs[k].hi])
				next = append(next, runs[k])
				continue
			}
			a, b := runs[k], runs[k+1]
			i, j, o := a.lo, b.lo, a.lo
			for i < a.hi && j < b.hi {
				if compareIDs(&s[j].id, &s[i].id) < 0 {
					tmp[o], j = s[j], j+1
				} else {
					tmp[o], i = s[i], i+1
				}
				o++
			}
			o += copy(tmp[o:], s[i:a.hi])
			copy(tmp[o:], s[j:b.hi])
			next = append(next, run{a.lo, b.hi})
		}
		s, tmp, runs = tmp, s, next
	}
	return s
}

func (c *catalog) removeLocked(id nexus.ID) {
	e, ok := c.byID[id]
	if !ok {
		return
	}
	delete(c.byID, id)
	i := sort.Search(len(c.ordered), func(i int) bool { return c.ordered[i].id.Compare(id) >= 0 })
	if i < len(c.ordered) && c.ordered[i] == e {
		c.ordered = append(c.ordered[:i], c.ordered[i+1:]...)
	}
	if !e.parent.IsZero() {
		kids := c.children[e.parent]
		for j, k := range kids {
			if k == e {
				c.children[e.parent] = append(kids[:j:j], kids[j+1:]...)
				break
			}
		}
	}
	ns := c.byNS[e.ns]
	if j := sort.Search(len(ns), func(j int) bool { return ns[j].id.Compare(id) >= 0 }); j < len(ns) && ns[j] == e {
		if len(ns) == 1 {
			delete(c.byNS, e.ns)
		} else {
			c.byNS[e.ns] = append(ns[:j:j], ns[j+1:]...)
		}
	}
}

func (c *catalog) get(id nexus.ID) (*entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byID[id]
	return e, ok
}

func (c *catalog) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.ordered)
}

// nextLeafLocked returns the leaf for the next context of ns, given how many
// contexts of ns the pending batch already placed (pending).
func (c *catalog) nextLeafLocked(ns string, pending int) uint64 {
	lf, ok := c.leafFill[ns]
	n := pending
	if ok {
		n += int(lf.leaf)*leafSize + lf.count
	}
	return uint64(n / leafSize)
}

// equal reports whether two catalogs hold the same entries at the same head.
func (c *catalog) equal(o *catalog) error {
	if c.head != o.head {
		return fmt.Errorf("head %s != %s", c.head, o.head)
	}
	if len(c.ordered) != len(o.ordered) {
		return fmt.Errorf("%d entries != %d", len(c.ordered), len(o.ordered))
	}
	for i, e := range c.ordered {
		if *e != *o.ordered[i] {
			return fmt.Errorf("entry %d differs: %+v != %+v", i, *e, *o.ordered[i])
		}
	}
	return nil
}

// Catalog file format, all integers big-endian or uvarint:
//
//	"NXCAT1\n" head[20] count(uvarint) entries... sha256[32]
//
// entry: id[16] parent[16] ts(varint) ns(str) type(str) agent(str) blob[20]
// leaf(uvarint) size(uvarint), str = uvarint length + bytes.
const catalogMagic = "NXCAT1\n"

const catalogFile = "catalog.bin"

// save writes the catalog durably to dir. It snapshots under the read lock
// and encodes outside it, streaming the file (a store of a million
// contexts has a catalog of ≈ 90 MB, which is not allocated whole: fresh
// memory costs the page faults that dominate a node's start).
func (c *catalog) save(dir string) error {
	c.mu.RLock()
	head, ents := c.head, c.ordered[:len(c.ordered):len(c.ordered)]
	c.mu.RUnlock()
	err := writeFileDurableStream(dir, catalogFile, func(f io.Writer) error {
		h := sha256.New()
		w := bufio.NewWriterSize(io.MultiWriter(f, h), 64<<10)
		w.WriteString(catalogMagic)
		w.Write(head[:])
		var tmp [binary.MaxVarintLen64]byte
		w.Write(binary.AppendUvarint(tmp[:0], uint64(len(ents))))
		for _, e := range ents {
			encodeEntry(w, e)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		_, err := f.Write(h.Sum(nil))
		return err
	})
	if err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	c.mu.Lock()
	c.saved, c.hasFile = head, true
	c.mu.Unlock()
	return nil
}

// unsaved reports whether the catalog has moved since it was last loaded
// from or saved to its file (the catalog is a function of its head).
func (c *catalog) unsaved() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.head != c.saved || !c.hasFile
}

// catWriter is what encodeEntry writes to (a bufio.Writer, or a
// bytes.Buffer in tests).
type catWriter interface {
	io.Writer
	io.StringWriter
}

func encodeEntry(buf catWriter, e *entry) {
	var tmp [binary.MaxVarintLen64]byte
	buf.Write(e.id[:])
	buf.Write(e.parent[:])
	buf.Write(binary.AppendVarint(tmp[:0], e.ts))
	for _, s := range []string{e.ns, string(e.typ), e.agent} {
		buf.Write(binary.AppendUvarint(tmp[:0], uint64(len(s))))
		buf.WriteString(s)
	}
	buf.Write(e.blob[:])
	buf.Write(binary.AppendUvarint(tmp[:0], e.leaf))
	buf.Write(binary.AppendUvarint(tmp[:0], uint64(e.size)))
}

// errCatalogDamaged marks a catalog file that must be rebuilt.
var errCatalogDamaged = errors.New("catalog file is damaged")

// loadCatalog reads dir's catalog file. A missing file returns (nil, nil);
// a damaged one an error wrapping errCatalogDamaged.
//
// The file is streamed through a small buffer and its sha256 computed as
// it is read, and nothing decoded is returned unless it matches: a store
// of a million contexts has a catalog of ≈ 90 MB, and fresh memory of
// that size costs more in page faults than the decoding. Entries are
// decoded into one array (no allocation per entry; namespaces, types and
// agents interned as they are read) and, since the file lists them by id,
// taken as the ordered list as they are; the id map and the per-namespace
// and child lists are then built from it, the map on another core.
func loadCatalog(dir string) (*catalog, error) {
	f, err := os.Open(filepath.Join(dir, catalogFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(catalogMagic)+20+1+32) {
		return nil, fmt.Errorf("%w: too short (%d bytes)", errCatalogDamaged, size)
	}
	h := sha256.New()
	body := io.TeeReader(io.LimitReader(f, size-32), h)
	var magic [len(catalogMagic)]byte
	if _, err := io.ReadFull(body, magic[:]); err != nil {
		return nil, err
	}
	if string(magic[:]) != catalogMagic {
		return nil, fmt.Errorf("%w: bad header", errCatalogDamaged)
	}
	c, derr := decodeCatalogFrom(body)
	if derr != nil {
		// Read the rest, so that a damaged file is told from one that
		// could not be read.
		if _, err := io.Copy(io.Discard, body); err != nil {
			return nil, err
		}
	}
	var sum [32]byte
	if _, err := io.ReadFull(f, sum[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: truncated", errCatalogDamaged)
		}
		return nil, err
	}
	if !bytes.Equal(h.Sum(nil), sum[:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", errCatalogDamaged)
	}
	if derr != nil {
		return nil, fmt.Errorf("%w: %v", errCatalogDamaged, derr)
	}
	c.saved, c.hasFile = c.head, true
	return c, nil
}

// minEntryBytes is the smallest encoded entry: two ids, a blob id, and
// one byte for each varint and string length.
const minEntryBytes = 16 + 16 + 20 + 6

// maxEntryBytes is the largest encoded entry: the fixed fields, three
// strings of at most maxCatString bytes and four varints.
const maxEntryBytes = 16 + 16 + 20 + 4*binary.MaxVarintLen64 + 3*(binary.MaxVarintLen64+maxCatString)

// catReadBuf is the size of the buffer a catalog file is read through.
const catReadBuf = 256 << 10

// maxCatString is the longest namespace, type or agent a file may hold.
const maxCatString = 1024

// decodeCatalog decodes the catalog file's body after its magic (head,
// count, entries; the checksum is cut off).
func decodeCatalog(b []byte) (*catalog, error) {
	return decodeCatalogFrom(bytes.NewReader(b))
}

// decodeCatalogFrom is [decodeCatalog] of the body read from r. A read
// error of r is returned as it is; a malformed body as an error of its own.
func decodeCatalogFrom(r io.Reader) (*catalog, error) {
	c := newCatalog()
	d := catDecoder{src: r, buf: make([]byte, catReadBuf), strs: c.strs}
	d.fill(20 + binary.MaxVarintLen64)
	copy(c.head[:], d.next(20))
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if n > 1<<40 {
		return nil, errors.New("bad count")
	}
	var ents []entry
	var ordered []*entry
	sorted := true
	for i := uint64(0); i < n; i++ {
		d.fill(maxEntryBytes)
		if len(d.b) < minEntryBytes {
			if d.err == nil {
				d.err = fmt.Errorf("entry %d: truncated", i)
			}
			return nil, d.err
		}
		if ents == nil || len(ents) == cap(ents) {
			// Grown in chunks, not by the count the file claims, so
			// that a damaged count cannot make it allocate the world.
			ents = make([]entry, 0, min(n-i, 1<<16))
		}
		ents = append(ents, entry{})
		e := &ents[len(ents)-1]
		d.entry(e)
		if d.err != nil {
			return nil, fmt.Errorf("entry %d: %v", i, d.err)
		}
		if ordered == nil {
			ordered = make([]*entry, 0, min(n, 1<<16))
		}
		if i > 0 && compareIDs(&ordered[len(ordered)-1].id, &e.id) >= 0 {
			sorted = false
		}
		ordered = append(ordered, e)
	}
	if d.fill(1); len(d.b) != 0 {
		return nil, errors.New("trailing data")
	}
	if d.err != nil {
		return nil, d.err
	}
	if !sorted { // not written by save: insert as a rebuild would
		c.addAllLocked(ordered)
		return c, nil
	}
	c.ordered = ordered
	c.indexOrderedLocked()
	return c, nil
}

// indexOrderedLocked builds the id map, the child and namespace lists and
// the leaf fill from c.ordered (sorted by id, without duplicates), the
// map on another goroutine.
func (c *catalog) indexOrderedLocked() {
	byID := make(map[nexus.ID]*entry, len(c.ordered))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, e := range c.ordered {
			byID[e.id] = e
		}
	}()
	for _, e := range c.ordered {
		if !e.parent.IsZero() {
			c.children[e.parent] = append(c.children[e.parent], e)
		}
		c.byNS[e.ns] = append(c.byNS[e.ns], e)
		c.countLeaf(e)
	}
	<-done
	c.byID = byID
}

// catDecoder reads the catalog file's fields from b, which fill refills
// from src through buf; the first error stops it (later reads return zero
// values).
type catDecoder struct {
	b    []byte
	src  io.Reader
	buf  []byte
	err  error
	strs map[string]string // interned strings
}

// fill makes b hold at least n bytes, or all that is left of src.
func (d *catDecoder) fill(n int) {
	if len(d.b) >= n || d.src == nil || d.err != nil {
		return
	}
	k := copy(d.buf, d.b)
	for k < n {
		m, err := d.src.Read(d.buf[k:])
		k += m
		if err == io.EOF {
			d.src = nil
			break
		}
		if err != nil {
			d.err, d.src = err, nil
			break
		}
	}
	d.b = d.buf[:k]
}

func (d *catDecoder) fail(what string) {
	if d.err == nil {
		d.err = errors.New(what)
	}
	d.b = nil
}

func (d *catDecoder) next(n int) []byte {
	if len(d.b) < n {
		d.fail("truncated")
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *catDecoder) uvarint() uint64 {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *catDecoder) varint() int64 {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[k:]
	return v
}

// str reads a length-prefixed string and returns it interned.
func (d *catDecoder) str() string {
	l := d.uvarint()
	if l > maxCatString {
		d.fail("bad string length")
		return ""
	}
	b := d.next(int(l))
	if v, ok := d.strs[string(b)]; ok {
		return v
	}
	v := string(b)
	d.strs[v] = v
	return v
}

// entry decodes one entry into e (see the file format above).
func (d *catDecoder) entry(e *entry) {
	copy(e.id[:], d.next(16))
	copy(e.parent[:], d.next(16))
	e.ts = d.varint()
	e.ns = d.str()
	e.typ = nexus.Type(d.str())
	e.agent = d.str()
	copy(e.blob[:], d.next(20))
	e.leaf = d.uvarint()
	size := d.uvarint()
	if size > 1<<31 {
		d.fail("bad size")
	}
	e.size = uint32(size)
}

// replaceLocked takes the contents of f (which is not used afterwards).
func (c *catalog) replaceLocked(f *catalog) {
	c.head, c.byID, c.ordered, c.children, c.byNS, c.leafFill, c.strs = f.head, f.byID, f.ordered, f.children, f.byNS, f.leafFill, f.strs
}
