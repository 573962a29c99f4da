package gitstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// refBuild builds a catalog of head the way it was built before the packed
// read path: one walk of the tree diff from the empty tree, each blob read
// by id through the index and decoded in full, each entry inserted one by
// one. The tests compare against it; BenchmarkCatalogRebuild measures it as
// the baseline.
func refBuild(s *Store, head Hash) (*catalog, error) {
	root, err := s.rootTree(head)
	if err != nil {
		return nil, err
	}
	var added []fileChange
	if err := newTrees(s.repo).diff(zeroHash, root, func(fc fileChange) error {
		added = append(added, fc)
		return nil
	}); err != nil {
		return nil, err
	}
	fresh := &Store{repo: s.repo, cat: newCatalog(), opts: s.opts}
	fresh.keys.Store(s.keys.Load())
	fresh.opts.Progress = nil
	ents, err := fresh.readEntries(added)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		fresh.cat.addLocked(e)
	}
	fresh.cat.head = head
	return fresh.cat, nil
}

// sameCatalog says how a and b differ in any field the catalog keeps: the
// head, every entry in id order, the id map, every namespace list and
// child list in order, and each namespace's leaf fill.
func sameCatalog(a, b *catalog) error {
	if a.head != b.head {
		return fmt.Errorf("head %s != %s", a.head, b.head)
	}
	sameList := func(what string, x, y []*entry) error {
		if len(x) != len(y) {
			return fmt.Errorf("%s: %d entries != %d", what, len(x), len(y))
		}
		for i := range x {
			if *x[i] != *y[i] {
				return fmt.Errorf("%s: entry %d differs: %+v != %+v", what, i, *x[i], *y[i])
			}
		}
		return nil
	}
	if err := sameList("ordered", a.ordered, b.ordered); err != nil {
		return err
	}
	if len(a.byID) != len(b.byID) || len(a.byID) != len(a.ordered) {
		return fmt.Errorf("byID: %d and %d ids for %d entries", len(a.byID), len(b.byID), len(a.ordered))
	}
	for _, e := range a.ordered {
		if x, y := a.byID[e.id], b.byID[e.id]; x != e || y == nil || *y != *e {
			return fmt.Errorf("byID[%s] differs", e.id)
		}
	}
	for _, m := range []struct {
		what string
		x, y map[string][]*entry
	}{{"byNS", a.byNS, b.byNS}} {
		if !slices.Equal(slices.Sorted(maps.Keys(m.x)), slices.Sorted(maps.Keys(m.y))) {
			return fmt.Errorf("%s: namespaces %v != %v", m.what, slices.Sorted(maps.Keys(m.x)), slices.Sorted(maps.Keys(m.y)))
		}
		for k := range m.x {
			if err := sameList(m.what+" "+k, m.x[k], m.y[k]); err != nil {
				return err
			}
		}
	}
	if len(a.children) != len(b.children) {
		// An empty list may stay behind a removal; compare non-empty ones.
		if n, m := nonEmpty(a.children), nonEmpty(b.children); n != m {
			return fmt.Errorf("children: %d parents != %d", n, m)
		}
	}
	for k, x := range a.children {
		if err := sameList("children of "+k.String(), x, b.children[k]); err != nil {
			return err
		}
	}
	if !maps.Equal(a.leafFill, b.leafFill) {
		return fmt.Errorf("leafFill %v != %v", a.leafFill, b.leafFill)
	}
	return nil
}

func nonEmpty(m map[nexus.ID][]*entry) int {
	n := 0
	for _, v := range m {
		if len(v) > 0 {
			n++
		}
	}
	return n
}

// liveCatalog copies s's catalog (what the writer built) under its lock.
func liveCatalog(s *Store) *catalog {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	c := newCatalog()
	c.head = s.cat.head
	for _, e := range s.cat.ordered {
		c.ordered = append(c.ordered, e)
		c.byID[e.id] = e
	}
	for k, v := range s.cat.byNS {
		c.byNS[k] = slices.Clone(v)
	}
	for k, v := range s.cat.children {
		c.children[k] = slices.Clone(v)
	}
	maps.Copy(c.leafFill, s.cat.leafFill)
	return c
}

