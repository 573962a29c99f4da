package crashfs_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nexus-mem/nexus/internal/crashfs"
)

// disk is a mounted crashfs with helpers that fail the test on error.
type disk struct {
	t  *testing.T
	fs *crashfs.FS
}

func mount(t *testing.T) *disk {
	return &disk{t: t, fs: crashfs.MountTest(t, "")}
}

func (d *disk) path(name string) string { return filepath.Join(d.fs.Dir(), name) }

// write replaces name's contents (O_TRUNC), fsyncing the file if sync.
func (d *disk) write(name, data string, sync bool) {
	d.t.Helper()
	f, err := os.OpenFile(d.path(name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		d.t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			d.t.Fatal(err)
		}
	}
}

// syncDir fsyncs the directory name ("" for the root).
func (d *disk) syncDir(name string) {
	d.t.Helper()
	f, err := os.Open(d.path(name))
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		d.t.Fatal(err)
	}
}

func (d *disk) must(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatal(err)
	}
}

// crash cuts the power and returns the durable tree.
func (d *disk) crash() map[string]string {
	d.t.Helper()
	dst := d.t.TempDir()
	d.must(d.fs.Crash(dst))
	return tree(d.t, dst)
}

// tree describes a directory: file path → contents, "dir/" → "" for
// directories, symlinks as "-> target".
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case e.IsDir():
			out[rel+"/"] = ""
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "-> " + target
			return err
		default:
			b, err := os.ReadFile(p)
			out[rel] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func want(t *testing.T, got map[string]string, kv ...string) {
	t.Helper()
	w := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		w[kv[i]] = kv[i+1]
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("durable state after the crash:\n got  %s\n want %s", show(got), show(w))
	}
}

func show(m map[string]string) string {
	var s []string
	for k, v := range m {
		s = append(s, k+"="+strconv.Quote(v))
	}
	sort.Strings(s)
	return "{" + strings.Join(s, " ") + "}"
}

func TestFS_Crash_FileData(t *testing.T) {
	t.Run("nothing synced", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", false)
		want(t, d.crash())
	})
	t.Run("file synced, directory not", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		want(t, d.crash())
	})
	t.Run("directory synced, file not", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", false)
		d.syncDir("")
		want(t, d.crash(), "a", "")
	})
	t.Run("both synced", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.syncDir("")
		want(t, d.crash(), "a", "A")
	})
	t.Run("fdatasync counts", func(t *testing.T) {
		d := mount(t)
		f, err := os.Create(d.path("a"))
		d.must(err)
		defer f.Close()
		_, err = f.WriteString("A")
		d.must(err)
		d.must(unix.Fdatasync(int(f.Fd())))
		d.syncDir("")
		want(t, d.crash(), "a", "A")
	})
	t.Run("writes after the fsync are dropped", func(t *testing.T) {
		d := mount(t)
		d.write("a", "v1", true)
		d.syncDir("")
		f, err := os.OpenFile(d.path("a"), os.O_WRONLY|os.O_APPEND, 0)
		d.must(err)
		_, err = f.WriteString(" and more")
		d.must(err)
		d.must(f.Close())
		want(t, d.crash(), "a", "v1")
	})
	t.Run("O_TRUNC after the fsync is dropped", func(t *testing.T) {
		d := mount(t)
		d.write("a", "version one", true)
		d.syncDir("")
		d.write("a", "2", false)
		want(t, d.crash(), "a", "version one")
	})
	t.Run("truncate and ftruncate after the fsync are dropped", func(t *testing.T) {
		d := mount(t)
		d.write("a", "AAAA", true)
		d.write("b", "BBBB", true)
		d.syncDir("")
		d.must(os.Truncate(d.path("a"), 1))
		f, err := os.OpenFile(d.path("b"), os.O_RDWR, 0)
		d.must(err)
		d.must(f.Truncate(2))
		d.must(f.Close())
		want(t, d.crash(), "a", "AAAA", "b", "BBBB")
	})
	t.Run("a truncate then fsynced is durable", func(t *testing.T) {
		d := mount(t)
		d.write("a", "AAAA", true)
		d.syncDir("")
		f, err := os.OpenFile(d.path("a"), os.O_RDWR, 0)
		d.must(err)
		d.must(f.Truncate(1))
		d.must(f.Sync())
		d.must(f.Close())
		want(t, d.crash(), "a", "A")
	})
	t.Run("file opened write-only", func(t *testing.T) {
		d := mount(t)
		f, err := os.OpenFile(d.path("a"), os.O_WRONLY|os.O_CREATE, 0o644)
		d.must(err)
		_, err = f.WriteString("W")
		d.must(err)
		d.must(f.Sync())
		d.must(f.Close())
		d.syncDir("")
		want(t, d.crash(), "a", "W")
	})
}

