package gitstore

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nexus-mem/nexus"
)

// RepairReport says what RepairFromBackup did.
type RepairReport struct {
	Restored   []string `json:"restored"`   // object ids copied from the backup
	Salvaged   []string `json:"salvaged"`   // damaged packs rewritten without their bad entries, and pack indexes (.idx) rebuilt from their packs
	Unrepaired []string `json:"unrepaired"` // damaged objects the backup does not hold
}

// RepairFromBackup repairs damaged or missing objects from a verified
// backup bundle or a mirror repository: each object a deep check finds
// damaged or missing is read from the backup (hash-verified) into a new
// pack, then every damaged pack is rewritten without its bad entries.
// Objects the backup does not hold (written after it) are reported, never
// invented.
func (s *Store) RepairFromBackup(ctx context.Context, bundle string) (*RepairReport, error) {
	return s.repairFromBackup(ctx, bundle, nil)
}

// repairFromBackup repairs what rep found, or what a new deep check
// finds when rep is nil. An older report is safe to use: restoring an
// object that is no longer damaged only adds a good copy, and the caller
// confirms with a new deep check.
func (s *Store) repairFromBackup(ctx context.Context, bundle string, rep *FsckReport) (*RepairReport, error) {
	if err := checkSource(ctx, bundle); err != nil {
		return nil, err
	}
	if rep == nil {
		var err error
		if rep, err = s.Fsck(ctx, true); err != nil {
			return nil, err
		}
	}
	// A damaged index is rebuilt from its pack first (no backup needed);
	// what it listed wrongly is then no longer reported, so the check
	// runs again.
	var reindexed []string
	for _, p := range rep.Problems {
		if name, ok := strings.CutSuffix(p.Object, ".idx"); ok && p.Kind == ProblemPack {
			if err := s.repo.reindexPack(ctx, name); err != nil {
				return nil, fmt.Errorf("rebuild the index of %s: %w", name, err)
			}
			reindexed = append(reindexed, p.Object)
		}
	}
	if len(reindexed) > 0 {
		var err error
		if rep, err = s.Fsck(ctx, true); err != nil {
			return nil, err
		}
	}
	out := &RepairReport{Restored: []string{}, Salvaged: append([]string{}, reindexed...), Unrepaired: []string{}}
	var backup *repo
	// A missing commit on main hides the history below it from the check,
	// and a round restores what a missing object names only down to what
	// this repository has: the objects of a lost pack that are further
	// down (a merged pack's commits need not follow each other on main)
	// show up in the next check. Rounds go on, from the one clone, while
	// each restores something.
	for round := 0; ; round++ {
		bad, damagedPacks := damageIn(rep)
		if len(bad) == 0 && len(damagedPacks) == 0 {
			return out, nil
		}
		if backup == nil {
			scratch, err := os.MkdirTemp("", "nexus-repair-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(scratch)
			src := filepath.Join(scratch, "repo.git")
			if err := cloneSource(ctx, bundle, src); err != nil {
				return nil, err
			}
			if backup, err = openRepo(src); err != nil {
				return nil, err
			}
			defer backup.close()
		}
		restored, salvaged := len(out.Restored), len(out.Salvaged)
		if err := s.repairRound(backup, bad, damagedPacks, out); err != nil {
			return out, err
		}
		if len(out.Restored) == restored && len(out.Salvaged) == salvaged {
			return out, nil // nothing changed: the caller's report stands
		}
		// Confirm (the report predates the round), and find what the
		// restored objects hid.
		var err error
		if rep, err = confirmRepair(s, ctx, true); err != nil {
			return out, checkFailed{err}
		}
		if _, p := s.damage(); p == nil || len(out.Restored) == restored || round+1 == maxRepairRounds {
			return out, nil
		}
	}
}

// confirmRepair is the deep check after a round of repair: Fsck, a
// variable only so that a test can make it fail.
var confirmRepair = (*Store).Fsck

// checkFailed is a deep check that failed to run after a round of
// repair: the repair cannot say where it stands, so no other source is
// tried.
type checkFailed struct{ error }

func (e checkFailed) Unwrap() error { return e.error }

// maxRepairRounds bounds the rounds of a repair from one source: each
// restores what the check before it found missing, and a round that
// restores nothing ends them sooner. A variable only for tests.
var maxRepairRounds = 64

// damageIn lists the objects a deep check found damaged or missing, and
// the packs it found damaged.
func damageIn(rep *FsckReport) (map[Hash]bool, map[string]bool) {
	bad, damagedPacks := map[Hash]bool{}, map[string]bool{}
	for _, p := range rep.Problems {
		if h, err := ParseHash(p.Object); err == nil && (p.Kind == ProblemObject || p.Kind == ProblemReachability) {
			bad[h] = true
		}
		if p.Kind == ProblemPack {
			damagedPacks[p.Object] = true
		}
	}
	return bad, damagedPacks
}

// repairRound restores the bad objects from backup (and what they name
// that this repository lacks) into a new pack, then rewrites each pack
// that is damaged or holds a bad object, adding both to out. Objects the
// backup lacks fail the round, the damaged packs kept.
func (s *Store) repairRound(backup *repo, bad map[Hash]bool, damagedPacks map[string]bool, out *RepairReport) error {
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	pw := newPackWriter()
	// A missing tree or commit hides what is below it from the check:
	// what it names is restored too when this repository lacks it.
	queue := make([]Hash, 0, len(bad))
	for h := range bad {
		queue = append(queue, h)
	}
	done := map[Hash]bool{}
	var unrepaired []string
	for len(queue) > 0 {
		h := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if done[h] {
			continue
		}
		done[h] = true
		t, data, err := backup.readObject(h)
		if err != nil {
			unrepaired = append(unrepaired, h.String())
			continue
		}
		pw.add(t, data)
		out.Restored = append(out.Restored, h.String())
		for _, c := range objectLinks(t, data) {
			if !done[c] && (bad[c] || !s.repo.hasObject(c)) {
				queue = append(queue, c)
			}
		}
	}
	if len(pw.entries) > 0 {
		data, idx := pw.finish()
		if err := s.repo.writePack(data, idx); err != nil {
			return err
		}
	}
	if len(unrepaired) > 0 {
		out.Unrepaired = append(out.Unrepaired, unrepaired...)
		return nexus.Errorf(nexus.EInternal, "%d damaged objects are not in the backup (written after it); the damaged packs are kept", len(unrepaired))
	}
	s.repo.mu.RLock()
	packs := append([]*pack(nil), s.repo.packs...)
	s.repo.mu.RUnlock()
	for _, p := range packs {
		if !damagedPacks[p.name+".pack"] && !packHolds(p, bad) {
			continue
		}
		if err := s.salvage(p); err != nil {
			return fmt.Errorf("rewrite %s: %w", p.name, err)
		}
		out.Salvaged = append(out.Salvaged, p.name)
	}
	return nil
}

// reindexPack rebuilds the index of pack name from the pack (git
// index-pack, which hashes every object), verifies it, and puts the pack
// with its new index in place of the open one. A store opens an index
// damaged inside (its structure intact: an open does not hash it), and
// the deep fsck reports it as a pack problem on the .idx; this is its
// repair, which needs no backup.
func (r *repo) reindexPack(ctx context.Context, name string) error {
	if err := reindex(ctx, r.packDir, name); err != nil {
		return err
	}
	np, err := openPackVerified(r.packDir, name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, p := range r.packs {
		if p.name == name {
			p.f.Close()
			r.packs[i] = np
			return nil
		}
	}
	np.f.Close()
	return nil // merged away meanwhile
}

// objectLinks lists the objects a tree or commit names.
func objectLinks(t objType, data []byte) []Hash {
	switch t {
	case objTree:
		ents, err := decodeTree(data)
		if err != nil {
			return nil
		}
		out := make([]Hash, len(ents))
		for i, e := range ents {
			out[i] = e.hash
		}
		return out
	case objCommit:
		c, err := decodeCommit(data)
		if err != nil {
			return nil
		}
		return append([]Hash{c.tree}, c.parents...)
	}
	return nil
}

// checkSource verifies a backup bundle, or checks that a mirror is a
// repository (every object read from it is hash-checked anyway).
func checkSource(ctx context.Context, source string) error {
	if isMirror(source) {
		return initMirrorCheck(source)
	}
	_, err := VerifyBackup(ctx, source)
	return err
}

// cloneSource clones a bundle or a mirror into the bare repository dst.
// A mirror is cloned through git's pack protocol (--no-local), so that
// every object is hash-checked by index-pack and lands in one pack.
func cloneSource(ctx context.Context, source, dst string) error {
	args := gitArgs("clone", "-q", "--mirror", "--config", "core.sharedRepository=0600")
	if isMirror(source) {
		args = append(args, "--no-local")
	}
	if o, err := exec.CommandContext(ctx, "git", append(args, source, dst)...).CombinedOutput(); err != nil {
		return fmt.Errorf("git clone of the backup %s: %v: %s", source, err, bytes.TrimSpace(o))
	}
	return nil
}

// packHolds reports whether p lists any of the objects.
func packHolds(p *pack, objs map[Hash]bool) bool {
	for h := range objs {
		if _, ok := p.offset(h); ok {
			return true
		}
	}
	return false
}

// salvage rewrites p keeping only the entries whose CRC-32 is good and
// whose object another pack does not already hold intact.
func (s *Store) salvage(p *pack) error {
	data := make([]byte, p.size)
	if _, err := p.f.ReadAt(data, 0); err != nil {
		return err
	}
	body := data[:len(data)-20]
	ents := p.idx.byOffset()
	pw := newPackWriter()
	for i, e := range ents {
		end := uint64(len(body))
		if i+1 < len(ents) {
			end = ents[i+1].offset
		}
		raw, err := checkEntry(p, e, body, end)
		if err != nil {
			continue // the repaired copy lives in the pack written from the backup
		}
		if t := objType(raw[0] >> 4 & 7); t >= objCommit && t <= objTag {
			pw.addRaw(e.hash, raw, e.crc)
			continue
		}
		t, obj, err := s.repo.readObject(e.hash) // a delta: store it whole
		if err != nil {
			return err
		}
		pw.add(t, obj)
	}
	out, idx := pw.finish()
	return s.repo.replacePacks([]*pack{p}, out, idx)
}
