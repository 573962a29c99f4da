package gitstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// Backups are git bundles (`git bundle create`) of a snapshot whose packs
// are hard links, so that merges go on while git reads, verified
// with `git bundle verify` and fsynced before they count. They hold main
// and every side and recovery ref, so a restore brings back the journal,
// the embeddings kept in git and the rolled-back heads.

// BackupInfo describes one backup file.
type BackupInfo struct {
	Path  string    `json:"path"`
	Head  string    `json:"head"`
	Time  time.Time `json:"time"`
	Bytes int64     `json:"bytes"`
	Refs  int       `json:"refs"`
}

const backupExt = ".bundle"

// backupTime is the time in a backup's name: fixed width, so that names
// sort in time order, to the nanosecond, so that two backups never share
// a name. Names of older versions carry the second only; they parse too.
const backupTime = "20060102T150405.000000000Z"

// Backup writes a verified bundle of the repository into dir and returns
// what it wrote.
func (s *Store) Backup(ctx context.Context, dir string) (*BackupInfo, error) {
	if err := os.MkdirAll(dir, privateDir); err != nil {
		return nil, err
	}
	head := s.Head()
	if head.IsZero() {
		return nil, nexus.Errorf(nexus.EInvalid, "the store is empty: nothing to back up")
	}
	now := time.Now().UTC()
	tmp := filepath.Join(dir, fmt.Sprintf("tmp-nexus-%s%s", now.Format("20060102T150405.000000000Z"), backupExt))
	if err := s.bundleSnapshot(ctx, tmp); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	info, err := VerifyBackup(ctx, tmp)
	if err == nil && info.Head != head.String() {
		// Writes went on while git read the repository: the bundle must
		// then hold a descendant of the head seen before.
		if out, aerr := exec.CommandContext(ctx, "git", "--git-dir", s.GitDir(), "merge-base", "--is-ancestor", head.String(), info.Head).CombinedOutput(); aerr != nil {
			err = fmt.Errorf("bundle holds main at %s, which does not descend from %s: %s", info.Head, head, bytes.TrimSpace(out))
		}
	}
	var final string
	if err == nil {
		final = filepath.Join(dir, fmt.Sprintf("nexus-%s-%s%s", now.Format(backupTime), info.Head[:12], backupExt))
		err = syncPath(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, err
	}
	info.Path, info.Time = final, now
	return info, nil
}

// BackupIfChanged writes a backup into dir as Backup does, unless the
// newest backup there already holds exactly the store's refs now (every
// ref counts, not only main: the side refs, the orphan mark, the recovery
// refs) and its pack passes its checksum. Scheduled backups call it so
// that an idle node writes no identical bundles, whose pruning would
// delete distinct older ones. It returns the backup that holds the
// store's refs and whether it wrote it; a newest backup that cannot be
// read or fails its checksum is replaced by a new one, never trusted.
func (s *Store) BackupIfChanged(ctx context.Context, dir string) (*BackupInfo, bool, error) {
	cur, err := s.currentBackup(dir)
	if err != nil {
		return nil, false, err
	}
	if cur != nil {
		return cur, false, nil
	}
	info, err := s.Backup(ctx, dir)
	if err != nil {
		return nil, false, err
	}
	return info, true, nil
}

// currentBackup returns the newest backup of dir when it holds exactly
// the store's refs and its pack is sound, else nil.
func (s *Store) currentBackup(dir string) (*BackupInfo, error) {
	list, err := ListBackups(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(list) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the backups: %w", err)
	}
	want, err := s.snapshotRefs()
	if err != nil {
		return nil, fmt.Errorf("list the refs: %w", err)
	}
	newest := *list[0]
	held, err := bundleRefs(newest.Path)
	if err != nil {
		s.log.Warn("newest backup unreadable: writing a new one", "path", newest.Path, "err", err)
		return nil, nil
	}
	if !maps.Equal(held, want) {
		return nil, nil
	}
	if err := checkBundlePack(newest.Path); err != nil {
		s.log.Warn("newest backup damaged: writing a new one", "path", newest.Path, "err", err)
		return nil, nil
	}
	newest.Head, newest.Refs = held[mainRef].String(), len(held)
	return &newest, nil
}

// bundleRefs returns the refs a bundle's header lists.
func bundleRefs(path string) (map[string]Hash, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	refs, err := readBundleHeader(bufio.NewReader(f))
	delete(refs, "HEAD") // names main: not a ref of the store
	return refs, err
}

// bundleSnapshot bundles the refs as they are now (a snapshot: merges go
// on while git reads).
func (s *Store) bundleSnapshot(ctx context.Context, out string) error {
	sn, err := s.snapshotRepo(ctx)
	if err != nil {
		return err
	}
	defer sn.close()
	if o, err := exec.CommandContext(ctx, "git", gitArgs("--git-dir", sn.dir, "bundle", "create", "-q", out, "--all")...).CombinedOutput(); err != nil {
		return fmt.Errorf("git bundle create: %v: %s", err, bytes.TrimSpace(o))
	}
	return os.Chmod(out, privateFile)
}

// snapshotRefs returns every ref as a backup or a mirror holds it: main
// at the acknowledged head.
func (s *Store) snapshotRefs() (map[string]Hash, error) {
	refs, err := s.repo.listRefs()
	if err != nil {
		return nil, err
	}
	refs[mainRef] = s.Head()
	return refs, nil
}

// VerifyBackup checks a bundle: the SHA-1 trailer of its pack over every
// byte (git bundle verify alone accepts a truncated or bit-flipped pack),
// then `git bundle verify` for its refs and complete history. A damaged
// bundle is an EInvalid error naming the problem.
func VerifyBackup(ctx context.Context, path string) (*BackupInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkBundlePack(path); err != nil {
		return nil, nexus.Errorf(nexus.EInvalid, "backup %s is damaged: %v", filepath.Base(path), err)
	}
	// git bundle verify needs a repository to check prerequisites
	// against: an empty one, so that the bundle must be complete.
	scratch, err := os.MkdirTemp("", "nexus-verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	if out, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", scratch).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git init: %v: %s", err, bytes.TrimSpace(out))
	}
	out, err := exec.CommandContext(ctx, "git", "--git-dir", scratch, "bundle", "verify", path).CombinedOutput()
	if err != nil {
		return nil, nexus.Errorf(nexus.EInvalid, "backup %s is damaged: %s", filepath.Base(path), strings.TrimSpace(string(out)))
	}
	heads, err := exec.CommandContext(ctx, "git", "--git-dir", scratch, "bundle", "list-heads", path).Output()
	if err != nil {
		return nil, nexus.Errorf(nexus.EInvalid, "backup %s: cannot list its refs: %v", filepath.Base(path), err)
	}
	info := &BackupInfo{Path: path, Bytes: st.Size(), Time: st.ModTime().UTC()}
	for _, line := range strings.Split(strings.TrimSpace(string(heads)), "\n") {
		h, ref, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(ref, "refs/") {
			continue // HEAD
		}
		info.Refs++
		if ref == mainRef {
			info.Head = h
		}
	}
	if info.Head == "" {
		return nil, nexus.Errorf(nexus.EInvalid, "backup %s holds no %s", filepath.Base(path), mainRef)
	}
	return info, nil
}

