package gitstore

import (
	"fmt"
	"strings"

	"github.com/nexus-mem/nexus"
)

// trees reads tree objects through a cache keyed by object id. Tree objects
// are immutable, so a cached entry list is never stale; lists are never
// modified in place (updates copy the path they change).
type trees struct {
	repo  *repo
	cache map[Hash][]treeEntry
	max   int
}

// treeCacheMax bounds the tree cache between batches. A batch needs the
// trees on its paths from the root (seven per namespace and leaf), which
// the next batch rewrites, so the cache holds mostly superseded trees: a
// bound of 2^18 kept a map of up to 262,144 entry lists that every
// collection scanned, and BenchmarkPut_64 spent 0.70–0.96× the CPU per
// write with 2^12 (docs/BENCHMARKS.md, "Tree cache bound"). Reloading the
// few trees a batch needs after the cache empties costs a few µs every few
// hundred batches.
const treeCacheMax = 1 << 12

func newTrees(r *repo) *trees {
	return &trees{repo: r, cache: map[Hash][]treeEntry{}, max: treeCacheMax}
}

// load returns the entries of tree h; the zero hash is the empty tree.
func (t *trees) load(h Hash) ([]treeEntry, error) {
	if h.IsZero() {
		return nil, nil
	}
	if e, ok := t.cache[h]; ok {
		return e, nil
	}
	data, err := t.repo.readTyped(h, objTree)
	if err != nil {
		return nil, err
	}
	e, err := decodeTree(data)
	if err != nil {
		return nil, &CorruptError{Object: h, Err: err}
	}
	t.remember(h, e)
	return e, nil
}

func (t *trees) remember(h Hash, e []treeEntry) { t.cache[h] = e }

// trim empties the cache when it has grown past its bound. It is called
// between batches only: during a batch the cache holds trees that are not
// in any pack yet.
func (t *trees) trim() {
	if len(t.cache) >= t.max {
		clear(t.cache)
	}
}

// find returns the index of name in entries, or where it would go.
func find(entries []treeEntry, name string, dir bool) (int, bool) {
	lo, hi := 0, len(entries)
	for lo < hi {
		m := (lo + hi) / 2
		if entryLess(entries[m].name, entries[m].dir, name, dir) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(entries) && entries[lo].name == name && entries[lo].dir == dir
}

// insert returns the id of tree root with file name (blob) placed under
// dirs, writing every changed tree object to pw.
func (t *trees) insert(pw *packWriter, root Hash, dirs []string, name string, blob Hash) (Hash, error) {
	entries, err := t.load(root)
	if err != nil {
		return zeroHash, err
	}
	var e treeEntry
	if len(dirs) == 0 {
		e = treeEntry{name: name, hash: blob}
	} else {
		i, ok := find(entries, dirs[0], true)
		var child Hash
		if ok {
			child = entries[i].hash
		}
		sub, err := t.insert(pw, child, dirs[1:], name, blob)
		if err != nil {
			return zeroHash, err
		}
		e = treeEntry{name: dirs[0], dir: true, hash: sub}
	}
	next := setEntry(entries, e)
	data := encodeTree(pw.scratch[:0], next)
	pw.scratch = data
	h := pw.add(objTree, data)
	t.remember(h, next)
	return h, nil
}

// setEntry returns a copy of entries with e inserted or replaced.
func setEntry(entries []treeEntry, e treeEntry) []treeEntry {
	i, ok := find(entries, e.name, e.dir)
	out := make([]treeEntry, 0, len(entries)+1)
	out = append(out, entries[:i]...)
	out = append(out, e)
	if ok {
		i++
	}
	return append(out, entries[i:]...)
}

// fileChange is one context file added to or removed from the snapshot.
type fileChange struct {
	ns    string
	leaf  uint64
	id    nexus.ID
	blob  Hash
	added bool
}

// diff calls fn for every context file that differs between trees old and
// new, visiting only subtrees whose ids differ.
func (t *trees) diff(old, new Hash, fn func(fileChange) error) error {
	return t.diffAt(old, new, nil, fn)
}

func (t *trees) diffAt(old, new Hash, path []string, fn func(fileChange) error) error {
	if old == new {
		return nil
	}
	a, err := t.load(old)
	if err != nil {
		return err
	}
	b, err := t.load(new)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || i < len(a) && entryLess(a[i].name, a[i].dir, b[j].name, b[j].dir):
			err = t.visit(a[i], path, false, fn)
			i++
		case i >= len(a) || entryLess(b[j].name, b[j].dir, a[i].name, a[i].dir):
			err = t.visit(b[j], path, true, fn)
			j++
		default:
			if a[i].hash != b[j].hash {
				if a[i].dir {
					err = t.diffAt(a[i].hash, b[j].hash, append(path, a[i].name), fn)
				} else if err = t.visit(a[i], path, false, fn); err == nil {
					err = t.visit(b[j], path, true, fn)
				}
			}
			i, j = i+1, j+1
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// visit reports entry e (a whole subtree if it is a directory) as added or
// removed.
func (t *trees) visit(e treeEntry, path []string, added bool, fn func(fileChange) error) error {
	if e.dir {
		if added {
			return t.diffAt(zeroHash, e.hash, append(path, e.name), fn)
		}
		return t.diffAt(e.hash, zeroHash, append(path, e.name), fn)
	}
	fc, err := parseContextPath(path, e.name)
	if err != nil {
		return err
	}
	fc.blob, fc.added = e.hash, added
	return fn(fc)
}

// parseContextPath checks that a file sits where the layout puts contexts.
func parseContextPath(dirs []string, name string) (fileChange, error) {
	full := strings.Join(append(dirs[:len(dirs):len(dirs)], name), "/")
	if len(dirs) != 1+leafDigits {
		return fileChange{}, fmt.Errorf("unexpected file %s in the snapshot tree", full)
	}
	if err := nexus.ValidateNamespace(dirs[0]); err != nil {
		return fileChange{}, fmt.Errorf("file %s: %v", full, err)
	}
	leaf, err := parseShardDirs(dirs[1:])
	if err != nil {
		return fileChange{}, fmt.Errorf("file %s: %v", full, err)
	}
	idText, ok := strings.CutSuffix(name, fileExt)
	if !ok {
		return fileChange{}, fmt.Errorf("unexpected file %s in the snapshot tree", full)
	}
	id, err := nexus.ParseID(idText)
	if err != nil || id.String() != idText {
		return fileChange{}, fmt.Errorf("file %s is not named by a canonical context id", full)
	}
	return fileChange{ns: dirs[0], leaf: leaf, id: id}, nil
}
