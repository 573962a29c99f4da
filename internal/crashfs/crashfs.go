package crashfs

import (
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/nexus-mem/nexus/internal/damage"
)

// ErrNoFUSE is returned (wrapped) by [Mount] when the file system cannot
// be mounted on this machine at all.
var ErrNoFUSE = errors.New("crashfs: cannot mount a FUSE file system")

// FS is a mounted crash-simulating file system.
type FS struct {
	backing, mnt string
	server       *fuse.Server
	crashed      atomic.Bool
	unmount      sync.Once
	unmountErr   error

	// ns is held shared by every operation that changes a directory, and
	// exclusively by a directory fsync, so that the entries it records
	// are a state the directory really was in, with each new backing
	// inode already known to the model.
	ns sync.RWMutex

	// mu guards the model; file fsyncs hold it while they read the file,
	// so that two fsyncs of one file are recorded in order.
	mu    sync.Mutex
	model *model
}

// Mount mounts at mountpoint (an existing directory) a loopback of
// backing, whose current contents count as durable.
func Mount(backing, mountpoint string) (*FS, error) {
	f := &FS{backing: backing, mnt: mountpoint, model: newModel()}
	if err := f.model.scan(backing); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoFUSE, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, err
	}
	lr := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: lr}, fs: f}
	lr.RootNode = root
	quiet := log.New(io.Discard, "", 0)
	sec := time.Second
	opts := &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		Logger:       quiet,
		MountOptions: fuse.MountOptions{
			DirectMount: true, // as root: mount(2) itself, else fusermount
			FsName:      backing,
			Name:        "crashfs",
			Logger:      quiet,
		},
	}
	server, err := fs.Mount(mountpoint, root, opts)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %v", ErrNoFUSE, mountpoint, err)
	}
	f.server = server
	return f, nil
}

// MountTest mounts backing on a new temp directory for the test and
// unmounts it when the test ends. A backing of "" is a new empty temp
// directory. When FUSE cannot be mounted here the test is skipped, or
// fails if the environment variable CI is set: CI must run it.
func MountTest(tb testing.TB, backing string) *FS {
	tb.Helper()
	if backing == "" {
		backing = tb.TempDir()
	}
	f, err := Mount(backing, tb.TempDir())
	if errors.Is(err, ErrNoFUSE) {
		Unavailable(tb, "crash simulation needs FUSE: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			tb.Errorf("crashfs: %v", err)
		}
	})
	return f
}

// Unavailable ends a test whose fault cannot be set up on this machine:
// it fails when the environment variable CI is set (to anything but
// "false" or "0"), where the fault must be set up, and is skipped
// otherwise.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		tb.Fatalf("CI=%s, and the fault cannot be set up: "+format, append([]any{ci}, args...)...)
	}
	tb.Skipf(format, args...)
}

// Dir returns the mount point.
func (f *FS) Dir() string { return f.mnt }

// Crash cuts the power. Every later operation that would change the file
// system or make something durable fails with EIO, and the durable state
// is written into dst (created if missing, and empty). Files still open
// keep failing until they are closed; [FS.Unmount] then unmounts.
func (f *FS) Crash(dst string) error {
	f.ns.Lock()
	f.mu.Lock()
	f.crashed.Store(true)
	f.mu.Unlock()
	f.ns.Unlock()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if ents, err := os.ReadDir(dst); err != nil || len(ents) > 0 {
		return fmt.Errorf("crashfs: %s is not an empty directory (%v)", dst, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.model.materialise(dst)
}

// Unmount unmounts the file system. It is lazy (MNT_DETACH) if files are
// still open after a few tries, and it may be called more than once.
func (f *FS) Unmount() error {
	f.unmount.Do(func() {
		if err := f.server.Unmount(); err != nil {
			if err := syscall.Unmount(f.mnt, syscall.MNT_DETACH); err != nil {
				f.unmountErr = fmt.Errorf("unmount %s: %v", f.mnt, err)
				return
			}
			done := make(chan struct{})
			go func() { f.server.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				f.unmountErr = fmt.Errorf("unmount %s: files still open 10 s after a lazy unmount", f.mnt)
			}
		}
	})
	return f.unmountErr
}

// dead reports whether the power was cut.
func (f *FS) dead() bool { return f.crashed.Load() }

// Tmpfs mounts a tmpfs of size (as mount takes it: "6m") on a new
// temporary directory for a test of a full disk, and unmounts it when the
// test ends. Where it cannot be mounted (no root) the test fails under CI
// and is skipped otherwise, like every test of a real fault.
func Tmpfs(tb testing.TB, size string) string {
	tb.Helper()
	mnt := tb.TempDir()
	unmount, err := damage.MountTmpfs(mnt, size)
	if err != nil {
		Unavailable(tb, "%v", err)
	}
	tb.Cleanup(func() { unmount() })
	return mnt
}
