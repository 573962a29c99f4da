package gitstore

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Every directory the store creates is private to the user running it,
// and every file too, whatever the umask: contexts are often source code,
// customer data or keys.
const (
	privateDir  fs.FileMode = 0o700
	privateFile fs.FileMode = 0o600
)

// gitPrivate makes a git command create its files private (0600, 0400
// for the read-only ones, directories 0700) whatever the umask; put it
// before the git subcommand.
var gitPrivate = []string{"-c", "core.sharedRepository=0600"}

// gitArgs returns gitPrivate followed by args.
func gitArgs(args ...string) []string {
	return append(append([]string{}, gitPrivate...), args...)
}

// privateTree takes every permission of the group and others away from
// root and what it holds: directories become 0700, files keep only their
// owner's bits (a read-only git object stays 0400). It makes a tree that
// stock git wrote (a clone) private.
func privateTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := info.Mode().Perm() & 0o700
		if d.IsDir() {
			want = privateDir
		}
		if info.Mode().Perm() == want {
			return nil
		}
		return os.Chmod(path, want)
	})
}
