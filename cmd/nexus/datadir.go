package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// needStore checks that the data directory holds a store, for the verbs
// that work on an existing one. Only serve (and backup restore into a new
// directory) create a store: a missing or mistyped --data must not become
// a new, empty one that reports success.
func needStore(data string) error {
	repo := filepath.Join(data, "repo.git")
	st, err := os.Stat(repo)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil || errors.Is(err, os.ErrNotExist):
		return usagef("no store in %s (no %s)\n"+
			"Check --data (or NEXUS_DATA); `nexus serve --data DIR` creates a store, "+
			"`nexus backup restore FILE --data DIR` makes one from a backup.", data, repo)
	default:
		return fmt.Errorf("check the data directory: %w", err)
	}
}