// fill writes n contexts through Apply in batches of batch, spread over
// namespaces, about a third of them children of an earlier context of
// their namespace, some with strings the quick scan leaves to the full
// decoder (escapes in kept strings).
func fill(t testing.TB, s *Store, gen *nexus.IDGenerator, at *time.Time, n, batch int) {
	t.Helper()
	nss := []string{"default", "team-a", "ops.x", "b"}
	last := map[string][]nexus.ID{}
	for done := 0; done < n; {
		var cs []*nexus.Context
		for i := 0; i < batch && done+i < n; i++ {
			*at = at.Add(time.Microsecond)
			k := done + i
			ns := nss[k%len(nss)]
			c := &nexus.Context{ID: gen.New(*at), Namespace: ns, Type: nexus.TypeObservation, AgentID: "fill", Timestamp: *at,
				Content: fmt.Sprintf("context %d", k), Metadata: json.RawMessage(`{"k":1}`)}
			switch k % 7 {
			case 1:
				c.AgentID = "worker-7@x/y+z"
				c.Content = "quote \" backslash \\ é \u2028 <b>"
			case 2:
				c.AgentID = "a.b:c_d"
				c.Type = nexus.TypeMemory
				m, err := nexus.CanonicalMetadata(json.RawMessage(`{"a":[1,-2.5e3,true,null,{"s":"\u00e9 \"q\""}]}`))
				if err != nil {
					t.Fatal(err)
				}
				c.Metadata = m
			}
			if ids := last[ns]; len(ids) > 0 && k%3 == 0 {
				c.ParentID = ids[(k/3)%len(ids)]
			}
			c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
			cs = append(cs, c)
		}
		if _, err := s.Apply(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			last[c.Namespace] = append(last[c.Namespace], c.ID)
		}
		done += len(cs)
	}
}

func runGit(t testing.TB, gitDir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// checkRebuilds asserts that every way of building s's catalog from git
// gives exactly the writer's catalog: the rebuild (buildCatalog, used by
// fsck, repair, restore and replicas) and the reference build.
func checkRebuilds(t *testing.T, s *Store, what string) {
	t.Helper()
	live := liveCatalog(s)
	ref, err := refBuild(s, live.head)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameCatalog(live, ref); err != nil {
		t.Fatalf("%s: the reference build differs from the writer's catalog: %v", what, err)
	}
	fresh, err := s.buildCatalog(live.head)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameCatalog(live, fresh); err != nil {
		t.Fatalf("%s: the rebuild differs from the writer's catalog: %v", what, err)
	}
}

// openFresh opens dir with its catalog file deleted (a rebuild at start)
// and checks the result against the reference build.
func openFresh(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, catalogFile)); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := refBuild(s, s.Head())
	if err != nil {
		t.Fatal(err)
	}
	if err := sameCatalog(liveCatalog(s), ref); err != nil {
		t.Fatalf("catalog rebuilt at start differs from the reference build: %v", err)
	}
	return s
}

