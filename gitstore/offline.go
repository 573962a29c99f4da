package gitstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// RepairOffline repairs a repository that cannot be opened, with no store
// holding it (it takes the directory lock):
//
//   - a pack or pack index that fails its checks at open: the index is
//     rebuilt from the pack by `git index-pack` (which re-hashes every
//     object) when the pack is whole; otherwise both are moved to
//     DATA/quarantine/ (never deleted);
//   - every object a backup (bundle or mirror, in the order given) holds
//     and the repository lacks is copied in, hash-checked, as one pack;
//   - a main ref that is unreadable or names a missing commit is set to
//     the one journal commit no other commit or ref descends from, if
//     there is exactly one (the last acknowledged write, or one cut off
//     after its pack was written) and it is, or descends from, the head
//     the catalog saved last; otherwise it is refused, saying why.
//
// It returns what it did; a deep check after opening confirms the result.
func RepairOffline(ctx context.Context, dataDir string, sources []string) ([]string, error) {
	lock, err := lockDir(dataDir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	gitDir := filepath.Join(dataDir, "repo.git")
	var did []string
	fixed, err := fixPacks(ctx, dataDir, gitDir)
	did = append(did, fixed...)
	if err != nil {
		return did, err
	}
	r, err := openRepo(gitDir)
	if err != nil {
		return did, err
	}
	defer r.close()
	for _, src := range sources {
		n, err := copyMissing(ctx, r, src)
		if err != nil {
			did = append(did, fmt.Sprintf("%s not used: %v", src, err))
			continue
		}
		if n > 0 {
			did = append(did, fmt.Sprintf("%d objects the repository lacked copied from %s", n, src))
		}
	}
	if why := mainProblem(r); why != "" {
		tip, err := findTip(ctx, r)
		if err != nil {
			return did, fmt.Errorf("%s is unusable (%s) and cannot be rebuilt: %w", mainRef, why, err)
		}
		behind, err := witnessed(dataDir, r, tip)
		if err != nil {
			return did, fmt.Errorf("%s is unusable (%s); the newest journal commit is %s, but %v: set main by hand (a damaged ref file must go first, git refuses to update it: `rm -f %s` then `git --git-dir %s update-ref %s COMMIT`) or restore a backup", mainRef, why, tip, err, filepath.Join(gitDir, filepath.FromSlash(mainRef)), gitDir, mainRef)
		}
		if err := r.moveRef(mainRef, tip); err != nil {
			return did, err
		}
		did = append(did, fmt.Sprintf("%s was unusable (%s): set to %s, the one journal commit nothing descends from (%d commits after the head the catalog last saved)", mainRef, why, tip, behind))
	}
	return did, nil
}

// witnessed checks a rebuilt head against the head the catalog saved
// last, a lower bound of what was acknowledged: it must be that commit or
// a descendant, or writes would be dropped unseen. It returns how many
// commits lie between them.
func witnessed(dataDir string, r *repo, tip Hash) (int, error) {
	cat, err := loadCatalog(dataDir)
	if err != nil {
		return 0, fmt.Errorf("the catalog, which would confirm it, is unreadable (%v)", err)
	}
	if cat == nil {
		return 0, fmt.Errorf("there is no catalog to confirm it")
	}
	n := 0
	for h := tip; !h.IsZero(); n++ {
		if h == cat.head {
			return n, nil
		}
		data, err := r.readTyped(h, objCommit)
		if err != nil {
			return 0, fmt.Errorf("its history is broken at %s (%v)", h, err)
		}
		cm, err := decodeCommit(data)
		if err != nil {
			return 0, err
		}
		h = zeroHash
		if len(cm.parents) > 0 {
			h = cm.parents[0]
		}
	}
	return 0, fmt.Errorf("it does not descend from %s, the head the catalog saved: newer commits are missing from the repository", cat.head)
}

// mainProblem says what is wrong with main, or "".
func mainProblem(r *repo) string {
	h, err := r.readRef()
	if err != nil {
		return err.Error()
	}
	if h.IsZero() {
		return ""
	}
	if _, err := r.readTyped(h, objCommit); err != nil {
		return fmt.Sprintf("it names %s: %v", h, err)
	}
	return ""
}

// fixPacks finds the packs that fail to open and rebuilds their index or
// quarantines them.
func fixPacks(ctx context.Context, dataDir, gitDir string) ([]string, error) {
	packDir := filepath.Join(gitDir, "objects", "pack")
	ents, err := os.ReadDir(packDir)
	if err != nil {
		return nil, err
	}
	var did []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".pack")
		if !ok || !isPackName(name) {
			continue
		}
		p, err := openPackVerified(packDir, name)
		if err == nil {
			p.f.Close()
			continue
		}
		if reindex(ctx, packDir, name) == nil {
			if p, err2 := openPackVerified(packDir, name); err2 == nil {
				p.f.Close()
				did = append(did, fmt.Sprintf("%s: %v; its index was rebuilt from the pack (git index-pack)", name, err))
				continue
			}
		}
		to, qerr := quarantine(dataDir, packDir, name)
		if qerr != nil {
			return did, qerr
		}
		did = append(did, fmt.Sprintf("%s: %v; moved to %s", name, err, to))
	}
	return did, nil
}

