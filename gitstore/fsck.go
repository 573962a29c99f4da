package gitstore

import (
	"bufio"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// ProblemKind names what a problem is about. Its text is the "kind" of
// a problem in JSON reports.
type ProblemKind string

// The kinds of problems. Each is either derived state (rebuilt from git:
// [ProblemKind.Derived]), repository damage (repaired from a backup or a
// mirror: [ProblemKind.Damage]), or a broken chain (marked, never
// repaired).
const (
	ProblemPack         ProblemKind = "pack"         // a pack file cannot be read or fails its checksum
	ProblemObject       ProblemKind = "object"       // an object is damaged or does not parse
	ProblemRef          ProblemKind = "ref"          // a ref is unreadable or names a missing commit
	ProblemReachability ProblemKind = "reachability" // an object a ref reaches is missing
	ProblemContext      ProblemKind = "context"      // a context file is malformed or misplaced
	ProblemChain        ProblemKind = "chain"        // a context's parent is missing: an orphan
	ProblemCatalog      ProblemKind = "catalog"      // the catalog disagrees with git
	ProblemCache        ProblemKind = "cache"        // L1 cache entries failed their checksum
	ProblemRepair       ProblemKind = "repair"       // a repair was tried and failed
)

// Derived reports whether the problem lies in state derived from git
// (the catalog, the L1 cache), which is repaired by rebuilding it from
// git: nothing is lost.
//
// A chain problem is not derived: an orphan's missing parent is a fact of
// the git history, which no rebuild changes. Nexus never relinks an
// orphan to another parent; it marks it on refs/nexus/orphans
// ([Store.MarkOrphans]) and the problem stays reported by every deep
// check.
func (k ProblemKind) Derived() bool {
	return k == ProblemCatalog || k == ProblemCache
}

// Damage reports whether the problem is damage to the repository itself
// (packs, objects, refs, context files), which only a backup or a mirror
// can repair ([Store.RepairFrom]).
func (k ProblemKind) Damage() bool {
	switch k {
	case ProblemPack, ProblemObject, ProblemRef, ProblemReachability, ProblemContext:
		return true
	}
	return false
}

// Problem is one finding of a check, named precisely enough to act on.
type Problem struct {
	Kind    ProblemKind `json:"kind"`
	Object  string      `json:"object,omitempty"` // object id or file
	Path    string      `json:"path,omitempty"`   // path in the snapshot, for contexts
	Message string      `json:"message"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.Object != "" {
		b.WriteString(" " + p.Object)
	}
	if p.Path != "" {
		b.WriteString(" (" + p.Path + ")")
	}
	return b.String() + ": " + p.Message
}

// FsckReport is the result of [Store.Fsck].
type FsckReport struct {
	Deep     bool          `json:"deep"`
	Head     string        `json:"head"`
	Packs    int           `json:"packs"`
	Objects  int           `json:"objects"`  // objects re-hashed (deep)
	Commits  int           `json:"commits"`  // commits walked on every ref (deep)
	Contexts int           `json:"contexts"` // context files checked (deep)
	Problems []Problem     `json:"problems"`
	Took     time.Duration `json:"took_ns"`
}

// Clean reports whether the check found nothing.
func (r *FsckReport) Clean() bool { return len(r.Problems) == 0 }

func (r *FsckReport) add(kind ProblemKind, object, path, format string, args ...any) {
	r.Problems = append(r.Problems, Problem{Kind: kind, Object: object, Path: path, Message: fmt.Sprintf(format, args...)})
}

// maxProblems bounds a report: past it, a store is damaged enough.
const maxProblems = 1000

// Fsck checks the repository and the catalog. The fast check (run at
// every open) reads the refs, the head commit and the catalog's head. The
// deep check also re-reads every pack (trailer checksum, CRC-32 of every
// entry, SHA-1 of every object), walks main's whole history and every
// snapshot tree (every object reachable, every context file well formed,
// at its path, with a valid semantic hash, its parent present in the same
// namespace), walks the side refs, verifies the L1 cache, and compares
// the catalog with a rebuild from git. Merges and writes go on while a
// deep check runs: it reads hard links to the packs it found.
func (s *Store) Fsck(ctx context.Context, deep bool) (*FsckReport, error) {
	start := time.Now()
	rep := &FsckReport{Deep: deep, Head: s.Head().String(), Problems: []Problem{}}
	s.checkRefs(rep)
	if deep {
		linked, err := s.checkPacksLinked(ctx, rep)
		if err != nil {
			return nil, err
		}
		if !linked {
			s.mergeMu.Lock()
			defer s.mergeMu.Unlock()
			s.repo.mu.RLock()
			packs := append([]*pack(nil), s.repo.packs...)
			s.repo.mu.RUnlock()
			rep.Packs = len(packs)
			for _, p := range packs {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				s.checkPack(rep, p)
			}
		}
		seen := newSeen()
		if err := s.walkMain(ctx, rep, seen); err != nil {
			return nil, err
		}
		if err := s.walkOtherRefs(ctx, rep, seen); err != nil {
			return nil, err
		}
		if n := s.cache.verifyAll(); n > 0 {
			rep.add(ProblemCache, "", "", "%d cache entries failed their checksum and were dropped", n)
		}
		if len(rep.Problems) == 0 {
			if err := s.VerifyCatalog(); err != nil {
				rep.add(ProblemCatalog, catalogFile, "", "%v", err)
			}
		}
	} else {
		s.repo.mu.RLock()
		rep.Packs = len(s.repo.packs)
		s.repo.mu.RUnlock()
	}
	rep.Took = time.Since(start)
	if deep {
		s.lastDeep.Store(rep)
		// Damage seen by reads until now is either in this report or gone.
		s.corruptSeen.Store(s.repo.corruptReads.Load())
	}
	return rep, nil
}

// damage returns the first problem of the last deep check that derived
// state cannot explain (repository damage) and that still holds, if any.
func (s *Store) damage() (*FsckReport, *Problem) {
	rep := s.lastDeep.Load()
	if rep == nil {
		return nil, nil
	}
	for i, p := range rep.Problems {
		if p.Kind.Damage() && !s.mainRefHealed(p) {
			return rep, &rep.Problems[i]
		}
	}
	return rep, nil
}

// mainRefHealed reports whether p says main is unreadable or names a
// commit that cannot be read, and main reads now and names a commit that
// reads. Main is one small file that every commit and the ref repair
// rewrite: a deep check that read it damaged may end after a commit or
// the repair rewrote it (and after the repair forgot what the previous
// check said of it), so what a check says of main is looked at again
// before it is acted on. Damage to the commit itself is also reported by
// the walk of main (reachability or object), which is not rechecked.
func (s *Store) mainRefHealed(p Problem) bool {
	if p.Kind != ProblemRef || p.Object != mainRef {
		return false
	}
	head, err := s.repo.readRef()
	if err != nil || head.IsZero() {
		return false
	}
	_, err = s.readCommit(head)
	return err == nil
}

// forgetProblems drops the problems of a kind (and, if object is not
// empty, of that object), now repaired, from the last deep check's report.
func (s *Store) forgetProblems(kind ProblemKind, object ...string) {
	for {
		rep := s.lastDeep.Load()
		if rep == nil {
			return
		}
		kept := *rep
		kept.Problems = make([]Problem, 0, len(rep.Problems))
		for _, p := range rep.Problems {
			if p.Kind != kind || (len(object) > 0 && p.Object != object[0]) {
				kept.Problems = append(kept.Problems, p)
			}
		}
		if len(kept.Problems) == len(rep.Problems) || s.lastDeep.CompareAndSwap(rep, &kept) {
			return
		}
	}
}

// catalogProblem returns the first catalog problem of the last deep check.
func (s *Store) catalogProblem() *Problem {
	if rep := s.lastDeep.Load(); rep != nil {
		for i, p := range rep.Problems {
			if p.Kind == ProblemCatalog {
				return &rep.Problems[i]
			}
		}
	}
	return nil
}

// checkRefs reads main and the side refs and the commits they name.
func (s *Store) checkRefs(rep *FsckReport) {
	// Under refMu main and the catalog's head are read at one moment: a
	// group commit moves both under it (two commits in a row, such as an
	// incident's records, would otherwise look like a disagreement).
	s.refMu.RLock()
	head, err := s.repo.readRef()
	s.cat.mu.RLock()
	catHead := s.cat.head
	s.cat.mu.RUnlock()
	s.refMu.RUnlock()
	if err != nil {
		rep.add(ProblemRef, mainRef, "", "%v", err)
		return
	}
	if !head.IsZero() {
		if _, err := s.readCommit(head); err != nil {
			rep.add(ProblemRef, mainRef, "", "points to %s, which cannot be read: %s", head, nexus.ErrorMessage(err))
		}
	}
	if catHead != head && s.failure() == nil {
		rep.add(ProblemCatalog, catalogFile, "", "reflects %s but main is at %s", catHead, head)
	}
}

// checkPack re-reads a whole pack: trailer checksum, its index in full
// (checksum, order of ids: an open checks only its structure), then every
// entry's CRC-32 and object id.
func (s *Store) checkPack(rep *FsckReport, p *pack) {
	// One pass in order over the pack, a window at a time: a merged pack
	// is up to hundreds of MB, which a check must not hold in memory.
	body := uint64(p.size) - 20
	if p.size < packHeaderLen+20 {
		rep.add(ProblemPack, p.name+".pack", "", "cannot be read: %d bytes is too short for a pack", p.size)
		return
	}
	sum := sha1.New()
	in := bufio.NewReaderSize(io.NewSectionReader(p.f, 0, int64(body)), 1<<20)
	pos := uint64(0)
	// advance hashes the bytes up to off.
	advance := func(off uint64) error {
		n, err := io.CopyN(sum, in, int64(off-pos))
		pos += uint64(n)
		return err
	}
	var raw []byte
	first := len(rep.Problems) // a damaged pack is reported before its entries, as it is the cause
	if err := p.idx.verify(); err != nil {
		rep.add(ProblemPack, p.name+".idx", "", "%v: the pack index is damaged", err)
	}
	ents := p.idx.byOffset()
	for i, e := range ents {
		end := body
		if i+1 < len(ents) {
			end = ents[i+1].offset
		}
		if err := checkBounds(e, end, body); err != nil {
			rep.add(ProblemObject, e.hash.String(), "", "%v", err)
			continue
		}
		raw = slices.Grow(raw[:0], int(end-e.offset))[:end-e.offset]
		var err error
		if e.offset >= pos {
			// The entries of a sound pack follow each other from the
			// header on; anything between them is hashed too.
			if err = advance(e.offset); err == nil {
				_, err = io.ReadFull(in, raw)
				sum.Write(raw)
				pos += uint64(len(raw))
			}
		} else {
			_, err = p.f.ReadAt(raw, int64(e.offset)) // entries that overlap: a damaged index
		}
		if err != nil {
			rep.add(ProblemPack, p.name+".pack", "", "cannot be read: %v", err)
			return
		}
		if err := checkCRC(p, e, raw); err != nil {
			rep.add(ProblemObject, e.hash.String(), "", "%v", err)
			continue
		}
		s.repo.mu.RLock()
		t, obj, err := p.readAt(int64(e.offset), func(b Hash) (objType, []byte, error) { return s.repo.readObjectLocked(b, 1) }, 0)
		s.repo.mu.RUnlock()
		switch {
		case err != nil:
			rep.add(ProblemObject, e.hash.String(), "", "in %s at offset %d: %v", p.name, e.offset, err)
		case hashObject(t, obj) != e.hash:
			rep.add(ProblemObject, e.hash.String(), "", "in %s at offset %d: content hashes to %s", p.name, e.offset, hashObject(t, obj))
		}
		rep.Objects++
		if len(rep.Problems) >= maxProblems {
			return
		}
	}
	var trailer Hash
	err := advance(body)
	if err == nil {
		_, err = p.f.ReadAt(trailer[:], int64(body))
	}
	if err != nil {
		rep.add(ProblemPack, p.name+".pack", "", "cannot be read: %v", err)
		return
	}
	if Hash(sum.Sum(nil)) != trailer {
		// Reported before the pack's entries: the first problem named.
		rep.Problems = slices.Insert(rep.Problems, first, Problem{Kind: ProblemPack, Object: p.name + ".pack", Message: "checksum mismatch: the pack is damaged"})
	}
}

// walkMain walks main's history and every tree of it once, checking that
// every object is there and every context file is sound.
func (s *Store) walkMain(ctx context.Context, rep *FsckReport, seen *seen) error {
	head, err := s.repo.readRef()
	if err != nil || head.IsZero() {
		return nil // reported by checkRefs, or an empty store
	}
	seenTree, seenBlob := seen.trees, seen.blobs
	for h := head; !h.IsZero(); {
		seen.commits[h] = true
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := s.repo.readTyped(h, objCommit)
		if err != nil {
			rep.add(ProblemReachability, h.String(), "", "commit on main: %v", err)
			return nil
		}
		cm, err := decodeCommit(data)
		if err != nil {
			rep.add(ProblemObject, h.String(), "", "commit on main does not parse: %v", err)
			return nil
		}
		rep.Commits++
		s.walkTree(rep, cm.tree, nil, seenTree, seenBlob)
		if len(rep.Problems) >= maxProblems {
			return nil
		}
		h = zeroHash
		if len(cm.parents) > 0 {
			h = cm.parents[0]
		}
	}
	s.checkChains(rep, head)
	return nil
}

// seen is what a deep check has walked already.
type seen struct{ commits, trees, blobs map[Hash]bool }

func newSeen() *seen { return &seen{map[Hash]bool{}, map[Hash]bool{}, map[Hash]bool{}} }

// walkOtherRefs walks the whole history of every ref but main (the side
// refs of derived data, the recovery refs of restores): every commit,
// tree and file must be there and intact. Objects main's walk checked are
// not read again.
func (s *Store) walkOtherRefs(ctx context.Context, rep *FsckReport, seen *seen) error {
	refs, err := s.repo.listRefs()
	if err != nil {
		rep.add(ProblemRef, "refs/", "", "cannot list the refs: %v", err)
		return nil
	}
	names := make([]string, 0, len(refs))
	for n := range refs {
		if n != mainRef {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		stack := []Hash{refs[name]}
		for len(stack) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			h := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen.commits[h] {
				continue
			}
			seen.commits[h] = true
			data, err := s.repo.readTyped(h, objCommit)
			if err != nil {
				rep.add(ProblemReachability, h.String(), name, "commit of %s: %v", name, err)
				continue
			}
			cm, err := decodeCommit(data)
			if err != nil {
				rep.add(ProblemObject, h.String(), name, "commit of %s does not parse: %v", name, err)
				continue
			}
			rep.Commits++
			s.walkObjects(rep, cm.tree, name, seen)
			stack = append(stack, cm.parents...)
			if len(rep.Problems) >= maxProblems {
				return nil
			}
		}
	}
	return nil
}

// walkObjects checks that a tree and everything under it are there and
// intact, without reading the files as contexts.
func (s *Store) walkObjects(rep *FsckReport, t Hash, ref string, seen *seen) {
	if seen.trees[t] {
		return
	}
	seen.trees[t] = true
	data, err := s.repo.readTyped(t, objTree)
	if err != nil {
		rep.add(ProblemReachability, t.String(), ref, "tree: %v", err)
		return
	}
	ents, err := decodeTree(data)
	if err != nil {
		rep.add(ProblemObject, t.String(), ref, "tree does not parse: %v", err)
		return
	}
	for _, e := range ents {
		if e.dir {
			s.walkObjects(rep, e.hash, ref, seen)
			continue
		}
		if seen.blobs[e.hash] {
			continue
		}
		seen.blobs[e.hash] = true
		if _, err := s.repo.readTyped(e.hash, objBlob); err != nil {
			rep.add(ProblemReachability, e.hash.String(), ref, "file %s: %v", e.name, err)
		}
	}
}

// walkTree checks a snapshot tree (dirs is its path) and what it holds.
func (s *Store) walkTree(rep *FsckReport, t Hash, dirs []string, seenTree, seenBlob map[Hash]bool) {
	if seenTree[t] {
		return
	}
	seenTree[t] = true
	path := strings.Join(dirs, "/")
	data, err := s.repo.readTyped(t, objTree)
	if err != nil {
		rep.add(ProblemReachability, t.String(), path, "tree: %v", err)
		return
	}
	ents, err := decodeTree(data)
	if err != nil {
		rep.add(ProblemObject, t.String(), path, "tree does not parse: %v", err)
		return
	}
	for _, e := range ents {
		if e.dir {
			s.walkTree(rep, e.hash, append(dirs[:len(dirs):len(dirs)], e.name), seenTree, seenBlob)
			continue
		}
		if seenBlob[e.hash] {
			continue
		}
		seenBlob[e.hash] = true
		s.checkContextFile(rep, dirs, e)
	}
}

// checkContextFile reads one context file and checks it against its path.
func (s *Store) checkContextFile(rep *FsckReport, dirs []string, e treeEntry) {
	path := strings.Join(append(dirs[:len(dirs):len(dirs)], e.name), "/")
	fc, err := parseContextPath(dirs, e.name)
	if err != nil {
		rep.add(ProblemContext, e.hash.String(), path, "%v", err)
		return
	}
	b, err := s.repo.readTyped(e.hash, objBlob)
	if err != nil {
		rep.add(ProblemReachability, e.hash.String(), path, "context file: %v", err)
		return
	}
	rep.Contexts++
	if b, err = s.unseal(b); err != nil {
		rep.add(ProblemContext, e.hash.String(), path, "%v", err)
		return
	}
	c, err := decodeContext(b)
	if err != nil {
		rep.add(ProblemContext, e.hash.String(), path, "%v", err)
		return
	}
	switch {
	case c.ID != fc.id:
		rep.add(ProblemContext, e.hash.String(), path, "file holds context %s", c.ID)
	case c.Namespace != dirs[0]:
		rep.add(ProblemContext, e.hash.String(), path, "context of namespace %q filed under %q", c.Namespace, dirs[0])
	default:
		if err := c.Verify(); err != nil {
			rep.add(ProblemContext, e.hash.String(), path, "%s", nexus.ErrorMessage(err))
		}
	}
}

// checkChains reports contexts of the head snapshot whose parent is not
// in it (orphans); they are reported, never relinked.
func (s *Store) checkChains(rep *FsckReport, head Hash) {
	s.cat.mu.RLock()
	defer s.cat.mu.RUnlock()
	if s.cat.head != head {
		return // a write moved on; the catalog check covers this state
	}
	for _, e := range s.cat.ordered {
		if e.parent.IsZero() {
			continue
		}
		p, ok := s.cat.byID[e.parent]
		switch {
		case !ok:
			rep.add(ProblemChain, e.id.String(), "", "parent %s is not in the store: the context is an orphan", e.parent)
		case p.ns != e.ns:
			rep.add(ProblemChain, e.id.String(), "", "parent %s is in namespace %q, not %q", e.parent, p.ns, e.ns)
		}
	}
}