// The catalog rebuilt from git equals the one the writer built, field for
// field: after group commits over several namespaces and pack merges,
// after a restore (contexts removed), at start with the catalog file
// deleted or behind (a catch-up), and after stock git removed one file,
// rewrote another, made a merge commit and repacked everything with
// deltas.
func TestRebuild_EqualsWriter(t *testing.T) {
	dir := t.TempDir()
	opts := Options{MergePacks: 2}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	fill(t, s, &gen, &at, 2000, 300)
	mid := at
	fill(t, s, &gen, &at, 4000, 700) // past bulkAdd: the bulk insert path
	// Merge what the background merger has not merged yet, so that the
	// packs read below include merged ones.
	for {
		merged, err := s.mergeOnce()
		if err != nil {
			t.Fatal(err)
		}
		if !merged {
			break
		}
	}
	s.repo.mu.RLock()
	npacks := len(s.repo.packs)
	s.repo.mu.RUnlock()
	if npacks >= 13 {
		t.Fatalf("%d packs after 13 group commits: nothing merged", npacks)
	}
	checkRebuilds(t, s, "after writes")

	plan, err := s.RestoreTo(context.Background(), mid, false)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Kept != 2000 || plan.RolledBack != 4000 {
		t.Fatalf("restore: %+v", plan)
	}
	checkRebuilds(t, s, "after a restore")
	fill(t, s, &gen, &at, 1500, 500)
	checkRebuilds(t, s, "after writes past the restore")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	behind, err := os.ReadFile(filepath.Join(dir, catalogFile))
	if err != nil {
		t.Fatal(err)
	}

	s = openFresh(t, dir, opts)
	fill(t, s, &gen, &at, 3000, 1000)
	s.Close()
	// A catalog 3,000 contexts behind: caught up by a diff.
	if err := writeFileDurable(dir, catalogFile, behind); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 6500 {
		t.Fatalf("caught up to %d contexts, want 6500", s.Len())
	}
	checkRebuilds(t, s, "after a catch-up")
	head := s.Head()
	var removed, rewritten *entry
	for _, e := range s.cat.ordered {
		switch {
		case removed == nil && e.ns == "team-a" && len(s.cat.children[e.id]) > 0:
			removed = e
		case rewritten == nil && e.ns == "ops.x" && !e.parent.IsZero():
			rewritten = e
		}
	}
	s.Close()

	// Stock git: remove a parent, rewrite a child, merge, repack with deltas.
	gitDir := filepath.Join(dir, "repo.git")
	env := []string{"GIT_INDEX_FILE=" + filepath.Join(t.TempDir(), "index"),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@x", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@x"}
	pathOf := func(e *entry) string {
		return e.ns + "/" + strings.Join(shardDirs(e.leaf), "/") + "/" + e.id.String() + fileExt
	}
	runGit(t, gitDir, env, "read-tree", "main")
	runGit(t, gitDir, env, "rm", "--cached", "-q", pathOf(removed))
	var c nexus.Context
	if err := json.Unmarshal([]byte(runGit(t, gitDir, env, "cat-file", "blob", rewritten.blob.String())), &c); err != nil {
		t.Fatal(err)
	}
	// Not as the store spells it: keys reordered, spaces, an escape in a
	// kept string. The quick scan declines it; the full decoder reads it.
	b := fmt.Appendf(nil, "{ \"agent_id\" : \"someone\\u002delse\", \"id\": %q, \"namespace\": %q, \"type\": %q,\n"+
		"\"parent_id\": %q, \"timestamp\": %q, \"semantic_hash\": %q, \"metadata\": %s, \"content\": \"rewritten by git\" }\n",
		c.ID, c.Namespace, c.Type, c.ParentID, c.Timestamp.Format(time.RFC3339Nano), c.SemanticHash, c.Metadata)
	if _, ok := scanContext(b); ok {
		t.Fatalf("the quick scan accepted %s", b)
	}
	blobFile := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(blobFile, b, 0o600)
	blob := runGit(t, gitDir, env, "hash-object", "-w", blobFile)
	runGit(t, gitDir, env, "update-index", "--cacheinfo", "100644,"+blob+","+pathOf(rewritten))
	tree := runGit(t, gitDir, env, "write-tree")
	old := runGit(t, gitDir, env, "rev-parse", "main~3")
	commit := runGit(t, gitDir, env, "commit-tree", tree, "-p", "main", "-p", old, "-m", "edit by git")
	runGit(t, gitDir, env, "update-ref", "refs/heads/main", commit, head.String())
	runGit(t, gitDir, env, "repack", "-a", "-d", "-f", "--window=50", "--depth=20")
	runGit(t, gitDir, env, "fsck", "--strict")
	idxs, err := filepath.Glob(filepath.Join(gitDir, "objects", "pack", "*.idx"))
	if err != nil || len(idxs) != 1 {
		t.Fatalf("after git repack: %v %v", idxs, err)
	}
	if deltas := runGit(t, gitDir, env, "verify-pack", "-v", idxs[0]); !strings.Contains(deltas, "chain length") {
		t.Fatalf("git repack made no deltas:\n%.500s", deltas)
	}

	s = openFresh(t, dir, opts)
	defer s.Close()
	if s.Len() != 6499 {
		t.Fatalf("%d contexts after git removed one, want 6499", s.Len())
	}
	if _, ok := s.cat.get(removed.id); ok {
		t.Fatal("the context git removed is still in the catalog")
	}
	if e, ok := s.cat.get(rewritten.id); !ok || e.agent != "someone-else" || e.blob.String() != blob {
		t.Fatalf("the context git rewrote: %+v", e)
	}
	checkRebuilds(t, s, "after git edited and repacked")
}

