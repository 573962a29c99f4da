//go:build !linux

package gitstore

import "errors"

// exchange is not available here; callers fall back to a rename.
func exchange(a, b string) error { return errors.ErrUnsupported }