// ListBackups returns the backups in dir, newest first.
func ListBackups(dir string) ([]*BackupInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*BackupInfo
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, "nexus-") || !strings.HasSuffix(n, backupExt) {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue
		}
		parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(n, "nexus-"), backupExt), "-")
		info := &BackupInfo{Path: filepath.Join(dir, n), Bytes: st.Size()}
		if len(parts) == 2 {
			info.Time, _ = time.Parse(backupTime, parts[0])
			info.Head = parts[1]
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b *BackupInfo) int { return strings.Compare(b.Path, a.Path) })
	return out, nil
}

// PruneBackups deletes all but the newest keep backups of dir.
func PruneBackups(dir string, keep int) ([]string, error) {
	list, err := ListBackups(dir)
	if err != nil {
		return nil, err
	}
	var gone []string
	for i := keep; i < len(list); i++ {
		if err := os.Remove(list[i].Path); err != nil {
			return gone, err
		}
		gone = append(gone, list[i].Path)
	}
	return gone, syncDir(dir)
}

// RestoreBackup makes dataDir (which must not hold a repository) a store
// whose repository is the backup's (a bundle or a mirror): the backup is
// verified, cloned with stock git, every file fsynced; the catalog is
// rebuilt at the next open.
func RestoreBackup(ctx context.Context, bundle, dataDir string) (*BackupInfo, error) {
	var info *BackupInfo
	if isMirror(bundle) {
		m, err := VerifyMirror(ctx, bundle)
		if err != nil {
			return nil, err
		}
		info = &BackupInfo{Path: m.Path, Head: m.Head, Refs: m.Refs}
	} else {
		var err error
		if info, err = VerifyBackup(ctx, bundle); err != nil {
			return nil, err
		}
	}
	repoDir := filepath.Join(dataDir, "repo.git")
	if _, err := os.Stat(repoDir); err == nil {
		return nil, nexus.Errorf(nexus.EConflict, "%s already holds a repository: restore into a new data directory, or set the damaged one aside (--replace)", dataDir)
	}
	if err := mkdirDurable(dataDir); err != nil {
		return nil, err
	}
	lock, err := lockDir(dataDir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	tmp := filepath.Join(dataDir, "tmp-restore.git")
	os.RemoveAll(tmp)
	if err := cloneSource(ctx, bundle, tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	// The clone's remote points at the backup: drop it.
	exec.CommandContext(ctx, "git", gitArgs("--git-dir", tmp, "remote", "remove", "origin")...).Run()
	if err := privateTree(tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := syncTree(tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, repoDir); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return info, syncDir(dataDir)
}

// SetAside moves a data directory's repository and derived state (the
// catalog, the search index) into DATA/quarantine/<time>-replaced/, so
// that a backup can be restored in their place; nothing is deleted. It
// takes the directory lock, so no server may be running on it.
func SetAside(dataDir string) (string, error) {
	lock, err := lockDir(dataDir)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	to, moved, err := moveAside(dataDir, "-replaced", dataDir, "repo.git", catalogFile, "index")
	if err != nil {
		return "", err
	}
	if moved == 0 {
		return "", nexus.Errorf(nexus.EInvalid, "%s holds no repository to set aside", dataDir)
	}
	return to, nil
}

// syncPath fsyncs one file.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = syncFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncTree fsyncs every file and directory under root.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return syncDir(path)
		}
		return syncPath(path)
	})
}

