package main_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// runEnv runs the binary with extra environment variables and returns its
// output and exit code.
func runEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", args, err)
	}
	if ee != nil {
		return string(out), ee.ExitCode()
	}
	return string(out), 0
}

// fsck, restore and recover on the data directory of a running server say
// that the store is in use, by which process, and how to act through the
// server instead; they exit 3 and leave the store as it was.
func TestAdminVerbs_storeInUse(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	c := httpapi.NewClient(p.url)
	x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	holder := fmt.Sprintf("in use by process %d (%s serve --data %s", p.cmd.Process.Pid, binary, data)
	for _, args := range [][]string{
		{"fsck", "--data", data},
		{"restore", "--data", data, "--at", x.Timestamp.Add(-time.Hour).Format(time.RFC3339)},
		{"recover", "--data", data},
	} {
		out, code := runEnv(t, nil, args...)
		hint := fmt.Sprintf("nexus %s --server %s", args[0], "URL")
		if code != 3 || !strings.Contains(out, holder) || !strings.Contains(out, hint) || strings.Contains(out, "damaged") {
			t.Errorf("%v on a store in use: exit %d\n%s\nwant exit 3, %q and %q, and no word of damage", args, code, out, holder, hint)
		}
	}
	if got, err := c.Get(t.Context(), x.ID); err != nil || got.Content != "kept" {
		t.Fatalf("after the refused verbs: %v %+v", err, got)
	}
}

// fsck, restore and recover with --server (or NEXUS_SERVER) act on a
// running node through its admin API and print what they print offline.
func TestAdminVerbs_server(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	c := httpapi.NewClient(p.url)
	var cs []*nexus.Context
	for i := range 3 {
		x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("fact ", i)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, x)
	}
	server := []string{"NEXUS_SERVER=" + p.url}

	out, code := runEnv(t, nil, "fsck", "--server", p.url)
	if code != 0 || !strings.Contains(out, "deep check of ") || !strings.Contains(out, " commits, 3 context files in ") ||
		!strings.Contains(out, "search index: ok\n") || !strings.HasSuffix(out, "\nclean\n") {
		t.Errorf("fsck --server: exit %d\n%s", code, out)
	}
	out, code = runEnv(t, server, "fsck", "--json", "--deep=false")
	var res struct {
		Store struct {
			Deep     bool
			Problems []any
		}
		Index, Status string
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Store.Deep || res.Index != "ok" || res.Status != "clean" {
		t.Errorf("fsck --json --deep=false with NEXUS_SERVER: exit %d, %v\n%s", code, err, out)
	}

	out, code = runEnv(t, server, "recover")
	for _, want := range []string{nexus.ComponentGit, nexus.ComponentStore, nexus.ComponentCache, nexus.ComponentIndex, nexus.ComponentAgents} {
		if !strings.Contains(out, want+" ") {
			t.Errorf("recover with NEXUS_SERVER: no step for %s", want)
		}
	}
	if code != 0 || strings.Contains(out, "failed") {
		t.Errorf("recover with NEXUS_SERVER: exit %d\n%s", code, out)
	}

	at := cs[0].Timestamp.Format(time.RFC3339Nano)
	out, code = runEnv(t, nil, "restore", "--server", p.url, "--at", at, "--dry-run")
	if want := fmt.Sprintf("would roll back 2 contexts (%s … %s); 1 kept", cs[1].ID, cs[2].ID); code != 0 || !strings.Contains(out, want) {
		t.Errorf("restore --dry-run --server: exit %d\n%s\nwant %q", code, out, want)
	}
	out, code = runEnv(t, nil, "restore", "--server", p.url, "--at", at)
	if code != 0 || !strings.Contains(out, "rolled back 2 contexts") || !strings.Contains(out, "refs/recovery/") {
		t.Errorf("restore --server: exit %d\n%s", code, out)
	}
	// (The node records the restore itself in the incidents namespace.)
	if page, err := c.List(t.Context(), nexus.Filter{Namespace: nexus.DefaultNamespace}); err != nil || len(page.Contexts) != 1 || page.Contexts[0].ID != cs[0].ID {
		t.Errorf("after the restore the node lists %+v, %v; want only %s", page, err, cs[0].ID)
	}
}

// --server and --data together, or --server with a flag that only applies
// to a data directory, are usage errors (exit 2); --data given wins over
// NEXUS_SERVER.
func TestAdminVerbs_serverUsage(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"fsck", "--server", "http://127.0.0.1:1", "--data", data}, "--server and --data exclude each other"},
		{nil, []string{"recover", "--server", "http://127.0.0.1:1", "--backup", "x.bundle"}, "--backup applies to a stopped node's --data"},
		{[]string{"NEXUS_SERVER=http://127.0.0.1:1"}, []string{"fsck", "--mirror", "m.git"}, "--mirror applies to a stopped node's --data"},
	} {
		if out, code := runEnv(t, c.env, c.args...); code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%v %v: exit %d\n%s\nwant exit 2 and %q", c.env, c.args, code, out, c.want)
		}
	}
	// The server named by the environment is not running, but --data is
	// given: the verb opens the directory (which holds a store).
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out, code := runEnv(t, []string{"NEXUS_SERVER=http://127.0.0.1:1"}, "recover", "--data", data)
	if code != 0 || !strings.Contains(out, "git_repository") {
		t.Errorf("recover --data with NEXUS_SERVER set: exit %d\n%s", code, out)
	}
}

// fsck --server reports the damage a running node's deep check finds, as
// offline: the problems, "damaged", exit 4.
func TestAdminVerbs_serverDamage(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data, "--no-search", "--scrub-interval=0", "--recover-interval=1h", "--backup-interval=0")
	defer stopServe(p)
	putMany(t, p.url, 20, "fact")
	flipMiddle(t, data)
	out, code := runEnv(t, nil, "fsck", "--server", p.url, "--repair=false")
	if code != 4 || !strings.Contains(out, "\nPROBLEM ") || !strings.Contains(out, "\ndamaged\n") || !strings.Contains(out, "problems left: the repository is damaged") {
		t.Errorf("fsck --server of a damaged node: exit %d\n%s", code, out)
	}
}
