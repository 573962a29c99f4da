package crashfs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A backing inode number reused for a new file names a new inode: the
// durable entry of the old file keeps the old file's data.
func TestModel_InodeNumberReused(t *testing.T) {
	m := newModel()
	const dirMode, fileMode = syscall.S_IFDIR | 0o755, syscall.S_IFREG | 0o644
	m.root = m.created(1, dirMode, "")
	m.created(7, fileMode, "")
	m.syncFile(7, fileMode, []byte("old"))
	m.syncDir(1, dirMode, []dirent{{name: "a", ino: 7, mode: fileMode}})
	// "a" is unlinked (not made durable) and inode 7 is reused for "b".
	m.created(7, fileMode, "")
	m.syncFile(7, fileMode, []byte("new"))

	dst := t.TempDir()
	if err := m.materialise(dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "a"))
	if err != nil || string(got) != "old" {
		t.Fatalf("a after the crash: %q %v, want \"old\"", got, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "b")); !os.IsNotExist(err) {
		t.Fatalf("b exists after the crash: %v", err)
	}
}

// A directory named twice in the durable state (a rename made durable in
// the new parent only) is written once; a cycle does not recurse forever.
func TestModel_DirectoryTwice(t *testing.T) {
	m := newModel()
	const dirMode = syscall.S_IFDIR | 0o755
	m.root = m.created(1, dirMode, "")
	m.created(2, dirMode, "")
	m.syncDir(2, dirMode, []dirent{{name: "loop", ino: 1, mode: dirMode}})
	m.syncDir(1, dirMode, []dirent{{name: "x", ino: 2, mode: dirMode}, {name: "y", ino: 2, mode: dirMode}})
	dst := t.TempDir()
	if err := m.materialise(dst); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dst)
	if len(ents) != 1 || ents[0].Name() != "x" {
		t.Fatalf("entries %v, want only x", ents)
	}
	if sub, _ := os.ReadDir(filepath.Join(dst, "x")); len(sub) != 0 {
		t.Fatalf("x holds %v, want nothing (its entry names the root)", sub)
	}
}
