package gitstore

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nexus-mem/nexus"
)

// A mirror is a bare git repository on another path (another disk, a
// mounted share) that receives every ref by `git push --mirror`. Unlike a
// bundle it is incremental: each push sends only the objects the mirror
// lacks, so it can run every few minutes. Repair and restore read it like
// a backup.

// MirrorInfo describes a mirror after a push or a check.
type MirrorInfo struct {
	Path string        `json:"path"`
	Head string        `json:"head"`
	Refs int           `json:"refs"`
	Took time.Duration `json:"took_ns"`
}

// PushMirror pushes a snapshot of every ref (main at the acknowledged
// head) to the bare repository at path, creating it if needed and making
// its HEAD name main (so that `git clone` checks out the memory), then
// fsyncs the mirror and checks that its refs are exactly the snapshot's.
// Refs the store no longer has are deleted from the mirror, as with any
// mirror; the objects they named stay until git collects them there.
func (s *Store) PushMirror(ctx context.Context, path string) (*MirrorInfo, error) {
	start := time.Now()
	if s.Head().IsZero() {
		return nil, nexus.Errorf(nexus.EInvalid, "the store is empty: nothing to push")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if same, _ := samePath(path, s.GitDir()); same || strings.HasPrefix(path, s.GitDir()+string(filepath.Separator)) {
		return nil, nexus.Errorf(nexus.EInvalid, "the mirror %s is the store's own repository", path)
	}
	if err := initMirror(ctx, path); err != nil {
		return nil, err
	}
	sn, err := s.snapshotRepo(ctx)
	var want map[string]string
	if err == nil {
		want, err = gitRefs(ctx, sn.dir)
	}
	if err == nil {
		if o, perr := exec.CommandContext(ctx, "git", "--git-dir", sn.dir, "push", "-q", "--mirror", path).CombinedOutput(); perr != nil {
			err = fmt.Errorf("git push --mirror %s: %v: %s", path, perr, bytes.TrimSpace(o))
		}
	}
	if sn != nil {
		sn.close()
	}
	if err != nil {
		return nil, err
	}
	if err := syncTree(path); err != nil {
		return nil, fmt.Errorf("fsync the mirror: %w", err)
	}
	got, err := gitRefs(ctx, path)
	if err != nil {
		return nil, err
	}
	if !maps.Equal(got, want) {
		return nil, fmt.Errorf("the mirror %s holds %d refs after the push, not the %d pushed", path, len(got), len(want))
	}
	return &MirrorInfo{Path: path, Head: got[mainRef], Refs: len(got), Took: time.Since(start)}, nil
}

// initMirror creates a bare repository at path if there is none, and
// makes sure it is one.
func initMirror(ctx context.Context, path string) error {
	if _, err := os.Stat(filepath.Join(path, "HEAD")); err != nil {
		if ents, rerr := os.ReadDir(path); rerr == nil && len(ents) > 0 {
			return nexus.Errorf(nexus.EInvalid, "%s is neither a git repository nor empty: refusing to use it as a mirror", path)
		}
		if o, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", "--shared=0600", path).CombinedOutput(); err != nil {
			return fmt.Errorf("git init %s: %v: %s", path, err, bytes.TrimSpace(o))
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	if o, err := exec.CommandContext(ctx, "git", "--git-dir", path, "rev-parse", "--is-bare-repository").CombinedOutput(); err != nil || strings.TrimSpace(string(o)) != "true" {
		return nexus.Errorf(nexus.EInvalid, "%s is not a bare git repository: %s", path, bytes.TrimSpace(o))
	}
	return headAtMain(ctx, path)
}

// headAtMain makes a mirror's HEAD name main, so that `git clone MIRROR`
// checks out the memory: git init names another branch, which a mirror
// push never creates (and never changes HEAD).
func headAtMain(ctx context.Context, path string) error {
	if o, _ := exec.CommandContext(ctx, "git", "--git-dir", path, "symbolic-ref", "-q", "HEAD").Output(); strings.TrimSpace(string(o)) == mainRef {
		return nil
	}
	if o, err := exec.CommandContext(ctx, "git", "--git-dir", path, "symbolic-ref", "HEAD", mainRef).CombinedOutput(); err != nil {
		return fmt.Errorf("git symbolic-ref HEAD %s in %s: %v: %s", mainRef, path, err, bytes.TrimSpace(o))
	}
	return nil
}

// gitRefs lists a repository's refs with stock git.
func gitRefs(ctx context.Context, gitDir string) (map[string]string, error) {
	out, err := exec.CommandContext(ctx, "git", "--git-dir", gitDir, "for-each-ref", "--format=%(objectname) %(refname)").Output()
	if err != nil {
		return nil, fmt.Errorf("git for-each-ref in %s: %v", gitDir, err)
	}
	refs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if h, ref, ok := strings.Cut(line, " "); ok {
			refs[ref] = h
		}
	}
	return refs, nil
}

// VerifyMirror checks a mirror with `git fsck --full` (every object
// re-hashed, every ref's history complete) and says what it holds.
func VerifyMirror(ctx context.Context, path string) (*MirrorInfo, error) {
	start := time.Now()
	if err := initMirrorCheck(path); err != nil {
		return nil, err
	}
	if o, err := exec.CommandContext(ctx, "git", "--git-dir", path, "fsck", "--full", "--no-dangling", "--no-progress").CombinedOutput(); err != nil {
		return nil, nexus.Errorf(nexus.EInvalid, "mirror %s is damaged: %s", path, firstLines(string(o), 5))
	}
	refs, err := gitRefs(ctx, path)
	if err != nil {
		return nil, err
	}
	if refs[mainRef] == "" {
		return nil, nexus.Errorf(nexus.EInvalid, "mirror %s holds no %s", path, mainRef)
	}
	return &MirrorInfo{Path: path, Head: refs[mainRef], Refs: len(refs), Took: time.Since(start)}, nil
}

// initMirrorCheck refuses a path that is not a repository.
func initMirrorCheck(path string) error {
	if _, err := os.Stat(filepath.Join(path, "HEAD")); err != nil {
		return nexus.Errorf(nexus.EInvalid, "%s is not a git repository", path)
	}
	return nil
}

// isMirror reports whether a backup source is a repository directory
// rather than a bundle file.
func isMirror(source string) bool {
	st, err := os.Stat(source)
	return err == nil && st.IsDir()
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("(%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "; ")
}

// samePath reports whether a and b name the same file.
func samePath(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
