package gitstore

import (
	"context"
	"slices"
	"strings"

	"github.com/nexus-mem/nexus"
)

// Side refs keep derived data that is worth storing in git beside the
// journal, such as the embeddings of a model, under refs/nexus/<name>.
// A side ref is a log: each append is one commit whose tree holds the
// files of that append only, parented on the previous append, and readers
// walk its history. Appends go through the single writer, in their own
// pack, and never touch main.
const sidePrefix = "refs/nexus/"

// sideWrite is an append to a side ref.
type sideWrite struct {
	name    string
	files   map[string][]byte
	message string
	replace bool // a commit without parent: the ref's history is dropped
	// cut, with no files, records that the history above base was lost:
	// the commit's parent is base (none when zero), not the ref's tip.
	cut  bool
	base Hash
}

// ValidSideName checks a side ref name: slash-separated segments of
// lowercase letters, digits, '.', '_' and '-', none starting with '.' or
// ending in ".lock", at most 200 bytes.
func ValidSideName(name string) error {
	if name == "" || len(name) > 200 {
		return nexus.Errorf(nexus.EInvalid, "side ref name must be 1-200 bytes")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg[0] == '.' || strings.HasSuffix(seg, ".lock") || strings.HasPrefix(seg, "tmp_") {
			return nexus.Errorf(nexus.EInvalid, "side ref name %q has an invalid segment %q", name, seg)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return nexus.Errorf(nexus.EInvalid, "side ref name %q: %q is not allowed", name, c)
			}
		}
	}
	return nil
}

// AppendSide durably appends one commit holding files (name → content;
// plain names, no directories) to the side ref name, and returns it.
func (s *Store) AppendSide(ctx context.Context, name string, files map[string][]byte, message string) (Hash, error) {
	if err := ValidSideName(name); err != nil {
		return zeroHash, err
	}
	if name == KeysRef {
		return zeroHash, nexus.Errorf(nexus.EInvalid, "side ref %q is reserved for the key ring", name)
	}
	if len(files) == 0 {
		return zeroHash, nexus.Errorf(nexus.EInvalid, "side append without files")
	}
	for f := range files {
		if f == "" || strings.ContainsAny(f, "/\x00") || f == "." || f == ".." {
			return zeroHash, nexus.Errorf(nexus.EInvalid, "side file name %q is not a plain name", f)
		}
	}
	res, err := s.submit(ctx, &request{side: &sideWrite{name: name, files: files, message: message}})
	return res.head, err
}

// commitSide writes one side append in its own pack and moves its ref.
func (s *Store) commitSide(w *sideWrite) (Hash, error) {
	if err := s.failure(); err != nil {
		return zeroHash, err
	}
	ref := sidePrefix + w.name
	tip, err := s.repo.readNamedRef(ref)
	if err != nil {
		return zeroHash, nexus.WrapError(nexus.EUnavailable, err, "read %s", ref)
	}
	s.pw.reset()
	names := make([]string, 0, len(w.files))
	for n := range w.files {
		names = append(names, n)
	}
	slices.Sort(names) // plain files: git's order is bytewise
	ents := make([]treeEntry, len(names))
	for i, n := range names {
		ents[i] = treeEntry{name: n, hash: s.pw.add(objBlob, w.files[n])}
	}
	tree := s.pw.add(objTree, encodeTree(nil, ents))
	now := s.opts.Now()
	cm := &commit{tree: tree, author: signature{committer.name, committer.email, now},
		committer: signature{committer.name, committer.email, now}, message: strings.TrimRight(w.message, "\n") + "\n"}
	switch {
	case w.cut:
		if !w.base.IsZero() {
			cm.parents = []Hash{w.base}
		}
	case !tip.IsZero() && !w.replace:
		cm.parents = []Hash{tip}
	}
	head := s.pw.add(objCommit, encodeCommit(nil, cm))
	pack, idx := s.pw.finish()
	if err := s.repo.commitPack(pack, idx, ref, head, func() error { s.kickMerge(); return nil }); err != nil {
		return zeroHash, s.writeFailed(err, false)
	}
	return head, nil
}

// WalkSide calls fn with the files of each append to the side ref name,
// newest first, until fn returns an error or the log ends. A side ref
// that does not exist is an empty log.
func (s *Store) WalkSide(ctx context.Context, name string, fn func(files map[string][]byte) error) error {
	if err := ValidSideName(name); err != nil {
		return err
	}
	h, err := s.repo.readNamedRef(sidePrefix + name)
	if err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "read side ref %s", name)
	}
	for !h.IsZero() {
		if err := ctx.Err(); err != nil {
			return err
		}
		cm, err := s.readCommit(h)
		if err != nil {
			return err
		}
		data, err := s.repo.readTyped(cm.tree, objTree)
		if err != nil {
			return nexus.WrapError(nexus.EUnavailable, err, "read side tree %s", cm.tree)
		}
		ents, err := decodeTree(data)
		if err != nil {
			return nexus.WrapError(nexus.EUnavailable, &CorruptError{Object: cm.tree, Err: err}, "read side tree")
		}
		files := make(map[string][]byte, len(ents))
		for _, e := range ents {
			if e.dir {
				continue
			}
			b, err := s.repo.readTyped(e.hash, objBlob)
			if err != nil {
				return nexus.WrapError(nexus.EUnavailable, err, "read side file %s", e.name)
			}
			files[e.name] = b
		}
		if err := fn(files); err != nil {
			return err
		}
		h = zeroHash
		if len(cm.parents) > 0 {
			h = cm.parents[0]
		}
	}
	return nil
}

// SideLog is a log of opaque segments kept on side refs, one file per
// append; the search index keeps its embeddings in one.
type SideLog struct{ s *Store }

// SideLog returns the store's segment log.
func (s *Store) SideLog() SideLog { return SideLog{s} }

const segmentFile = "segment"

// Append durably adds segment to the log called name.
func (l SideLog) Append(ctx context.Context, name string, segment []byte) error {
	_, err := l.s.AppendSide(ctx, name, map[string][]byte{segmentFile: l.s.seal(segment)}, "segment of "+name)
	return err
}

// Walk calls fn with each segment of the log called name, newest first.
func (l SideLog) Walk(ctx context.Context, name string, fn func(segment []byte) error) error {
	return l.s.WalkSide(ctx, name, func(files map[string][]byte) error {
		if seg, ok := files[segmentFile]; ok {
			seg, err := l.s.unseal(seg)
			if err != nil {
				return nexus.WrapError(nexus.EUnavailable, err, "read a segment of %s", name)
			}
			return fn(seg)
		}
		return nil
	})
}
