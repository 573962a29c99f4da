// Package damage injects the faults that tests, `nexus bench recovery`
// and `nexus drill` meet a store with: the largest pack of a data
// directory, one bit of a file flipped in place, and a small file system
// to fill.
package damage

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// LargestPack returns the largest pack file of data's repository and its
// size.
func LargestPack(data string) (string, int64, error) {
	packs, err := filepath.Glob(filepath.Join(data, "repo.git", "objects", "pack", "*.pack"))
	if err != nil {
		return "", 0, err
	}
	var big string
	var size int64 = -1
	for _, p := range packs {
		if st, err := os.Stat(p); err == nil && st.Size() > size {
			big, size = p, st.Size()
		}
	}
	if big == "" {
		return "", 0, fmt.Errorf("no pack in %s", data)
	}
	return big, size, nil
}

// FlipBit flips the bits of mask in the byte at offset at of the file, in
// place, and syncs it.
func FlipBit(path string, at int64, mask byte) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		f.Close()
		return fmt.Errorf("flip a bit of %s: %w", path, err)
	}
	b[0] ^= mask
	if _, err := f.WriteAt(b, at); err != nil {
		f.Close()
		return fmt.Errorf("flip a bit of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FlipMiddle flips one bit (mask) in the middle of data's largest pack.
func FlipMiddle(data string, mask byte) error {
	pack, size, err := LargestPack(data)
	if err != nil {
		return err
	}
	return FlipBit(pack, size/2, mask)
}

// MountTmpfs mounts a tmpfs of size (as mount takes it: "16m") on dir, an
// existing directory, for a full disk: it needs root (or CAP_SYS_ADMIN)
// and the mount command. unmount detaches it (lazily, should files still
// be open).
func MountTmpfs(dir, size string) (unmount func() error, err error) {
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cannot mount a tmpfs of %s on %s (needs root): %v %s", size, dir, err, bytes.TrimSpace(out))
	}
	return func() error {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("umount %s: %v %s", dir, err, bytes.TrimSpace(out))
		}
		return nil
	}, nil
}
