package gitstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// refLoad is the catalog of entries inserted one by one (addLocked), as
// loadCatalog did before it bulk-loaded the file.
func refLoad(head Hash, ents []*entry) *catalog {
	c := newCatalog()
	c.head = head
	for _, e := range ents {
		x := *e
		c.addLocked(&x)
	}
	return c
}

// sameIndexes fails unless a and b hold the same entries in every index.
func sameIndexes(t *testing.T, a, b *catalog) {
	t.Helper()
	if err := a.equal(b); err != nil {
		t.Fatal(err)
	}
	if len(a.byID) != len(b.byID) {
		t.Fatalf("id map: %d entries != %d", len(a.byID), len(b.byID))
	}
	for id, e := range a.byID {
		if f, ok := b.byID[id]; !ok || *f != *e {
			t.Fatalf("id map differs at %s", id)
		}
	}
	ids := func(l []*entry) []nexus.ID {
		out := make([]nexus.ID, len(l))
		for i, e := range l {
			out[i] = e.id
		}
		return out
	}
	for _, m := range [][2]map[nexus.ID][]*entry{{a.children, b.children}} {
		if len(m[0]) != len(m[1]) {
			t.Fatalf("children of %d parents != %d", len(m[0]), len(m[1]))
		}
		for p, l := range m[0] {
			if !slices.Equal(ids(l), ids(m[1][p])) {
				t.Fatalf("children of %s differ", p)
			}
		}
	}
	if len(a.byNS) != len(b.byNS) {
		t.Fatalf("%d namespaces != %d", len(a.byNS), len(b.byNS))
	}
	for ns, l := range a.byNS {
		if !slices.Equal(ids(l), ids(b.byNS[ns])) {
			t.Fatalf("namespace %s lists differ", ns)
		}
	}
	if !maps.Equal(a.leafFill, b.leafFill) {
		t.Fatalf("leaf fill %v != %v", a.leafFill, b.leafFill)
	}
}

// writeCatalog writes a catalog file of head and ents (in that order) to
// dir, with a valid checksum, and extra bytes before it.
func writeCatalog(t *testing.T, dir string, head Hash, count int, ents []*entry, extra []byte) {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(catalogMagic)
	buf.Write(head[:])
	buf.Write(binary.AppendUvarint(nil, uint64(count)))
	for _, e := range ents {
		encodeEntry(&buf, e)
	}
	buf.Write(extra)
	sum := sha256.Sum256(buf.Bytes())
	buf.Write(sum[:])
	if err := os.WriteFile(filepath.Join(dir, catalogFile), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The bulk load of catalog.bin builds the same catalog as inserting its
// entries one by one, in every index; a file whose entries are not in id
// order (not one save writes) loads the same; a valid checksum over bad
// contents (trailing data, a count the file cannot hold, a truncated
// entry, an over-long string) is reported damaged, and so is a bad
// checksum.
func TestLoadCatalog_BulkEqualsOneByOne(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	fill(t, s, &gen, &at, 3000, 500) // four namespaces, parents
	live := liveCatalog(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(live.ordered) != 3000 {
		t.Fatalf("%d contexts", len(live.ordered))
	}
	ref := refLoad(live.head, live.ordered)
	if len(ref.children) == 0 || len(ref.byNS) < 2 {
		t.Fatalf("the fill has %d parents and %d namespaces: it tests nothing", len(ref.children), len(ref.byNS))
	}
	if st, err := os.Stat(filepath.Join(dir, catalogFile)); err != nil || st.Size() < catReadBuf {
		t.Fatalf("catalog file of %v bytes (%v): it would be read in one buffer, not streamed", st.Size(), err)
	}
	got, err := loadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	sameIndexes(t, got, ref)

	work := t.TempDir()
	shuffled := slices.Clone(live.ordered)
	for i := range shuffled {
		j := (i * 7919) % len(shuffled)
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	writeCatalog(t, work, live.head, len(shuffled)+1, append(shuffled, shuffled[5]), nil) // one repeated
	if got, err = loadCatalog(work); err != nil {
		t.Fatalf("unordered entries: %v", err)
	}
	sameIndexes(t, got, ref)

	long := *live.ordered[0]
	long.agent = string(bytes.Repeat([]byte("a"), 1025))
	for name, write := range map[string]func(){
		"trailing data":  func() { writeCatalog(t, work, live.head, 10, live.ordered[:10], []byte{0}) },
		"count too high": func() { writeCatalog(t, work, live.head, 11, live.ordered[:10], nil) },
		"count too low":  func() { writeCatalog(t, work, live.head, 9, live.ordered[:10], nil) },
		"huge count":     func() { writeCatalog(t, work, live.head, 1<<40, live.ordered[:10], nil) },
		"long string":    func() { writeCatalog(t, work, live.head, 1, []*entry{&long}, nil) },
		"bad checksum": func() {
			writeCatalog(t, work, live.head, 10, live.ordered[:10], nil)
			p := filepath.Join(work, catalogFile)
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x20
			os.WriteFile(p, b, 0o600)
		},
	} {
		write()
		if c, err := loadCatalog(work); !errors.Is(err, errCatalogDamaged) {
			t.Errorf("%s: loaded (%v, %d entries), want damaged", name, err, catLen(c))
		}
	}
}

func catLen(c *catalog) int {
	if c == nil {
		return -1
	}
	return len(c.ordered)
}

// Whatever decodeCatalog accepts is a consistent catalog: ordered by id
// without repeats, every entry in the id map and in its namespace's list.
func FuzzDecodeCatalog(f *testing.F) {
	var buf bytes.Buffer
	buf.Write(make([]byte, 20))
	buf.Write(binary.AppendUvarint(nil, 2))
	for i := range 2 {
		encodeEntry(&buf, &entry{id: nexus.ID{byte(i)}, parent: nexus.ID{0}, ts: 5, ns: "default", typ: "memory", agent: "a", leaf: 1, size: 9})
	}
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCatalog(b)
		if err != nil {
			return
		}
		if len(c.byID) != len(c.ordered) {
			t.Fatalf("id map %d != ordered %d", len(c.byID), len(c.ordered))
		}
		n := 0
		for i, e := range c.ordered {
			if i > 0 && compareIDs(&c.ordered[i-1].id, &e.id) >= 0 {
				t.Fatal("not ordered")
			}
			if c.byID[e.id] != e {
				t.Fatal(fmt.Sprint("id map misses ", e.id))
			}
		}
		for _, l := range c.byNS {
			n += len(l)
		}
		if n != len(c.ordered) {
			t.Fatalf("namespace lists hold %d of %d", n, len(c.ordered))
		}
	})
}

// Close writes the catalog file only when the catalog moved since it was
// loaded or saved: a store opened and closed without a write leaves the
// very same file (a million contexts make a file of ≈ 90 MB), one that
// took a write replaces it with the new head's.
func TestClose_SavesCatalogOnlyIfMoved(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	fill(t, s, &gen, &at, 20, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, catalogFile)
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("a close without writes replaced the catalog file")
	}
	if s, err = Open(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	fill(t, s, &gen, &at, 1, 5)
	head := s.Head()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after, err = os.Stat(file); err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Fatal("a close after a write kept the old catalog file")
	}
	c, err := loadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.head != head || len(c.ordered) != 21 {
		t.Fatalf("saved catalog at %s with %d entries, want %s with 21", c.head, len(c.ordered), head)
	}
}
