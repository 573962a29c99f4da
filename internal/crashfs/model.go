package crashfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"
)

// inodeID names an inode of the model. Backing inode numbers are not used
// for this because the backing file system reuses them once a file is gone,
// while the model may still need the old file (a durable entry can name it
// after an unlink that was not made durable).
type inodeID uint64

type kind uint8

const (
	kindFile kind = iota
	kindDir
	kindSymlink
	kindOther // fifos, sockets, devices: materialised as empty files
)

func kindOf(mode uint32) kind {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return kindDir
	case syscall.S_IFLNK:
		return kindSymlink
	case syscall.S_IFREG:
		return kindFile
	}
	return kindOther
}

// inode is what the model knows of one inode: its kind and what of it is
// durable.
type inode struct {
	kind   kind
	perm   os.FileMode
	target string // symlinks: their target, durable with the entry

	// data is a file's contents as of its last fsync; nil before the
	// first (such a file is durable as an empty file).
	data []byte
	// entries are a directory's entries as of its last fsync; nil before
	// the first (such a directory is durable empty).
	entries map[string]inodeID
}

// model maps the backing file system's live inodes to the model's and
// holds the durable state. Its methods are called with FS.mu held.
type model struct {
	live  map[uint64]inodeID // backing inode number → current inode
	nodes map[inodeID]*inode
	next  inodeID
	root  inodeID
}

func newModel() *model {
	return &model{live: map[uint64]inodeID{}, nodes: map[inodeID]*inode{}}
}

// created records a new backing inode: whatever inode the number named
// before is gone from the backing file system (it could not be reused
// otherwise), so the number now names a new inode.
func (m *model) created(ino uint64, mode uint32, target string) inodeID {
	m.next++
	id := m.next
	m.live[ino] = id
	m.nodes[id] = &inode{kind: kindOf(mode), perm: os.FileMode(mode & 0o7777), target: target}
	return id
}

// of returns the inode a live backing inode number stands for, recording
// it if the model has not seen it (it then has nothing durable).
func (m *model) of(ino uint64, mode uint32, target string) inodeID {
	if id, ok := m.live[ino]; ok {
		return id
	}
	return m.created(ino, mode, target)
}

// syncFile records data as the durable contents of the backing inode ino.
func (m *model) syncFile(ino uint64, mode uint32, data []byte) {
	n := m.nodes[m.of(ino, mode, "")]
	n.perm = os.FileMode(mode & 0o7777)
	if data == nil {
		data = []byte{}
	}
	n.data = data
}

// dirent is one entry of a backing directory listing.
type dirent struct {
	name   string
	ino    uint64
	mode   uint32
	target string
}

// syncDir records ents as the durable entries of the backing directory ino.
func (m *model) syncDir(ino uint64, mode uint32, ents []dirent) {
	n := m.nodes[m.of(ino, mode, "")]
	n.perm = os.FileMode(mode & 0o7777)
	n.entries = make(map[string]inodeID, len(ents))
	for _, e := range ents {
		n.entries[e.name] = m.of(e.ino, e.mode, e.target)
	}
}

// scan records the backing tree at dir as durable, the state a mount
// starts from.
func (m *model) scan(dir string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("crashfs: backing %s is not a directory", dir)
	}
	m.root = m.of(st.Ino, st.Mode, "")
	return m.scanDir(dir, st.Ino, st.Mode)
}

func (m *model) scanDir(dir string, ino uint64, mode uint32) error {
	ents, err := listDir(dir)
	if err != nil {
		return err
	}
	m.syncDir(ino, mode, ents)
	for _, e := range ents {
		p := filepath.Join(dir, e.name)
		switch kindOf(e.mode) {
		case kindDir:
			if err := m.scanDir(p, e.ino, e.mode); err != nil {
				return err
			}
		case kindFile:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m.syncFile(e.ino, e.mode, data)
		}
	}
	return nil
}

// listDir lists the backing directory at path.
func listDir(path string) ([]dirent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return listDirFile(f)
}

// listDirFile lists an open backing directory (from its start, whatever
// f's offset) with the inode number and mode of each entry and the target
// of symlinks. It works on a directory that was renamed since f was
// opened.
func listDirFile(f *os.File) ([]dirent, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var oerr error
	if err := sc.Control(func(d uintptr) {
		fd, oerr = unix.Openat(int(d), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, &os.PathError{Op: "openat", Path: f.Name(), Err: oerr}
	}
	d := os.NewFile(uintptr(fd), f.Name())
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	ents := make([]dirent, 0, len(names))
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, &os.PathError{Op: "fstatat", Path: filepath.Join(f.Name(), name), Err: err}
		}
		e := dirent{name: name, ino: st.Ino, mode: st.Mode}
		if kindOf(st.Mode) == kindSymlink {
			buf := make([]byte, unix.PathMax)
			n, err := unix.Readlinkat(fd, name, buf)
			if err != nil {
				return nil, &os.PathError{Op: "readlinkat", Path: filepath.Join(f.Name(), name), Err: err}
			}
			e.target = string(buf[:n])
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// materialise writes the durable tree into dst, which must exist. Inodes
// with several durable names become hard links.
func (m *model) materialise(dst string) error {
	w := &writer{m: m, files: map[inodeID]string{}, dirs: map[inodeID]bool{m.root: true}}
	return w.dir(m.nodes[m.root], dst)
}

type writer struct {
	m     *model
	files map[inodeID]string // inode → first path written
	dirs  map[inodeID]bool   // directories already written
}

func (w *writer) dir(n *inode, path string) error {
	names := make([]string, 0, len(n.entries))
	for name := range n.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		id := n.entries[name]
		if err := w.entry(id, w.m.nodes[id], filepath.Join(path, name)); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) entry(id inodeID, n *inode, path string) error {
	switch n.kind {
	case kindDir:
		if w.dirs[id] {
			return nil // already written under another name
		}
		w.dirs[id] = true
		if err := os.Mkdir(path, n.perm|0o700); err != nil {
			return err
		}
		return w.dir(n, path)
	case kindSymlink:
		return os.Symlink(n.target, path)
	}
	if first, ok := w.files[id]; ok {
		return os.Link(first, path)
	}
	w.files[id] = path
	return os.WriteFile(path, n.data, n.perm|0o600)
}