// A damaged pack makes the rebuild fail with an error naming the damaged
// object, whether the damage is found by the packed read or by the walk;
// a missing pack makes it fail naming a missing object. No catalog is
// built or saved from a damaged repository.
func TestRebuild_DamagedOrMissingPack(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 100})
	if err != nil {
		t.Fatal(err)
	}
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	fill(t, s, &gen, &at, 1000, 500)
	fill(t, s, &gen, &at, 1000, 1000)
	head := s.Head()
	s.repo.mu.RLock()
	packs := slices.Clone(s.repo.packs)
	s.repo.mu.RUnlock()
	// The blob in the middle of the pack holding most.
	var older *pack
	var blobs []packEntry
	for _, p := range packs {
		var in []packEntry
		for _, pe := range p.idx.byOffset() {
			var hdr [1]byte
			p.f.ReadAt(hdr[:], int64(pe.offset))
			if objType(hdr[0]>>4&7) == objBlob {
				in = append(in, pe)
			}
		}
		if len(in) > len(blobs) {
			older, blobs = p, in
		}
	}
	if len(blobs) < 500 {
		t.Fatalf("the largest pack holds %d blobs", len(blobs))
	}
	victim := blobs[len(blobs)/2]
	path := filepath.Join(s.repo.packDir, older.name+".pack")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := slices.Clone(orig)
	damaged[victim.offset+8] ^= 0x40
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.buildCatalog(head)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Object != victim.hash {
		t.Fatalf("rebuild over a damaged blob: %v, want a CorruptError for %s", err, victim.hash)
	}
	if err := s.RebuildCatalog(); !errors.As(err, &ce) {
		t.Fatalf("RebuildCatalog over a damaged blob: %v", err)
	}
	if err := sameCatalog(liveCatalog(s), liveCatalog(s)); err != nil || s.Len() != 2000 {
		t.Fatalf("the live catalog changed: %d contexts", s.Len())
	}
	s.Close()
	if err := os.Remove(filepath.Join(dir, catalogFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.As(err, &ce) || ce.Object != victim.hash || nexus.ErrorCode(err) != nexus.EUnavailable {
		t.Fatalf("open over a damaged blob: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, catalogFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a catalog was saved from a damaged repository: %v", err)
	}

	// A damaged tree: the level walk hands over to the tree diff, which
	// reports it.
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := s.rootTree(head)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, p := range packs {
		if off, ok := p.idx.find(root); ok {
			path = filepath.Join(s.repo.packDir, p.name+".pack")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[off+30] ^= 0x01 // inside the stored (level 0) tree data
			os.WriteFile(path, b, 0o600)
		}
	}
	os.Remove(filepath.Join(dir, catalogFile))
	if _, err := Open(dir, Options{}); !errors.As(err, &ce) || ce.Object != root {
		t.Fatalf("open over a damaged root tree: %v, want a CorruptError for %s", err, root)
	}

	// A pack gone (its index then goes too, as an orphan): objects missing.
	dir2 := t.TempDir()
	s, err = Open(dir2, Options{MergePacks: 100})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, s, &gen, &at, 600, 300)
	fill(t, s, &gen, &at, 600, 600)
	s.repo.mu.RLock()
	gone := s.repo.packs[0]
	for _, p := range s.repo.packs {
		if p.count > gone.count {
			gone = p
		}
	}
	s.repo.mu.RUnlock()
	s.Close()
	os.Remove(filepath.Join(dir2, catalogFile))
	if err := os.Remove(filepath.Join(dir2, "repo.git", "objects", "pack", gone.name+".pack")); err != nil {
		t.Fatal(err)
	}
	var me *MissingError
	if _, err := Open(dir2, Options{}); !errors.As(err, &me) {
		t.Fatalf("open with a pack gone: %v, want a MissingError", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, catalogFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a catalog was saved with a pack gone: %v", err)
	}
}

// testPack writes objs as a pack (as the store writes packs) to a file in
// dir and opens it.
func testPack(t testing.TB, dir string, objs [][]byte, types []objType) (*pack, []Hash) {
	t.Helper()
	pw := newPackWriter()
	var hs []Hash
	for i, o := range objs {
		hs = append(hs, pw.add(types[i], o))
	}
	data, idx := pw.finish()
	name := "pack-" + idx.packSum().String()
	if err := os.WriteFile(filepath.Join(dir, name+".pack"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := openPack(dir, name, idx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.f.Close() })
	return p, hs
}

// Every whole object of a pack the store wrote is read by the packed path
// (none handed to the slow path), across window boundaries and for an
// object larger than a window, with the bytes the ordinary reader gives.
func TestPackedRead_AllFast(t *testing.T) {
	dir := t.TempDir()
	s := &Store{repo: &repo{packDir: dir}}
	var objs [][]byte
	var types []objType
	seed := uint64(1)
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			seed = seed*6364136223846793005 + 1442695040888963407
			b[i] = byte(seed >> 56)
		}
		return b
	}
	for i := range 3000 {
		objs, types = append(objs, rnd(200+i%1500)), append(types, objBlob) // incompressible: 2.5 MB in all
	}
	objs, types = append(objs, rnd(readWindow+readWindow/2)), append(types, objBlob)
	objs, types = append(objs, []byte("a tree? no, a commit")), append(types, objCommit)
	p, hs := testPack(t, dir, objs, types)
	s.repo.packs = []*pack{p}
	got := make([][]byte, len(hs))
	slow := 0
	s.packedRead(hs, objBlob, func(_ *packReader, i int, data []byte) bool {
		got[i] = slices.Clone(data)
		return true
	}, func(i int) {
		if types[i] == objBlob {
			slow++
		}
	})
	if slow != 0 {
		t.Fatalf("%d whole blobs went to the slow path", slow)
	}
	for i, o := range objs {
		if types[i] == objBlob && !slices.Equal(got[i], o) {
			t.Fatalf("object %d: read %d bytes, want %d", i, len(got[i]), len(o))
		}
		if types[i] != objBlob && got[i] != nil {
			t.Fatalf("object %d of type %s handled as a blob", i, types[i])
		}
	}
}

