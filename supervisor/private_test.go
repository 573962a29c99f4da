package supervisor_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nexus-mem/nexus/supervisor"
)

// The run directory, the pid file, the log and its rotated files are
// private (directories 0700, files 0600) under a umask of 0022.
func TestSupervisor_PrivateFiles(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	run := filepath.Join(t.TempDir(), "run")
	s := MustNew(t, supervisor.Options{RunDir: run})
	spec := helperSpec(t, "chatty", "chatty:40")
	spec.MaxLogSize, spec.LogKeep = 1000, 2
	if err := s.Start(spec); err != nil {
		t.Fatal(err)
	}
	rotated := filepath.Join(spec.LogDir, "chatty.log.2")
	waitFor(t, "the log rotated twice", func() bool { _, err := os.Stat(rotated); return err == nil })
	pid := filepath.Join(run, "chatty.pid")
	if _, err := os.Stat(pid); err != nil {
		t.Fatalf("no pid file while the process runs: %v", err)
	}
	for _, root := range []string{run, spec.LogDir} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if perm := info.Mode().Perm(); perm != want {
				t.Errorf("%s has mode %04o, want %04o", path, perm, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
