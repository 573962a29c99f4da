package gitstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/nexus-mem/nexus/internal/durable"
)

// repo is the bare git repository: its packs and its main ref. It owns the
// durable write path; go-git is used only for the pack index format.
type repo struct {
	dir     string // <data>/repo.git
	packDir string // objects/pack

	mu    sync.RWMutex // guards packs
	packs []*pack      // newest first

	spares *spares

	corruptReads atomic.Int64                 // objects that failed their hash on read
	lastCorrupt  atomic.Pointer[CorruptError] // the latest of them
}

const mainRef = "refs/heads/main"

// initRepo creates the skeleton of a bare repository if it does not exist.
// headContent is what a Nexus repository's HEAD holds: git opens the
// repository through it, and `git clone` checks main out.
const headContent = "ref: " + mainRef + "\n"

// checkHEAD says what is wrong with the repository's HEAD, or nil.
func checkHEAD(gitDir string) error {
	b, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return err
	}
	if string(b) != headContent {
		return fmt.Errorf("HEAD holds %q, not %q: stock git cannot open the repository", truncate(string(b), 64), strings.TrimSpace(headContent))
	}
	return nil
}

// fixHEAD rewrites a damaged HEAD durably and says what it did, or "".
func fixHEAD(gitDir string) (string, error) {
	err := checkHEAD(gitDir)
	if err == nil {
		return "", nil
	}
	if werr := writeFileDurable(gitDir, "HEAD", []byte(headContent)); werr != nil {
		return "", werr
	}
	return fmt.Sprintf("HEAD rewritten (%v)", err), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func initRepo(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		return nil
	}
	for _, d := range []string{"objects/pack", "objects/info", "refs/heads", "refs/tags", "info"} {
		if err := os.MkdirAll(filepath.Join(dir, d), privateDir); err != nil {
			return err
		}
	}
	files := map[string]string{
		"config":      "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n\tsharedRepository = 0600\n[gc]\n\tauto = 0\n",
		"description": "Nexus memory\n",
	}
	for name, content := range files {
		if err := writeFileDurable(dir, name, []byte(content)); err != nil {
			return err
		}
	}
	// HEAD last: its presence marks a complete skeleton. Then every
	// directory that gained entries is fsynced, deepest first, so that
	// the skeleton is durable before it is used.
	if err := writeFileDurable(dir, "HEAD", []byte(headContent)); err != nil {
		return err
	}
	for _, d := range []string{filepath.Join(dir, "objects"), filepath.Join(dir, "refs"), dir, filepath.Dir(dir)} {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// openRepo opens the repository, removing what a crash can leave behind:
// temp files and packs without an index.
func openRepo(dir string) (*repo, error) {
	r := &repo{dir: dir, packDir: filepath.Join(dir, "objects", "pack"), spares: newSpares(3, 16)}
	if err := r.cleanup(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(r.packDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".idx")
		if !ok || !isPackName(name) {
			continue
		}
		p, err := openPack(r.packDir, name, nil)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("open %s: %w", name, err)
		}
		r.packs = append(r.packs, p)
	}
	r.sortPacks()
	return r, nil
}

// sortPacks orders packs by modification time, newest first, so recent
// objects are found sooner.
func (r *repo) sortPacks() {
	mt := map[*pack]int64{}
	for _, p := range r.packs {
		if st, err := p.f.Stat(); err == nil {
			mt[p] = st.ModTime().UnixNano()
		}
	}
	sort.SliceStable(r.packs, func(i, j int) bool { return mt[r.packs[i]] > mt[r.packs[j]] })
}

// cleanup removes temp files and orphan packs (a .pack whose .idx was never
// renamed into place, i.e. a batch that was never acknowledged).
func (r *repo) cleanup() error {
	ents, err := os.ReadDir(r.packDir)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name()] = true
	}
	for _, e := range ents {
		n := e.Name()
		base, isPack := strings.CutSuffix(n, ".pack")
		idxBase, isIdx := strings.CutSuffix(n, ".idx")
		orphan := (isPack && !have[base+".idx"]) || (isIdx && !have[idxBase+".pack"])
		if strings.HasPrefix(n, "tmp_") || orphan {
			if err := os.Remove(filepath.Join(r.packDir, n)); err != nil {
				return err
			}
		}
	}
	return r.removeRefSpares()
}