// FuzzPackRead: whatever the pack's bytes, the packed reader never panics,
// and when it returns an object (stored whole or as a delta, resolved by
// the packed reader) it is the object the ordinary reader returns and
// hashes to its id.
func FuzzPackRead(f *testing.F) {
	objs := [][]byte{[]byte("first blob"), []byte(strings.Repeat("compressible ", 300)), encodeTree(nil, []treeEntry{{name: "a", dir: true}, {name: "b.json"}}), []byte("last")}
	types := []objType{objBlob, objBlob, objTree, objBlob}
	// Then two OFS_DELTA entries: one against the second blob, one
	// against that delta (a chain the packed reader resolves itself).
	pw := newPackWriter()
	var hs []Hash
	var offs []uint64
	for i, o := range objs {
		h, off, _ := pw.addAt(types[i], o)
		hs, offs = append(hs, h), append(offs, off)
	}
	var enc deltaEncoder
	for _, base := range []int{1, 4} {
		target := append([]byte("changed "), objs[base][8:]...)
		h := hashObject(objBlob, target)
		offs = append(offs, pw.addDelta(h, offs[base], enc.encode(nil, objs[base], target)))
		objs, types, hs = append(objs, target), append(types, objBlob), append(hs, h)
	}
	data, idx := pw.finish()
	good := data
	f.Add(good)
	f.Add(good[:len(good)-30])
	f.Add(slices.Concat(good[:40], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, good[40:]))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < packHeaderLen+20 {
			return
		}
		path := filepath.Join(t.TempDir(), "fuzz.pack")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		fp := &pack{name: "fuzz", f: fh, idx: idx, size: int64(len(b))}
		w := newPackReader(nil)
		for i, h := range hs {
			off, ok := idx.find(h)
			if !ok {
				t.Fatalf("object %d not in the index", i)
			}
			data, ok := w.read(fp, off, types[i], &h)
			if !ok {
				if slices.Equal(b, good) {
					t.Fatalf("object %d of the intact pack not read", i)
				}
				continue
			}
			if hashObject(types[i], data) != h {
				t.Fatalf("object %d: read content that does not hash to its id", i)
			}
			typ, want, err := fp.readAt(int64(off), nil, 0)
			if err != nil || typ != types[i] || !slices.Equal(data, want) {
				t.Fatalf("object %d: the packed reader gives %d bytes, the ordinary reader %s %d bytes, %v", i, len(data), typ, len(want), err)
			}
		}
	})
}

