package supervisor

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// signalGroup sends sig to the process group pgid; it reports false when
// the group has no member left at all.
func signalGroup(pgid int, sig syscall.Signal) bool {
	return !errors.Is(syscall.Kill(-pgid, sig), syscall.ESRCH)
}

// waitGroupGone waits until no live process is left in group pgid, or
// until deadline; it reports whether the group is gone.
func waitGroupGone(pgid int, deadline time.Time) bool {
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupAlive reports whether a process of group pgid is alive. Zombies do
// not count: an orphan's zombie waits for a parent that may never reap it,
// and it holds nothing. Without /proc, any member counts.
func groupAlive(pgid int) bool {
	if !signalGroup(pgid, 0) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		state, pgrp, ok := procStat(e.Name())
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// procStat reads the state and process group of a process from
// /proc/PID/stat.
func procStat(pid string) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(f[2])
	return f[0][0], pgrp, err == nil
}

// isOurs reports whether process pid was started by a supervisor with
// this pid file: its environment holds the marker.
func isOurs(pid int, pidPath string) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return false
	}
	want := []byte(markerEnv + "=" + pidPath)
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if bytes.Equal(kv, want) {
			return true
		}
	}
	return false
}

// stopOrphan stops a process left by a previous supervisor, with its
// group: SIGTERM, then SIGKILL after grace.
func stopOrphan(pid int, grace time.Duration) {
	pgid := pid
	if g, err := syscall.Getpgid(pid); err != nil || g != pid {
		pgid = 0 // no longer a group leader: only the process itself
	}
	if pgid == 0 {
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(grace)
		for processAlive(pid) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if processAlive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return
	}
	signalGroup(pgid, syscall.SIGTERM)
	if !waitGroupGone(pgid, time.Now().Add(grace)) {
		signalGroup(pgid, syscall.SIGKILL)
		waitGroupGone(pgid, time.Now().Add(time.Second))
	}
}

// processAlive reports whether pid is a live (not zombie) process.
func processAlive(pid int) bool {
	state, _, ok := procStat(strconv.Itoa(pid))
	return ok && state != 'Z' && state != 'X'
}
