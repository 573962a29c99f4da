package crashfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node that tells the model about new inodes, records
// directory fsyncs, and fails with EIO once the power is cut.
type node struct {
	*fs.LoopbackNode
	fs *FS
}

var (
	_ fs.NodeWrapChilder     = (*node)(nil)
	_ fs.NodeCreater         = (*node)(nil)
	_ fs.NodeOpener          = (*node)(nil)
	_ fs.NodeOpendirHandler  = (*node)(nil)
	_ fs.NodeMkdirer         = (*node)(nil)
	_ fs.NodeMknoder         = (*node)(nil)
	_ fs.NodeSymlinker       = (*node)(nil)
	_ fs.NodeLinker          = (*node)(nil)
	_ fs.NodeRenamer         = (*node)(nil)
	_ fs.NodeUnlinker        = (*node)(nil)
	_ fs.NodeRmdirer         = (*node)(nil)
	_ fs.NodeSetattrer       = (*node)(nil)
	_ fs.NodeCopyFileRanger  = (*node)(nil)
	_ fs.NodeTmpfiler        = (*node)(nil)
	_ fs.FileFsyncer         = (*file)(nil)
	_ fs.FileWriter          = (*file)(nil)
	_ fs.FileWritever        = (*file)(nil)
	_ fs.FileAllocater       = (*file)(nil)
	_ fs.FilePassthroughFder = (*file)(nil)
	_ fs.FileFsyncdirer      = (*dir)(nil)
)

// WrapChild makes every node of the tree a *node.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

// path returns the node's path in the backing directory.
func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// change runs op, an operation that changes directories, unless the power
// is cut; the model cannot record a directory fsync meanwhile.
func (n *node) change(op func() syscall.Errno) syscall.Errno {
	n.fs.ns.RLock()
	defer n.fs.ns.RUnlock()
	if n.fs.dead() {
		return syscall.EIO
	}
	return op()
}

// created tells the model about the inode an operation just created.
func (n *node) created(out *fuse.EntryOut, target string) {
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	n.fs.model.created(out.Attr.Ino, out.Attr.Mode, target)
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (ch *fs.Inode, fh fs.FileHandle, fuseFlags uint32, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		ch, fh, fuseFlags, errno = n.LoopbackNode.Create(ctx, name, flags, mode, out)
		if errno == 0 {
			n.created(out, "")
			fh = &file{LoopbackFile: fh.(*fs.LoopbackFile), fs: n.fs}
		}
		return errno
	})
	return ch, fh, fuseFlags, errno
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.fs.dead() {
		return nil, 0, syscall.EIO
	}
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &file{LoopbackFile: fh.(*fs.LoopbackFile), fs: n.fs}, fuseFlags, 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if n.fs.dead() {
		return nil, 0, syscall.EIO
	}
	fh, fuseFlags, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	stream, ok := fh.(dirStream)
	if !ok {
		return nil, 0, syscall.ENOTSUP
	}
	f, err := os.Open(n.path())
	if err != nil {
		stream.Releasedir(ctx, 0)
		return nil, 0, fs.ToErrno(err)
	}
	return &dir{dirStream: stream, f: f, fs: n.fs}, fuseFlags, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		if ch, errno = n.LoopbackNode.Mkdir(ctx, name, mode, out); errno == 0 {
			n.created(out, "")
		}
		return errno
	})
	return ch, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		if ch, errno = n.LoopbackNode.Mknod(ctx, name, mode, rdev, out); errno == 0 {
			n.created(out, "")
		}
		return errno
	})
	return ch, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		if ch, errno = n.LoopbackNode.Symlink(ctx, target, name, out); errno == 0 {
			n.created(out, target)
		}
		return errno
	})
	return ch, errno
}

// Link adds a name to an existing inode: the model's inode is the target's.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (ch *fs.Inode, errno syscall.Errno) {
	errno = n.change(func() syscall.Errno {
		ch, errno = n.LoopbackNode.Link(ctx, target, name, out)
		return errno
	})
	return ch, errno
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return n.change(func() syscall.Errno {
		return n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	})
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.change(func() syscall.Errno { return n.LoopbackNode.Unlink(ctx, name) })
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.change(func() syscall.Errno { return n.LoopbackNode.Rmdir(ctx, name) })
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fs.dead() {
		return syscall.EIO
	}
	return n.LoopbackNode.Setattr(ctx, fh, in, out)
}

func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut, size, flags uint64) (uint32, syscall.Errno) {
	if n.fs.dead() {
		return 0, syscall.EIO
	}
	in, ok1 := fhIn.(*file)
	o, ok2 := fhOut.(*file)
	if !ok1 || !ok2 {
		return 0, syscall.ENOTSUP
	}
	return n.LoopbackNode.CopyFileRange(ctx, in.LoopbackFile, offIn, out, o.LoopbackFile, offOut, size, flags)
}

// Tmpfile refuses O_TMPFILE, which the model does not follow (an inode
// without a name that LINKAT could name later).
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// file is an open file: writes fail once the power is cut, and fsync
// records the contents in the model.
type file struct {
	*fs.LoopbackFile
	fs *FS
}

// PassthroughFd declines kernel passthrough, which would send reads and
// writes to the backing file without this file system seeing them.
func (f *file) PassthroughFd() (int, bool) { return 0, false }

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if f.fs.dead() {
		return 0, syscall.EIO
	}
	return f.LoopbackFile.Write(ctx, data, off)
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	if f.fs.dead() {
		return 0, syscall.EIO
	}
	return f.LoopbackFile.Writev(ctx, data, off)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if f.fs.dead() {
		return syscall.EIO
	}
	return f.LoopbackFile.Allocate(ctx, off, size, mode)
}

// Fsync (and fdatasync) records the file's current contents as durable.
// The contents are read through a new descriptor of the same inode, so
// this works for files opened write-only and for unlinked files.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	fd, ok := f.LoopbackFile.PassthroughFd()
	if !ok {
		return syscall.EBADF
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.dead() {
		return syscall.EIO
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return fs.ToErrno(err)
	}
	f.fs.model.syncFile(st.Ino, st.Mode, data)
	return 0
}

// dirStream is what go-fuse's loopback directory handle implements.
type dirStream interface {
	fs.FileReaddirenter
	fs.FileSeekdirer
	fs.FileReleasedirer
}

// dir is an open directory: fsync records its entries in the model.
type dir struct {
	dirStream
	f  *os.File // the backing directory, for listing it at fsync
	fs *FS
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	d.f.Close()
	d.dirStream.Releasedir(ctx, flags)
}

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	d.fs.ns.Lock()
	defer d.fs.ns.Unlock()
	if d.fs.dead() {
		return syscall.EIO
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(d.f.Fd()), &st); err != nil {
		return fs.ToErrno(err)
	}
	ents, err := listDirFile(d.f)
	if err != nil {
		return fs.ToErrno(err)
	}
	d.fs.mu.Lock()
	defer d.fs.mu.Unlock()
	d.fs.model.syncDir(st.Ino, st.Mode, ents)
	return 0
}
