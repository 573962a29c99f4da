//go:build unix

package agent

import (
	"os/exec"
	"syscall"
)

// killGroupOnCancel starts the command in a process group of its own and
// kills the whole group when the command's context is done, so that a
// shell script's children die with it.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
