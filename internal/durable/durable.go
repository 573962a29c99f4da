// Package durable writes files that survive a crash or a power loss: the
// contents go to a temporary file in the same directory, which is fsynced
// and closed before it is renamed over the final name, so that a reader
// finds either the old file or the whole new one. The caller fsyncs the
// directory when the name itself must be durable.
package durable

import (
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes dir/name with what write writes, streamed (the file is
// never held whole in memory), through a temporary file named by pattern
// (as [os.CreateTemp] takes it) that sync makes durable before the rename.
// On error the temporary file is removed and dir/name is left as it was.
func WriteFile(dir, name, pattern string, sync func(*os.File) error, write func(io.Writer) error) error {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
