package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// An admin verb through a running server is in its audit log, which
// `nexus audit` prints and verifies through the server and from the data
// directory; once a record is moved, `nexus audit --verify` exits 4
// naming the line that breaks the chain.
func TestAudit(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	c := httpapi.NewClient(p.url)
	x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	at := x.Timestamp.UTC().Format(time.RFC3339Nano)
	if out, code := runEnv(t, nil, "restore", "--server", p.url, "--at", at, "--dry-run"); code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	records := regexp.MustCompile(`^\S+ #1 intent +restore +by anonymous from 127\.0\.0\.1:\d+ \(POST /v1/admin/restore\) at="` + regexp.QuoteMeta(at) + `" dry_run="true"\n` +
		`\S+ #2 outcome +restore +by anonymous from 127\.0\.0\.1:\d+ \(POST /v1/admin/restore\) at="[^"]+" dry_run="true" \[intent #1\]: ok -> .*kept="1".*rolled_back="0".*\n` +
		`chain intact: 2 records; head seq 2, hash [0-9a-f]{64}\n$`)
	for _, args := range [][]string{{"audit", "--server", p.url}, {"audit", "--data", data}} {
		out, code := runEnv(t, nil, args...)
		if code != 0 || !records.MatchString(out) {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if out, code := runEnv(t, nil, "audit", "--data", data, "--since", future); code != 0 || !strings.HasPrefix(out, "chain intact: 2 records") {
		t.Errorf("audit --since the future: exit %d\n%s", code, out)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	path := filepath.Join(data, "audit.log")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	lines[0], lines[1] = lines[1], lines[0]
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runEnv(t, nil, "audit", "--data", data, "--verify")
	want := fmt.Sprintf("nexus audit: the audit log was tampered with or damaged: audit record on line 1 (seq 2) breaks the chain: %s\n",
		"the first record's prev is not the genesis hash: records before it were deleted")
	if code != 4 || out != want {
		t.Fatalf("audit --verify of a reordered log: exit %d\n%s\nwant exit 4\n%s", code, out, want)
	}
}

// The offline admin verbs record themselves in the data directory's
// audit log, and are refused, changing nothing, when they cannot.
func TestAudit_offlineVerbs(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	c := httpapi.NewClient(p.url)
	var first *nexus.Context
	for i := range 2 {
		x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("fact ", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = x
		}
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	at := first.Timestamp.UTC().Format(time.RFC3339Nano)

	path := filepath.Join(data, "audit.log")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil { // no write can succeed, root's included
		t.Fatal(err)
	}
	head := gitOut(t, data, "rev-parse", "refs/heads/main")
	out, code := runEnv(t, nil, "restore", "--data", data, "--at", at)
	if code != 1 || !strings.Contains(out, "the audit log cannot be written, so restore was refused and nothing was done") {
		t.Fatalf("restore without an audit log: exit %d\n%s", code, out)
	}
	if now := gitOut(t, data, "rev-parse", "refs/heads/main"); now != head {
		t.Fatalf("the refused restore moved main from %s to %s", head, now)
	}
	if refs := gitOut(t, data, "for-each-ref", "refs/recovery/"); refs != "" {
		t.Fatalf("the refused restore left %s", refs)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if out, code := runEnv(t, nil, "restore", "--data", data, "--at", at); code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	out, code = runEnv(t, nil, "audit", "--data", data)
	want := regexp.MustCompile(`^\S+ #1 intent +restore +by node at="` + regexp.QuoteMeta(at) + `" dry_run="false" os_user="[^"]+"\n` +
		`\S+ #2 outcome +restore +by node at="[^"]+" dry_run="false" os_user="[^"]+" \[intent #1\]: ok -> .*rolled_back="1".*\n` +
		`chain intact: 2 records; head seq 2, hash [0-9a-f]{64}\n$`)
	if code != 0 || !want.MatchString(out) {
		t.Fatalf("audit after an offline restore: exit %d\n%s", code, out)
	}
}

// gitOut runs git on the data directory's repository.
func gitOut(t *testing.T, data string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"--git-dir", filepath.Join(data, "repo.git")}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}
