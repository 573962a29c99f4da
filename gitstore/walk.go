package gitstore

import (
	"errors"
	"strings"
	"sync"

	"github.com/nexus-mem/nexus"
)

// errIrregular stops the level-by-level walk at anything outside the
// layout; the ordinary walk then gives the verdict.
var errIrregular = errors.New("tree outside the layout")

// walkNode is one tree to read: its id and its path.
type walkNode struct {
	hash Hash
	dirs []string
}

// allFiles lists every context file of the snapshot tree root, as
// trees.diff from the empty tree does and in its order. It reads the
// trees level by level, each level's trees through the packs in order on
// all cores (see packedRead); a tree outside the layout (a file above the
// leaf level, a directory below it, a name that does not parse) or any
// read error hands the whole walk to trees.diff, which reports it.
func (s *Store) allFiles(root Hash) ([]fileChange, error) {
	if files, err := s.walkLevels(root); err == nil {
		return files, nil
	}
	var files []fileChange
	err := newTrees(s.repo).diff(zeroHash, root, func(fc fileChange) error {
		files = append(files, fc)
		return nil
	})
	return files, err
}

func (s *Store) walkLevels(root Hash) ([]fileChange, error) {
	if root.IsZero() {
		return nil, nil
	}
	level := []walkNode{{hash: root}}
	for depth := 0; ; depth++ {
		hashes := make([]Hash, len(level))
		for i, n := range level {
			hashes[i] = n.hash
		}
		trees := make([][]treeEntry, len(level))
		var mu sync.Mutex
		var failed error
		fail := func(err error) {
			mu.Lock()
			failed = err
			mu.Unlock()
		}
		s.packedRead(hashes, objTree, func(_ *packReader, i int, data []byte) bool {
			t, err := decodeTree(data)
			trees[i] = t
			return err == nil
		}, func(i int) {
			data, err := s.repo.readTyped(hashes[i], objTree)
			if err == nil {
				trees[i], err = decodeTree(data)
			}
			if err != nil {
				fail(err)
			}
		})
		if failed != nil {
			return nil, failed
		}
		if depth == 1+leafDigits {
			return leafFiles(level, trees)
		}
		var next []walkNode
		for i, n := range level {
			for _, e := range trees[i] {
				if !e.dir {
					return nil, errIrregular
				}
				dirs := append(n.dirs[:len(n.dirs):len(n.dirs)], e.name)
				next = append(next, walkNode{hash: e.hash, dirs: dirs})
			}
		}
		if len(next) == 0 {
			return nil, nil
		}
		level = next
	}
}

// leafFiles lists the files of the leaf trees, in order. The directory
// part of each path is checked once per tree (as parseContextPath does),
// then only the names.
func leafFiles(level []walkNode, trees [][]treeEntry) ([]fileChange, error) {
	n := 0
	for _, t := range trees {
		n += len(t)
	}
	files := make([]fileChange, 0, n)
	for i, n := range level {
		if len(trees[i]) == 0 {
			continue
		}
		base, err := parseContextPath(n.dirs, trees[i][0].name)
		if err != nil {
			return nil, errIrregular
		}
		for _, e := range trees[i] {
			if e.dir {
				return nil, errIrregular
			}
			idText, ok := strings.CutSuffix(e.name, fileExt)
			if !ok {
				return nil, errIrregular
			}
			id, err := nexus.ParseID(idText)
			if err != nil || id.String() != idText {
				return nil, errIrregular
			}
			files = append(files, fileChange{ns: base.ns, leaf: base.leaf, id: id, blob: e.hash, added: true})
		}
	}
	return files, nil
}
