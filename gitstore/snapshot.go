package gitstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// scratchDir is the directory of the data directory that holds scratch
// repositories while git reads a snapshot of the store (a backup, a mirror
// push, a replica's bundle) and the packs a deep check reads. It is on the
// repository's file system, so that a snapshot can hard-link the packs,
// and it is removed at every open.
const scratchDir = "scratch"

// A snapshot is a scratch bare repository that holds the store's refs as
// they were at one moment (main at the acknowledged head) and hard links
// to the packs that held their objects then. Merges go on while git reads
// it: a merge unlinks or recycles only its own names of the packs it
// retires, and never recycles a file a snapshot links (see
// spares.recycle), so the snapshot's files keep their bytes until it is
// closed.
//
// On a file system without hard links the snapshot borrows the store's
// objects (objects/info/alternates) instead, and merging waits until it is
// closed, as every snapshot did before.
type snapshot struct {
	dir     string // the bare repository, inside <data>/scratch
	release func() // unlocks mergeMu when the fallback holds it
}

// close removes the snapshot and lets merges go on if it held them.
func (sn *snapshot) close() {
	os.RemoveAll(sn.dir)
	if sn.release != nil {
		sn.release()
		sn.release = nil
	}
}

// snapshotRepo returns a snapshot of the store (to close when done): what
// the refs name now, whatever group commits do meanwhile.
func (s *Store) snapshotRepo(ctx context.Context) (*snapshot, error) {
	dir, err := s.scratchTemp("snapshot-")
	if err != nil {
		return nil, err
	}
	sn := &snapshot{dir: dir}
	fail := func(err error) (*snapshot, error) {
		sn.close()
		return nil, err
	}
	if o, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", dir).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("git init: %v: %s", err, bytes.TrimSpace(o)))
	}
	// HEAD names main, so that a bundle lists it and `git clone` of the
	// bundle checks main out.
	if err := os.WriteFile(filepath.Join(dir, "HEAD"), []byte(headContent), privateFile); err != nil {
		return fail(err)
	}
	s.mergeMu.Lock()
	// The refs first: every object they name is in a pack listed after,
	// since a group commit adds its pack before it moves a ref and no
	// merge retires a pack while mergeMu is held.
	refs, err := s.snapshotRefs()
	if err != nil {
		s.mergeMu.Unlock()
		return fail(err)
	}
	if _, err := s.linkPacks(filepath.Join(dir, "objects", "pack")); err != nil {
		s.log.Warn("cannot hard-link the packs for a snapshot; merging waits while git reads the store", "err", err)
		sn.release = s.mergeMu.Unlock
		objects, aerr := filepath.Abs(filepath.Join(s.GitDir(), "objects"))
		if aerr == nil {
			aerr = os.WriteFile(filepath.Join(dir, "objects", "info", "alternates"), []byte(objects+"\n"), privateFile)
		}
		if aerr != nil {
			return fail(aerr)
		}
	} else {
		s.mergeMu.Unlock()
	}
	var packed strings.Builder
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&packed, "%s %s\n", refs[n], n)
	}
	if err := os.WriteFile(filepath.Join(dir, "packed-refs"), []byte(packed.String()), privateFile); err != nil {
		return fail(err)
	}
	return sn, nil
}

// linkFile makes a hard link; tests replace it to play a file system
// without hard links.
var linkFile = os.Link

// linkPacks hard-links the index and pack files of every current pack into
// dir and returns those packs. The caller holds mergeMu. On an error, dir
// holds no link.
func (s *Store) linkPacks(dir string) ([]*pack, error) {
	if err := os.MkdirAll(dir, privateDir); err != nil {
		return nil, err
	}
	s.repo.mu.RLock()
	packs := slices.Clone(s.repo.packs)
	s.repo.mu.RUnlock()
	var made []string
	for _, p := range packs {
		for _, ext := range []string{".pack", ".idx"} {
			dst := filepath.Join(dir, p.name+ext)
			if err := linkFile(filepath.Join(s.repo.packDir, p.name+ext), dst); err != nil {
				for _, m := range made {
					os.Remove(m)
				}
				return nil, err
			}
			made = append(made, dst)
		}
	}
	return packs, nil
}

// checkPacksLinked checks every pack as a deep check does, reading hard
// links to them so that merges go on meanwhile. It reports false, having
// checked nothing, when the packs cannot be linked; the caller then checks
// them in place with merging paused.
func (s *Store) checkPacksLinked(ctx context.Context, rep *FsckReport) (bool, error) {
	dir, err := s.scratchTemp("check-")
	if err != nil {
		return false, nil
	}
	defer os.RemoveAll(dir)
	s.mergeMu.Lock()
	packs, err := s.linkPacks(dir)
	s.mergeMu.Unlock()
	if err != nil {
		s.log.Warn("cannot hard-link the packs for a deep check; merging waits while it runs", "err", err)
		return false, nil
	}
	rep.Packs = len(packs)
	for _, p := range packs {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		f, err := os.Open(filepath.Join(dir, p.name+".pack"))
		if err != nil {
			rep.add(ProblemPack, p.name+".pack", "", "cannot be read: %v", err)
			continue
		}
		s.checkPack(rep, &pack{name: p.name, f: f, idx: p.idx, size: p.size, count: p.count})
		f.Close()
		if len(rep.Problems) >= maxProblems {
			break
		}
	}
	return true, nil
}

// scratchTemp makes a new directory in <data>/scratch, named prefix and a
// random suffix.
func (s *Store) scratchTemp(prefix string) (string, error) {
	root := filepath.Join(s.dir, scratchDir)
	if err := os.MkdirAll(root, privateDir); err != nil {
		return "", err
	}
	return os.MkdirTemp(root, prefix)
}

// removeScratch deletes what snapshots and checks left in the data
// directory when the process that made them stopped.
func removeScratch(dir string) error {
	err := os.RemoveAll(filepath.Join(dir, scratchDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
