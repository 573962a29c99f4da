package gitstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Side refs hold derived data: the search index's embeddings, the record
// of orphans. When a side ref's history lost commits that no backup or
// mirror holds (written after the newest backup, then their pack was
// lost), keeping the store refused would not bring them back, and what
// they held is made again by their users (a rebuild embeds the contexts
// whose vectors are gone). So the repair cuts such a ref back instead: a
// new commit without files, parented on the newest version of the ref a
// source holds whose whole history is here (or on none), records what was
// lost. The key ring (refs/nexus/keys) is never cut: without it encrypted
// contexts cannot be read, and main is never cut either.

// cutLostSides cuts back the side refs with damage, if every damage a
// deep check finds is on such refs; else it does nothing. It returns what
// it did.
func (s *Store) cutLostSides(ctx context.Context, sources []string) ([]string, error) {
	rep, _ := s.damage()
	if len(lostSides(rep)) == 0 {
		return nil, nil
	}
	// The last check may predate the repairs: check again.
	if _, err := s.Fsck(ctx, true); err != nil {
		return nil, err
	}
	rep, _ = s.damage()
	lost := lostSides(rep)
	names := make([]string, 0, len(lost))
	for n := range lost {
		names = append(names, n)
	}
	slices.Sort(names)
	var did []string
	for _, name := range names {
		ref := sidePrefix + name
		was, err := s.repo.readNamedRef(ref)
		if err != nil {
			return did, err
		}
		base, from := zeroHash, ""
		for _, src := range sources {
			h, err := sourceRef(ctx, src, ref)
			if err != nil || h.IsZero() || s.wholeHistory(ctx, h) != nil {
				continue
			}
			base, from = h, src
			break
		}
		msg := fmt.Sprintf("history lost: %s named %s, whose history lacks commits no backup holds", ref, was)
		what := fmt.Sprintf("%s named %s, whose history lacks commits no backup or mirror holds (derived data, made again by its user): ", ref, was)
		if base.IsZero() {
			msg += "; started again"
			what += "started again"
		} else {
			msg += fmt.Sprintf("; cut back to %s, as %s holds it", base, from)
			what += fmt.Sprintf("cut back to %s, as %s holds it", base, from)
		}
		if _, err := s.submit(ctx, &request{side: &sideWrite{name: name, message: msg, cut: true, base: base}}); err != nil {
			return did, err
		}
		s.log.Warn("side ref cut back", "ref", ref, "was", was, "base", base)
		did = append(did, what)
	}
	return did, nil
}

// lostSides lists the side refs a deep check's damage is on, or none
// when some damage is elsewhere (or on the key ring).
func lostSides(rep *FsckReport) map[string]bool {
	if rep == nil {
		return nil
	}
	lost := map[string]bool{}
	for _, p := range rep.Problems {
		if !p.Kind.Damage() {
			continue
		}
		name, ok := strings.CutPrefix(p.Path, sidePrefix)
		if !ok || name == KeysRef || ValidSideName(name) != nil || (p.Kind != ProblemReachability && p.Kind != ProblemObject) {
			return nil
		}
		lost[name] = true
	}
	return lost
}

// wholeHistory checks that every commit, tree and file of the history of
// h is in the repository (files are not read).
func (s *Store) wholeHistory(ctx context.Context, h Hash) error {
	seen := map[Hash]bool{}
	var walk func(t Hash) error
	walk = func(t Hash) error {
		if seen[t] {
			return nil
		}
		seen[t] = true
		data, err := s.repo.readTyped(t, objTree)
		if err != nil {
			return err
		}
		ents, err := decodeTree(data)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.dir {
				if err := walk(e.hash); err != nil {
					return err
				}
			} else if !s.repo.hasObject(e.hash) {
				return fmt.Errorf("file %s of tree %s is missing", e.hash, t)
			}
		}
		return nil
	}
	for !h.IsZero() {
		if err := ctx.Err(); err != nil {
			return err
		}
		cm, err := s.readCommit(h)
		if err != nil {
			return err
		}
		if err := walk(cm.tree); err != nil {
			return err
		}
		h = zeroHash
		if len(cm.parents) > 0 {
			h = cm.parents[0]
		}
	}
	return nil
}

// sourceRef reads ref in a backup bundle's header or a mirror; the zero
// hash when the source does not have it.
func sourceRef(ctx context.Context, source, ref string) (Hash, error) {
	if isMirror(source) {
		out, err := exec.CommandContext(ctx, "git", gitArgs("--git-dir", source, "for-each-ref", "--format=%(objectname)", ref)...).Output()
		if err != nil {
			return zeroHash, err
		}
		if line := string(bytes.TrimSpace(out)); line != "" {
			return ParseHash(line)
		}
		return zeroHash, nil
	}
	f, err := os.Open(source)
	if err != nil {
		return zeroHash, err
	}
	defer f.Close()
	refs, err := readBundleHeader(bufio.NewReader(f))
	if err != nil {
		return zeroHash, err
	}
	return refs[ref], nil
}