// removeRefSpares deletes the temp files of every ref directory (each
// ref's directory keeps one spare while the store is open).
func (r *repo) removeRefSpares() error {
	err := filepath.WalkDir(filepath.Join(r.dir, "refs"), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return removeTemps(path)
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// removeTemps deletes the tmp_* files of dir.
func removeTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "tmp_") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *repo) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.packs {
		p.f.Close()
	}
	r.packs = nil
}

// readObject returns an object's type and content, verifying its hash.
func (r *repo) readObject(h Hash) (objType, []byte, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.readObjectLocked(h, 0)
}

func (r *repo) readObjectLocked(h Hash, depth int) (objType, []byte, error) {
	for _, p := range r.packs {
		off, ok := p.offset(h)
		if !ok {
			continue
		}
		resolve := func(b Hash) (objType, []byte, error) { return r.readObjectLocked(b, depth+1) }
		t, data, err := p.readAt(off, resolve, depth)
		if err != nil {
			return 0, nil, r.corrupt(&CorruptError{Object: h, Err: fmt.Errorf("in %s at offset %d: %w", p.name, off, err)})
		}
		if got := hashObject(t, data); got != h {
			return 0, nil, r.corrupt(&CorruptError{Object: h, Err: fmt.Errorf("in %s at offset %d: content hashes to %s", p.name, off, got)})
		}
		return t, data, nil
	}
	return 0, nil, &MissingError{Object: h}
}

// corrupt counts a read that found damage, for the health check.
func (r *repo) corrupt(e *CorruptError) *CorruptError {
	r.corruptReads.Add(1)
	r.lastCorrupt.Store(e)
	return e
}

// readTyped reads an object and checks its type.
func (r *repo) readTyped(h Hash, want objType) ([]byte, error) {
	t, data, err := r.readObject(h)
	if err != nil {
		return nil, err
	}
	if t != want {
		return nil, &CorruptError{Object: h, Err: fmt.Errorf("is a %s, want a %s", t, want)}
	}
	return data, nil
}

// hasObject reports whether any pack holds h.
func (r *repo) hasObject(h Hash) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, p := range r.packs {
		if _, ok := p.offset(h); ok {
			return true
		}
	}
	return false
}

// commitPack makes a finished pack durable and moves main to head:
//
//  1. pack and index are written to temp files and fsynced (neither is
//     visible yet);
//  2. they are renamed into place and objects/pack is fsynced;
//  3. afterPack runs (a failpoint), then the ref moves (see moveRef).
//
// An error before step 2 leaves nothing behind. A *SyncError from a
// directory fsync leaves the outcome unknown. Step 1 runs sequentially:
// fsyncing the files from parallel goroutines was measured slower here
// (docs/STORAGE.md).
func (r *repo) commitPack(data []byte, idx *packIndex, ref string, head Hash, afterPack func() error) error {
	if err := r.writePack(data, idx); err != nil {
		return err
	}
	if err := afterPack(); err != nil {
		return err
	}
	return r.moveRef(ref, head)
}

// refSpare is the temp file a ref is written through, one in each ref
// directory, where git ignores names ending in ".lock".
const refSpare = "tmp_ref.lock"