// reindex rebuilds name.idx from name.pack with git index-pack, which
// fails unless every object and the pack's checksum are good.
func reindex(ctx context.Context, packDir, name string) error {
	tmp := filepath.Join(packDir, "tmp_reindex.idx")
	os.Remove(tmp)
	out, err := exec.CommandContext(ctx, "git", gitArgs("index-pack", "-o", tmp, filepath.Join(packDir, name+".pack"))...).CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("git index-pack: %v: %s", err, bytes.TrimSpace(out))
	}
	if err := os.Chmod(tmp, privateFile); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncPath(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	idx := filepath.Join(packDir, name+".idx")
	os.Chmod(idx, privateFile)
	if err := os.Rename(tmp, idx); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(packDir)
}

// quarantine moves a pack and its index out of the repository.
func quarantine(dataDir, packDir, name string) (string, error) {
	to, _, err := moveAside(dataDir, "", packDir, name+".pack", name+".idx")
	return to, err
}

// moveAside moves the names that exist in dir into a new directory
// DATA/quarantine/<time><suffix>/ and fsyncs both; nothing is deleted. It
// returns the directory and how many names it moved (with none, it
// leaves no directory behind).
func moveAside(dataDir, suffix, dir string, names ...string) (string, int, error) {
	to := filepath.Join(dataDir, "quarantine", time.Now().UTC().Format("20060102T150405Z")+suffix)
	if err := mkdirDurable(to); err != nil {
		return "", 0, err
	}
	moved := 0
	for _, n := range names {
		err := os.Rename(filepath.Join(dir, n), filepath.Join(to, n))
		switch {
		case err == nil:
			moved++
		case !errors.Is(err, os.ErrNotExist):
			return "", moved, err
		}
	}
	if moved == 0 {
		os.Remove(to)
		return "", 0, nil
	}
	if err := syncDir(to); err != nil {
		return "", moved, err
	}
	return to, moved, syncDir(dir)
}

// copyMissing copies every object of a backup that r lacks into r as one
// new pack; each object is hash-checked as it is read.
func copyMissing(ctx context.Context, r *repo, source string) (int, error) {
	if err := checkSource(ctx, source); err != nil {
		return 0, err
	}
	scratch, err := os.MkdirTemp("", "nexus-offline-repair-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(scratch)
	src := filepath.Join(scratch, "repo.git")
	if err := cloneSource(ctx, source, src); err != nil {
		return 0, err
	}
	b, err := openRepo(src)
	if err != nil {
		return 0, err
	}
	defer b.close()
	pw := newPackWriter()
	for _, p := range b.packs {
		for _, e := range p.idx.entries() {
			if r.hasObject(e.hash) {
				continue
			}
			t, data, err := b.readObject(e.hash)
			if err != nil {
				return 0, err
			}
			pw.add(t, data)
		}
	}
	if len(pw.entries) == 0 {
		return 0, nil
	}
	data, idx := pw.finish()
	return len(pw.entries), r.writePack(data, idx)
}

// findTip returns the journal commit (one with a Context-Id trailer) that
// no other commit has as parent and no ref names, when there is exactly
// one.
func findTip(ctx context.Context, r *repo) (Hash, error) {
	parents := map[Hash]bool{}
	journal := map[Hash]bool{}
	for _, p := range r.packs {
		for _, e := range p.idx.entries() {
			if err := ctx.Err(); err != nil {
				return zeroHash, err
			}
			t, data, err := r.readObject(e.hash)
			if err != nil || t != objCommit {
				continue
			}
			cm, err := decodeCommit(data)
			if err != nil {
				continue
			}
			for _, ph := range cm.parents {
				parents[ph] = true
			}
			if _, ok := trailers(cm.message)["Context-Id"]; ok {
				journal[e.hash] = true
			}
		}
	}
	refs, err := r.listRefs()
	if err != nil {
		refs = map[string]Hash{}
	}
	named := map[Hash]bool{}
	for n, h := range refs {
		if n != mainRef {
			named[h] = true
		}
	}
	var tips []string
	var tip Hash
	for h := range journal {
		if !parents[h] && !named[h] {
			tips = append(tips, h.String())
			tip = h
		}
	}
	switch len(tips) {
	case 0:
		return zeroHash, nexus.Errorf(nexus.EInternal, "no journal commit is left to point main at")
	case 1:
		return tip, nil
	}
	return zeroHash, nexus.Errorf(nexus.EInternal, "%d journal commits could be main's head (%s): set it by hand with `rm -f DATA/repo.git/refs/heads/main` (git refuses to update a damaged ref file) then `git --git-dir DATA/repo.git update-ref refs/heads/main COMMIT`", len(tips), strings.Join(tips, ", "))
}
