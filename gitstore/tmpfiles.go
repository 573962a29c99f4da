package gitstore

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// spares keeps temp files ready in each directory the write path uses.
// Creating a file costs far more than writing and fsyncing a small one on
// the file systems measured here (≈ 480 µs of CPU per creation on this
// ext4, see docs/STORAGE.md), so a group commit takes a spare instead of
// creating one, and files the store retires (merged packs) become spares
// by a rename instead of being deleted. A spare may hold old bytes: whoever
// takes one overwrites it and truncates it to its new length. Spares are
// named tmp_* and removed on the next open if unused.
type spares struct {
	mu     sync.Mutex
	ready  map[string][]*os.File
	want   int // created ahead of need per directory
	keep   int // retired files kept per directory
	kick   chan struct{}
	closed bool
	seq    atomic.Uint64
}

// spareName is the pattern of temp files. Git ignores names ending in
// ".lock" under refs/, so a temp file there is never taken for a ref.
const spareName = "tmp_*.lock"

func newSpares(want, keep int) *spares {
	return &spares{ready: map[string][]*os.File{}, want: want, keep: keep, kick: make(chan struct{}, 1)}
}

// recycle retires path, a file the store no longer needs, as a spare of
// its directory, or deletes it when enough spares are kept. Either way the
// name path is gone when recycle returns (unless removal itself fails,
// which the next open cleans up). A file with another name (a snapshot's
// hard link, which git may be reading) is only unlinked: overwriting it
// would change the snapshot's bytes. The caller holds mergeMu, as
// snapshots do while they link, so the count cannot grow meanwhile.
func (s *spares) recycle(path string) {
	dir := filepath.Dir(path)
	s.mu.Lock()
	full := s.closed || len(s.ready[dir]) >= s.keep
	s.mu.Unlock()
	if n, ok := linkCount(path); !ok || n != 1 {
		full = true
	}
	if full {
		os.Remove(path)
		return
	}
	name := filepath.Join(dir, fmt.Sprintf("tmp_r%d.lock", s.seq.Add(1)))
	if err := os.Rename(path, name); err != nil {
		os.Remove(path)
		return
	}
	// The old name must be gone on disk before the file is overwritten
	// with another pack's bytes, or a crash could leave it under its old
	// name with wrong contents.
	if err := syncDir(dir); err != nil {
		os.Remove(name)
		return
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		os.Remove(name)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f.Close()
		os.Remove(name)
		return
	}
	s.ready[dir] = append(s.ready[dir], f)
}

// take returns a spare temp file in dir, creating one if none is ready.
func (s *spares) take(dir string) (*os.File, error) {
	s.mu.Lock()
	if fs := s.ready[dir]; len(fs) > 0 {
		f := fs[len(fs)-1]
		s.ready[dir] = fs[:len(fs)-1]
		s.mu.Unlock()
		s.refill()
		return f, nil
	}
	if _, known := s.ready[dir]; !known {
		s.ready[dir] = nil
	}
	s.mu.Unlock()
	s.refill()
	return os.CreateTemp(dir, spareName)
}

func (s *spares) refill() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run tops up every known directory until closing is closed.
func (s *spares) run(closing <-chan struct{}) {
	for {
		select {
		case <-closing:
			s.close()
			return
		case <-s.kick:
		}
		for _, dir := range s.dirs() {
			for s.need(dir) {
				f, err := os.CreateTemp(dir, spareName)
				if err != nil {
					break // e.g. disk full: the write path creates its own and reports
				}
				s.mu.Lock()
				s.ready[dir] = append(s.ready[dir], f)
				s.mu.Unlock()
			}
		}
	}
}

func (s *spares) dirs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.ready))
	for d := range s.ready {
		out = append(out, d)
	}
	return out
}

func (s *spares) need(dir string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && len(s.ready[dir]) < s.want
}

func (s *spares) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, fs := range s.ready {
		for _, f := range fs {
			f.Close()
			os.Remove(f.Name())
		}
	}
	clear(s.ready)
}
