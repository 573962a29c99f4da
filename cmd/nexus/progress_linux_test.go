package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// startProgress draws bars on a terminal (a pseudo-terminal here) and
// plain lines on a pipe or a file.
func TestProgress_Terminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	tty := openPTY(t)
	for _, tc := range []struct {
		name string
		f    *os.File
		bar  bool
	}{{"pipe", w, false}, {"file", file, false}, {"terminal", tty, true}} {
		if p := startProgress(tc.f, "index"); p.bar != tc.bar || (p.every == barEvery) != tc.bar {
			t.Errorf("%s: bar %v every %s, want bar %v", tc.name, p.bar, p.every, tc.bar)
		}
	}
	if p := startProgress(&bytes.Buffer{}, "index"); p.bar {
		t.Error("a buffer is taken for a terminal")
	}
}

// openPTY opens the terminal side of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("number of the pseudo-terminal: %v", err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return pts
}
