package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSupervisor_LogFileWrite(t *testing.T) {
	read := func(t *testing.T, path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Run("cuts at line ends", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "p.log")
		l, err := openLog(path, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if n, err := l.Write([]byte("aaaa\nbbbb\ncccc\n")); err != nil || n != 15 {
			t.Fatalf("wrote %d, %v", n, err)
		}
		if got := read(t, path+".1"); got != "aaaa\nbbbb\n" {
			t.Errorf("p.log.1 = %q", got)
		}
		if got := read(t, path); got != "cccc\n" {
			t.Errorf("p.log = %q", got)
		}
	})
	t.Run("a line longer than the limit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "p.log")
		l, err := openLog(path, 4, 3)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.Write([]byte("ab\n"))
		l.Write([]byte("0123456789\nz\n"))
		want := map[string]string{path + ".2": "ab\n", path + ".1": "0123456789\n", path: "z\n"}
		for name, w := range want {
			if got := read(t, name); got != w {
				t.Errorf("%s = %q, want %q", filepath.Base(name), got, w)
			}
		}
	})
	t.Run("keep 0 and leftovers of a larger keep", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "p.log")
		for _, n := range []string{".1", ".2", ".3"} {
			os.WriteFile(path+n, []byte("old\n"), 0o644)
		}
		l, err := openLog(path, 8, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.Write([]byte(strings.Repeat("x", 7) + "\n"))
		l.Write([]byte("y\n"))
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 || read(t, path) != "y\n" {
			t.Errorf("files %v, p.log %q; want only p.log holding the last line", entries, read(t, path))
		}
	})
	t.Run("appends to an existing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "p.log")
		os.WriteFile(path, []byte("12345678\n"), 0o644)
		l, err := openLog(path, 10, 1)
		if err != nil {
			t.Fatal(err)
		}
		l.Write([]byte("ab\n"))
		l.Close()
		if read(t, path) != "ab\n" || read(t, path+".1") != "12345678\n" {
			t.Errorf("the size of the existing file was not counted")
		}
		if _, err := l.Write([]byte("x")); err == nil {
			t.Error("write after Close succeeded")
		}
	})
}