// checkBundlePack reads a v2 or v3 bundle's header up to the blank line,
// then checks the pack after it: magic, version, and the SHA-1 trailer
// over all the bytes before it.
func checkBundlePack(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	if _, err := readBundleHeader(r); err != nil {
		return err
	}
	h := sha1.New()
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil || string(hdr[:4]) != "PACK" {
		return errors.New("no pack after the bundle header")
	}
	h.Write(hdr[:])
	// Hash everything but the last 20 bytes, which must equal the hash.
	var tail []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Read(buf)
		tail = append(tail, buf[:n]...)
		if len(tail) > 20 {
			h.Write(tail[:len(tail)-20])
			tail = append(tail[:0], tail[len(tail)-20:]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if len(tail) != 20 || !bytes.Equal(h.Sum(nil), tail) {
		return errors.New("pack checksum mismatch (truncated or damaged)")
	}
	return nil
}

// readBundleHeader reads a v2 or v3 bundle's header up to the blank line
// and returns the refs it lists (HEAD aside).
func readBundleHeader(r *bufio.Reader) (map[string]Hash, error) {
	first, err := r.ReadString('\n')
	if err != nil || (first != "# v2 git bundle\n" && first != "# v3 git bundle\n") {
		return nil, errors.New("not a git bundle")
	}
	refs := map[string]Hash{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, errors.New("bundle header is cut off")
		}
		if line == "\n" {
			return refs, nil
		}
		hex, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		if !ok || !strings.HasPrefix(name, "refs/") || strings.HasPrefix(hex, "-") || strings.HasPrefix(hex, "@") {
			continue // HEAD, a prerequisite, a capability
		}
		h, err := ParseHash(hex)
		if err != nil {
			return nil, fmt.Errorf("bundle header: ref %s: %w", name, err)
		}
		refs[name] = h
	}
}

// HoldMerges runs f while no pack merge, repack or repair rewrites the
// packs: a stock git reading the repository meanwhile (git fsck, a copy)
// finds every pack it listed. Writes go on: they add packs, never remove
// one.
func (s *Store) HoldMerges(f func() error) error {
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	return f()
}