// moveRef points ref at head: the new value is written to the spare ref
// file and fsynced, the spare and the ref swap names in one atomic
// exchange, and the ref's directory is fsynced. After the swap the spare
// holds the old value and is reused next time, so moving a ref creates no
// file (creating one is the costliest step of a commit on ext4). Where the
// exchange is not available, or the ref does not exist yet, a plain rename
// does the same.
func (r *repo) moveRef(ref string, head Hash) error {
	main := filepath.Join(r.dir, ref)
	refDir := filepath.Dir(main)
	if err := mkdirDurable(refDir); err != nil {
		return err
	}
	tmp := filepath.Join(refDir, refSpare)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, privateFile)
	if err != nil {
		return err
	}
	line := head.String() + "\n"
	_, err = f.WriteAt([]byte(line), 0)
	if err == nil {
		err = f.Truncate(int64(len(line)))
	}
	if err == nil {
		err = syncTemp(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := exchange(tmp, main); err != nil {
		if err := os.Rename(tmp, main); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	return syncDir(refDir)
}

// writePack stages a pack and its index in fsynced temp files, then
// installs them.
func (r *repo) writePack(data []byte, idx *packIndex) error {
	packTmp, err := stageFile(r.spares, r.packDir, data)
	if err != nil {
		return err
	}
	idxTmp, err := stageFile(r.spares, r.packDir, idx.data)
	if err != nil {
		os.Remove(packTmp)
		return err
	}
	return r.installPack("pack-"+idx.packSum().String(), idx, packTmp, idxTmp)
}

// installPack renames a staged pack and index into place, fsyncs the
// directory and adds the pack to the set.
func (r *repo) installPack(name string, idx *packIndex, packTmp, idxTmp string) error {
	packPath, idxPath := filepath.Join(r.packDir, name+".pack"), filepath.Join(r.packDir, name+".idx")
	err := os.Rename(packTmp, packPath)
	if err == nil {
		if err = os.Rename(idxTmp, idxPath); err != nil {
			os.Remove(packPath)
		}
	}
	if err != nil {
		os.Remove(packTmp)
		os.Remove(idxTmp)
		return err
	}
	if err := syncDir(r.packDir); err != nil {
		return err
	}
	p, err := openPack(r.packDir, name, idx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.packs = append([]*pack{p}, r.packs...)
	r.mu.Unlock()
	return nil
}

// readRef returns the commit refs/heads/main points to, or the zero hash
// for a repository without commits.
func (r *repo) readRef() (Hash, error) { return r.readNamedRef(mainRef) }

// readNamedRef returns the commit ref points to, or the zero hash if the
// ref does not exist.
func (r *repo) readNamedRef(ref string) (Hash, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, ref))
	if errors.Is(err, os.ErrNotExist) {
		return r.readPackedRef(ref)
	}
	if err != nil {
		return zeroHash, err
	}
	h, err := ParseHash(string(bytes.TrimSpace(b)))
	if err != nil {
		return zeroHash, fmt.Errorf("%s is damaged (%d bytes): %w", ref, len(b), err)
	}
	return h, nil
}

// listRefs reads every ref but main, loose (temp files skipped) or packed.
func (r *repo) listRefs() (map[string]Hash, error) {
	out := map[string]Hash{}
	root := filepath.Join(r.dir, "refs")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), "tmp_") || strings.HasSuffix(d.Name(), ".lock") {
			return err
		}
		rel, err := filepath.Rel(r.dir, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if name == mainRef {
			return nil // every caller uses the acknowledged head, or none
		}
		h, err := r.readNamedRef(name)
		if err != nil {
			return err
		}
		if !h.IsZero() {
			out[name] = h
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Refs packed by git (a clone of a backup packs them all); a loose
	// ref of the same name overrides its packed value.
	b, err := os.ReadFile(filepath.Join(r.dir, "packed-refs"))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		hs, name, ok := strings.Cut(line, " ")
		if !ok || name == mainRef || !strings.HasPrefix(name, "refs/") || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "^") {
			continue
		}
		if _, loose := out[name]; loose {
			continue
		}
		h, err := ParseHash(hs)
		if err != nil {
			return nil, fmt.Errorf("packed-refs: %s: %w", name, err)
		}
		out[name] = h
	}
	return out, nil
}

// readPackedRef looks ref up in packed-refs, where `git pack-refs` puts it.
func (r *repo) readPackedRef(ref string) (Hash, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, "packed-refs"))
	if errors.Is(err, os.ErrNotExist) {
		return zeroHash, nil
	}
	if err != nil {
		return zeroHash, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if h, name, ok := strings.Cut(line, " "); ok && name == ref {
			return ParseHash(h)
		}
	}
	return zeroHash, nil
}

