//go:build !unix

package agent

import "os/exec"

// killGroupOnCancel leaves the default: the process itself is killed when
// the command's context is done (process groups are a Unix notion).
func killGroupOnCancel(*exec.Cmd) {}
