//go:build !amd64

package vector

import "testing"

// forceAVX2 reports false: there are no assembly kernels on this
// architecture, so every test runs the portable ones.
func forceAVX2(*testing.T, bool) bool { return false }