func TestFS_Crash_Names(t *testing.T) {
	t.Run("rename reverts without a directory fsync", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.syncDir("")
		d.must(os.Rename(d.path("a"), d.path("b")))
		want(t, d.crash(), "a", "A")
	})
	t.Run("rename with a directory fsync", func(t *testing.T) {
		d := mount(t)
		d.write("tmp", "A", true)
		d.must(os.Rename(d.path("tmp"), d.path("b")))
		d.syncDir("")
		want(t, d.crash(), "b", "A")
	})
	t.Run("rename over a file reverts", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.write("b", "B", true)
		d.syncDir("")
		d.must(os.Rename(d.path("a"), d.path("b")))
		want(t, d.crash(), "a", "A", "b", "B")
	})
	t.Run("rename over a file, synced", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.write("b", "B", true)
		d.syncDir("")
		d.must(os.Rename(d.path("a"), d.path("b")))
		d.syncDir("")
		want(t, d.crash(), "b", "A")
	})
	t.Run("RENAME_EXCHANGE reverts without a directory fsync", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.write("b", "B", true)
		d.syncDir("")
		d.must(unix.Renameat2(unix.AT_FDCWD, d.path("a"), unix.AT_FDCWD, d.path("b"), unix.RENAME_EXCHANGE))
		if b, _ := os.ReadFile(d.path("a")); string(b) != "B" {
			t.Fatalf("after the exchange a holds %q", b)
		}
		want(t, d.crash(), "a", "A", "b", "B")
	})
	t.Run("RENAME_EXCHANGE, synced", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.write("b", "B", true)
		d.syncDir("")
		d.must(unix.Renameat2(unix.AT_FDCWD, d.path("a"), unix.AT_FDCWD, d.path("b"), unix.RENAME_EXCHANGE))
		d.syncDir("")
		want(t, d.crash(), "a", "B", "b", "A")
	})
	t.Run("RENAME_EXCHANGE then a write to the old inode", func(t *testing.T) {
		// The ref update of gitstore: the spare takes the old value
		// and is rewritten and fsynced before the next exchange.
		d := mount(t)
		d.write("ref", "1", true)
		d.syncDir("")
		d.write("spare", "2", true)
		d.must(unix.Renameat2(unix.AT_FDCWD, d.path("spare"), unix.AT_FDCWD, d.path("ref"), unix.RENAME_EXCHANGE))
		d.syncDir("")
		d.write("spare", "3", true) // the inode that was ref before
		d.must(unix.Renameat2(unix.AT_FDCWD, d.path("spare"), unix.AT_FDCWD, d.path("ref"), unix.RENAME_EXCHANGE))
		want(t, d.crash(), "ref", "2", "spare", "3")
	})
	t.Run("rename between directories", func(t *testing.T) {
		d := mount(t)
		d.must(os.Mkdir(d.path("d1"), 0o755))
		d.must(os.Mkdir(d.path("d2"), 0o755))
		d.write("d1/x", "X", true)
		d.syncDir("d1")
		d.syncDir("d2")
		d.syncDir("")
		d.must(os.Rename(d.path("d1/x"), d.path("d2/x")))
		d.syncDir("d1")
		d.syncDir("d2")
		want(t, d.crash(), "d1/", "", "d2/", "", "d2/x", "X")
	})
	t.Run("unlink reverts without a directory fsync", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.syncDir("")
		d.must(os.Remove(d.path("a")))
		want(t, d.crash(), "a", "A")
	})
	t.Run("unlink, synced", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.write("b", "B", true)
		d.syncDir("")
		d.must(os.Remove(d.path("a")))
		d.syncDir("")
		want(t, d.crash(), "b", "B")
	})
	t.Run("unlinked open file fsynced", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.syncDir("")
		f, err := os.OpenFile(d.path("a"), os.O_RDWR, 0)
		d.must(err)
		defer f.Close()
		d.must(os.Remove(d.path("a")))
		_, err = f.WriteAt([]byte("Z"), 0)
		d.must(err)
		d.must(f.Sync())
		want(t, d.crash(), "a", "Z")
	})
	t.Run("inode numbers reused by the backing file system", func(t *testing.T) {
		// ext4 hands a freed inode number to the next new file: the
		// model must still know the unlinked file by its old name.
		d := mount(t)
		for i := range 20 {
			d.write(name(i), "old "+name(i), true)
		}
		d.syncDir("")
		for i := range 20 {
			d.must(os.Remove(d.path(name(i))))
		}
		for i := range 20 {
			d.write("new"+name(i), "new", true)
		}
		var kv []string
		for i := range 20 {
			kv = append(kv, name(i), "old "+name(i))
		}
		want(t, d.crash(), kv...)
	})
	t.Run("new directory vanishes without its parent's fsync", func(t *testing.T) {
		d := mount(t)
		d.must(os.Mkdir(d.path("d"), 0o755))
		d.write("d/f", "F", true)
		d.syncDir("d")
		want(t, d.crash())
	})
	t.Run("new directory is empty without its own fsync", func(t *testing.T) {
		d := mount(t)
		d.must(os.Mkdir(d.path("d"), 0o755))
		d.syncDir("")
		d.write("d/f", "F", true)
		want(t, d.crash(), "d/", "")
	})
	t.Run("new directory, all synced", func(t *testing.T) {
		d := mount(t)
		d.must(os.MkdirAll(d.path("d/e"), 0o755))
		d.write("d/e/f", "F", true)
		d.syncDir("d/e")
		d.syncDir("d")
		d.syncDir("")
		want(t, d.crash(), "d/", "", "d/e/", "", "d/e/f", "F")
	})
	t.Run("rmdir reverts without a directory fsync", func(t *testing.T) {
		d := mount(t)
		d.must(os.Mkdir(d.path("d"), 0o755))
		d.syncDir("")
		d.must(os.Remove(d.path("d")))
		want(t, d.crash(), "d/", "")
	})
	t.Run("hard link", func(t *testing.T) {
		d := mount(t)
		d.write("a", "A", true)
		d.must(os.Link(d.path("a"), d.path("b")))
		d.syncDir("")
		dst := t.TempDir()
		d.must(d.fs.Crash(dst))
		want(t, tree(t, dst), "a", "A", "b", "A")
		sa, err := os.Stat(filepath.Join(dst, "a"))
		d.must(err)
		sb, err := os.Stat(filepath.Join(dst, "b"))
		d.must(err)
		if !os.SameFile(sa, sb) {
			t.Fatal("a and b are two files after the crash, not one inode")
		}
	})
	t.Run("symlink", func(t *testing.T) {
		d := mount(t)
		d.must(os.Symlink("some/target", d.path("l")))
		d.syncDir("")
		want(t, d.crash(), "l", "-> some/target")
	})
}