// mkdirDurable creates dir and its missing parents, fsyncing each parent
// whose entries changed.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := mkdirDurable(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, privateDir); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// writeFileDurable writes dir/name through a temp file in dir that is
// fsynced before the rename. The caller fsyncs dir when it needs the name
// itself to be durable.
func writeFileDurable(dir, name string, data []byte) error {
	tmp, err := stageFile(nil, dir, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeFileDurableStream is [writeFileDurable] of what write writes: the
// file is streamed through a buffer, never held whole in memory.
func writeFileDurableStream(dir, name string, write func(io.Writer) error) error {
	return durable.WriteFile(dir, name, spareName, syncTemp, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 1<<20)
		if err := write(w); err != nil {
			return err
		}
		return w.Flush()
	})
}

// stageFile writes data to a temp file in dir (from sp, if set), fsyncs
// and closes it, and returns its path. On error nothing is left behind.
func stageFile(sp *spares, dir string, data []byte) (string, error) {
	f, err := tempIn(sp, dir)
	if err != nil {
		return "", err
	}
	_, err = f.WriteAt(data, 0)
	return sealTemp(f, int64(len(data)), err)
}

// sealTemp ends the writing of temp file f, whose content is its first
// size bytes, unless err (the writing's) is set: it cuts f to size (a
// recycled spare may be longer), fsyncs and closes it, and returns its
// path. On any error f is closed and removed, and the error returned.
func sealTemp(f *os.File, size int64, err error) (string, error) {
	if err == nil {
		err = f.Truncate(size)
	}
	if err == nil {
		err = syncTemp(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// tempIn returns a temp file in dir to write a pack or index to: a
// spare if sp has one ready.
func tempIn(sp *spares, dir string) (*os.File, error) {
	if sp != nil {
		return sp.take(dir)
	}
	return os.CreateTemp(dir, spareName)
}

// mergeFile returns the temp file a merge streams its pack to: a spare
// in the pack directory. A variable only so that tests can see the file
// and make its writes fail (packstream_test.go).
var mergeFile = func(r *repo) (*os.File, error) { return tempIn(r.spares, r.packDir) }

// syncDir fsyncs a directory so that renames and creations in it survive a
// power loss. It is a variable only so that the power-loss test can take
// it away and show that it notices (powerloss_test.go).
var syncDir = fsyncDir

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = syncFile(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// noSpace says which limit a no-space error hit.
func noSpace(err error) string {
	if errors.Is(err, syscall.EDQUOT) {
		return "the disk quota is exceeded"
	}
	return "the disk is full"
}

// isNoSpace reports whether err means the disk or quota is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// CorruptError reports an object whose stored bytes are damaged.
type CorruptError struct {
	Object Hash
	Err    error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("object %s is corrupt: %v", e.Object, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// MissingError reports an object that no pack holds.
type MissingError struct{ Object Hash }

func (e *MissingError) Error() string { return fmt.Sprintf("object %s is missing", e.Object) }

// syncTemp fsyncs a temp file that is deleted if this fails, so a failure
// is an ordinary error: nothing keeps the unsynced data. It is a variable
// for the same reason as syncDir.
var syncTemp = fsyncTemp

func fsyncTemp(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	return nil
}

// syncFile fsyncs f, marking a failure as a *SyncError: after a failed
// fsync the kernel may have dropped the dirty pages, so what was written
// must never be trusted even if a second fsync succeeds.
func syncFile(f *os.File) error {
	if err := f.Sync(); err != nil {
		return &SyncError{Path: f.Name(), Err: err}
	}
	return nil
}

// SyncError reports a failed fsync.
type SyncError struct {
	Path string
	Err  error
}

func (e *SyncError) Error() string { return fmt.Sprintf("fsync %s: %v", e.Path, e.Err) }
func (e *SyncError) Unwrap() error { return e.Err }
