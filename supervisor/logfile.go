package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// logFile is an append-only log rotated by size: when a write would take
// it past max, NAME.log becomes NAME.log.1, NAME.log.1 becomes
// NAME.log.2, and so on up to keep files; older ones are removed.
// Rotation happens at the end of a line of a write; a line that reaches
// the pipe in two pieces may still be split across files.
type logFile struct {
	path string
	max  int64
	keep int

	mu   sync.Mutex
	f    *os.File
	size int64
}

func openLog(path string, max int64, keep int) (*logFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the log directory: %w", err)
	}
	l := &logFile{path: path, max: max, keep: keep}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *logFile) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open the log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open the log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends p. Where p would take the file past max, it is cut after
// its last line that fits and the rest goes to a fresh file, so a file
// passes max only to hold a line longer than max.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if l.f == nil {
			return n, os.ErrClosed
		}
		cut := len(p)
		if room := l.max - l.size; int64(len(p)) > room {
			cut = bytes.LastIndexByte(p[:max(room, 0)], '\n') + 1
			if cut == 0 && l.size == 0 { // a line longer than max: alone in its file
				if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
					cut = len(p)
				}
			}
		}
		w, err := l.f.Write(p[:cut])
		n += w
		l.size += int64(w)
		if err != nil {
			return n, err
		}
		if p = p[cut:]; len(p) > 0 {
			if err := l.rotateLocked(); l.f == nil {
				return n, err
			}
		}
	}
	return n, nil
}

// rotateLocked shifts the generations and opens a fresh NAME.log. The
// fresh file is opened even if a rename failed, so that logging goes on.
func (l *logFile) rotateLocked() error {
	err := l.f.Close()
	l.f = nil
	for i := l.keep + 1; ; i++ { // files beyond keep, left by a larger keep
		if os.Remove(l.name(i)) != nil {
			break
		}
	}
	if l.keep == 0 {
		if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	for i := l.keep - 1; i >= 0; i-- {
		if rerr := os.Rename(l.name(i), l.name(i+1)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	if oerr := l.open(); oerr != nil {
		return oerr
	}
	return err
}

// name is the file of generation i: NAME.log for 0, NAME.log.i after.
func (l *logFile) name(i int) string {
	if i == 0 {
		return l.path
	}
	return fmt.Sprintf("%s.%d", l.path, i)
}

// Close closes the file; later writes fail.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