func name(i int) string { return string(rune('a'+i%26)) + strings.Repeat("x", i/26) }

// Everything in the backing directory at mount time is durable, so the
// result of a crash can be mounted again for the next one.
func TestFS_Crash_Remount(t *testing.T) {
	d := mount(t)
	d.must(os.Mkdir(d.path("d"), 0o755))
	d.write("d/f", "F", true)
	d.syncDir("d")
	d.syncDir("")
	first := t.TempDir()
	d.must(d.fs.Crash(first))
	d.must(d.fs.Unmount())

	d2 := &disk{t: t, fs: crashfs.MountTest(t, first)}
	d2.write("d/f", "changed", false)
	d2.write("g", "G", true)
	want(t, d2.crash(), "d/", "", "d/f", "F")
}

// After the power is cut nothing works any more, and nothing done then
// reaches the durable state.
func TestFS_Crash_AfterwardsEIO(t *testing.T) {
	d := mount(t)
	d.write("a", "A", true)
	d.syncDir("")
	f, err := os.OpenFile(d.path("a"), os.O_RDWR, 0)
	d.must(err)
	defer f.Close()
	dir, err := os.Open(d.fs.Dir())
	d.must(err)
	defer dir.Close()
	dst := t.TempDir()
	d.must(d.fs.Crash(dst))

	checks := map[string]error{
		"write":  func() error { _, err := f.WriteAt([]byte("Z"), 0); return err }(),
		"fsync":  f.Sync(),
		"dir":    dir.Sync(),
		"create": func() error { _, err := os.Create(d.path("b")); return err }(),
		"rename": os.Rename(d.path("a"), d.path("c")),
		"unlink": os.Remove(d.path("a")),
		"mkdir":  os.Mkdir(d.path("d"), 0o755),
	}
	for op, err := range checks {
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s after the crash: %v, want EIO", op, err)
		}
	}
	want(t, tree(t, dst), "a", "A")
}
