//go:build unix

package gitstore

import (
	"os"
	"syscall"
)

// linkCount returns how many names the file path has, and whether it could
// tell.
func linkCount(path string) (uint64, bool) {
	st, err := os.Lstat(path)
	if err != nil {
		return 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(sys.Nlink), true
}
