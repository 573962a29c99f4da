package durable

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A write that succeeds replaces the file whole; one whose writer, sync
// or rename fails leaves the old file as it was and no temporary file.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	synced := 0
	sync := func(f *os.File) error { synced++; return f.Sync() }
	if err := WriteFile(dir, "f", "tmp-*", sync, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" || synced != 1 {
		t.Fatalf("file %q after %d syncs, want \"new\" after 1", b, synced)
	}
	boom := errors.New("boom")
	for name, c := range map[string]struct {
		sync  func(*os.File) error
		write func(io.Writer) error
	}{
		"writer": {sync, func(w io.Writer) error { io.WriteString(w, "half"); return boom }},
		"sync":   {func(*os.File) error { return boom }, func(w io.Writer) error { _, err := io.WriteString(w, "unsynced"); return err }},
	} {
		if err := WriteFile(dir, "f", "tmp-*", c.sync, c.write); !errors.Is(err, boom) {
			t.Fatalf("%s failing: %v, want boom", name, err)
		}
		if b, _ := os.ReadFile(path); string(b) != "new" {
			t.Fatalf("%s failing: file %q, want \"new\"", name, b)
		}
	}
	if err := WriteFile(dir, "sub/f", "tmp-*", sync, func(w io.Writer) error { return nil }); err == nil {
		t.Fatal("rename into a missing directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("%d files left in the directory, want 1", len(ents))
	}
}
