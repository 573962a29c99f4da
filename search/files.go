package search

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The saved files are what the next start loads instead of rebuilding
// (32 s at 100k contexts, minutes at 1M). A running engine checks that
// they are still there and intact, and writes them again from memory when
// they are not: the in-memory index, built from git, is the good copy.

// CheckFiles checks the saved generation against what this engine saved
// or loaded last: the manifest is the same and every file is there with a
// plausible size; deep also re-hashes every file against its SHA-256. It
// returns nil when there is nothing saved yet, or while a save is under
// way. The result is kept for CheckHealth.
func (e *Engine) CheckFiles(deep bool) error {
	if e.opts.Dir == "" || e.saved.Load() == nil {
		return nil
	}
	if !e.stepMu.TryLock() {
		return nil // a save may be replacing the files
	}
	err := e.checkFiles(deep)
	e.stepMu.Unlock()
	if err != nil {
		msg := err.Error()
		e.fileDamage.Store(&msg)
	} else if deep {
		e.fileDamage.Store(nil)
	}
	return err
}

func (e *Engine) checkFiles(deep bool) error {
	want := e.saved.Load()
	m, err := readManifest(e.opts.Dir)
	if err != nil {
		return fmt.Errorf("saved index manifest: %w", err)
	}
	if m.Gen != want.Gen || m.Cursor != want.Cursor || m.Count != want.Count || len(m.Files) != len(want.Files) {
		return fmt.Errorf("saved index manifest changed under the engine: generation %d, want %d", m.Gen, want.Gen)
	}
	for name, sum := range want.Files {
		if m.Files[name] != sum {
			return fmt.Errorf("saved index manifest lists %s with another checksum", name)
		}
		path := filepath.Join(e.opts.Dir, name)
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("saved index file: %w", err)
		}
		if st.Size() == 0 {
			return fmt.Errorf("saved index file %s is empty", name)
		}
		if deep {
			if err := checkSum(path, sum); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkSum(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("saved index file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("saved index file %s: %w", filepath.Base(path), err)
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return fmt.Errorf("saved index file %s: checksum mismatch (damaged)", filepath.Base(path))
	}
	return nil
}

// FileDamage is what the last check of the saved files found wrong, or ""
// when they were fine (or written again since).
func (e *Engine) FileDamage() string {
	if d := e.fileDamage.Load(); d != nil {
		return *d
	}
	return ""
}

// Resave writes the indexes again from memory as a new generation, even
// if nothing changed since the last save.
func (e *Engine) Resave() error {
	e.mu.Lock()
	e.savedAt = -1
	e.mu.Unlock()
	return e.save()
}