// storedAs returns the type of h's entry in the first pack holding it (the
// one reads use) and its offset there.
func storedAs(t *testing.T, s *Store, h Hash) (objType, *pack, uint64) {
	t.Helper()
	s.repo.mu.RLock()
	defer s.repo.mu.RUnlock()
	for _, p := range s.repo.packs {
		if off, ok := p.idx.find(h); ok {
			var hdr [1]byte
			if _, err := p.f.ReadAt(hdr[:], int64(off)); err != nil {
				t.Fatal(err)
			}
			return objType(hdr[0] >> 4 & 7), p, off
		}
	}
	t.Fatalf("%s in no pack", h)
	return 0, nil, 0
}

// On a store whose packs were merged with deltas (blobs against keyframes,
// trees against other versions of their path), the packed read resolves
// every delta entry itself, none going to the ordinary reader, with the
// bytes the ordinary reader gives; the rebuild equals the writer's
// catalog. A damaged delta makes the rebuild fail with an error naming
// the object.
func TestRebuild_MergedDeltas(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MergePacks: 1 << 20}) // merged below, all six packs at once
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	var gen nexus.IDGenerator
	at := time.Now().Add(-time.Hour)
	fill(t, s, &gen, &at, 1500, 500)
	older := s.Head()
	fill(t, s, &gen, &at, 1500, 500)
	// One merge of the six group commits (a tier of fan-in 6), so the
	// older snapshot's trees are deltas against the newer ones.
	s.mergeMu.Lock()
	err = s.merge(s.allPacks())
	s.mergeMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.allPacks()); n != 1 {
		t.Fatalf("%d packs after merging", n)
	}
	checkRebuilds(t, s, "after merges with deltas")
	// An older snapshot: its trees are older versions, stored as deltas
	// against the newer ones.
	ref, err := refBuild(s, older)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.buildCatalog(older); err != nil || len(c.ordered) != 1500 {
		t.Fatalf("rebuild of the older snapshot: %v", err)
	} else if err := sameCatalog(ref, c); err != nil {
		t.Fatalf("rebuild of the older snapshot differs from the reference build: %v", err)
	}

	// Every context blob, and every tree of both snapshots.
	var blobs []Hash
	for _, e := range liveCatalog(s).ordered {
		blobs = append(blobs, e.blob)
	}
	var trees []Hash
	for _, head := range []Hash{older, s.Head()} {
		root, err := s.rootTree(head)
		if err != nil {
			t.Fatal(err)
		}
		trees = append(trees, root)
	}
	for i := 0; i < len(trees); i++ {
		data, err := s.repo.readTyped(trees[i], objTree)
		if err != nil {
			t.Fatal(err)
		}
		ents, err := decodeTree(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.dir {
				trees = append(trees, e.hash)
			}
		}
	}
	for _, c := range []struct {
		what   string
		typ    objType
		hashes []Hash
	}{{"blobs", objBlob, blobs}, {"trees", objTree, trees}} {
		want := 0
		for _, h := range c.hashes {
			if typ, _, _ := storedAs(t, s, h); typ == objOfsDelta {
				want++
			}
		}
		if want == 0 || c.typ == objBlob && want < len(c.hashes)/2 {
			t.Fatalf("%s: %d of %d stored as deltas: the merges made few deltas", c.what, want, len(c.hashes))
		}
		got := make([][]byte, len(c.hashes))
		var slow []int
		var mu sync.Mutex
		deltas := s.packedRead(c.hashes, c.typ, func(_ *packReader, i int, data []byte) bool {
			got[i] = slices.Clone(data)
			return true
		}, func(i int) {
			mu.Lock()
			slow = append(slow, i)
			mu.Unlock()
		})
		if len(slow) != 0 || deltas != want {
			t.Fatalf("%s: %d of %d delta entries read by the packed path, %d objects handed to the ordinary reader", c.what, deltas, want, len(slow))
		}
		for i, h := range c.hashes {
			data, err := s.repo.readTyped(h, c.typ)
			if err != nil || !slices.Equal(got[i], data) {
				t.Fatalf("%s: %s read as %d bytes, the ordinary reader gives %d bytes, %v", c.what, h, len(got[i]), len(data), err)
			}
		}
	}

	// A damaged delta: a blob that is not a keyframe (no delta is made
	// against it), its zlib data changed.
	var victim Hash
	var vp *pack
	var voff uint64
	for _, h := range blobs[len(blobs)/2:] {
		if typ, p, off := storedAs(t, s, h); typ == objOfsDelta {
			victim, vp, voff = h, p, off
			break
		}
	}
	if vp == nil {
		t.Fatal("no blob stored as a delta")
	}
	path := filepath.Join(s.repo.packDir, vp.name+".pack")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := voff
	for b[i]&0x80 != 0 { // the type and size
		i++
	}
	for i++; b[i]&0x80 != 0; i++ { // the base offset
	}
	b[i+1+6] ^= 0x10 // past the zlib header, in the deflate data
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := s.buildCatalog(s.Head())
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Object != victim || c != nil {
		t.Fatalf("rebuild over a damaged delta: %v (catalog %v), want a CorruptError for %s", err, c != nil, victim)
	}
}

// sortWanted gives the order of one sort by id, on any number of cores,
// for uniform ids and for ids that all share their first bits.
func TestSortWanted(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 1000, 1 << 14, 100000} {
		for _, skew := range []byte{0xff, 0x1f, 0x00} {
			p := make([]wantedID, n)
			for i := range p {
				for j := range p[i].h {
					p[i].h[j] = byte(r.Uint32())
				}
				p[i].h[0] &= skew
				if i%7 == 3 && i > 0 {
					p[i].h = p[i-1].h // duplicates keep some order between them
				}
				p[i].i = i
			}
			want := slices.Clone(p)
			slices.SortFunc(want, func(a, b wantedID) int { return compareHash(&a.h, &b.h) })
			for _, ways := range []int{1, 2, 3, 8} {
				got := slices.Clone(p)
				sortWanted(got, ways, 0)
				for i := range got {
					if got[i].h != want[i].h {
						t.Fatalf("%d ids (first byte & %#x), %d ways: id %d out of order", n, skew, ways, i)
					}
				}
			}
		}
	}
}
