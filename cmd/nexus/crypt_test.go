package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// stop ends a server the way an operator does and waits for it.
func stop(t *testing.T, p *proc) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v\n%s", err, p.stderr)
	}
}

// writeKey makes a master key file with `nexus rekey --generate`.
func writeKey(t *testing.T) string {
	t.Helper()
	out, code := runEnv(t, nil, "rekey", "--generate")
	if code != 0 {
		t.Fatalf("rekey --generate: exit %d %s", code, out)
	}
	p := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The binary with --encrypt: contexts and the saved search index are
// opaque on disk; without the key, or with another, the store does not
// open; fsck works with the key; rekey moves the store to a new master
// key and the old one stops opening it.
func TestServe_Encrypt(t *testing.T) {
	const secret = "quokka payroll password hunter2"
	data, key := t.TempDir(), writeKey(t)
	p := startServe(t, data, "--encrypt", "--key-file="+key)
	c := httpapi.NewClient(p.url)
	x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: secret})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Search(t.Context(), nexus.SearchRequest{Query: "quokka payroll", Mode: nexus.Keyword, Consistent: true})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].Context.ID != x.ID {
		t.Fatalf("search on an encrypted node: %+v %v", res, err)
	}
	stop(t, p)

	objs, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "cat-file", "--batch-all-objects", "--batch").Output()
	if err != nil {
		t.Fatal(err)
	}
	var disk []byte
	filepath.Walk(filepath.Join(data), func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.Contains(path, "repo.git") {
			b, _ := os.ReadFile(path)
			disk = append(disk, b...)
		}
		return nil
	})
	for _, word := range []string{"quokka", "hunter2", "payroll"} {
		if bytes.Contains(objs, []byte(word)) || bytes.Contains(disk, []byte(word)) {
			t.Fatalf("%q is on disk in the clear", word)
		}
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}

	if _, out := tryServe(t, data); !strings.Contains(out, "is encrypted at rest: open it with its master key") {
		t.Fatalf("serve without --encrypt: %s", out)
	}
	if _, out := tryServe(t, data, "--encrypt", "--key-file="+writeKey(t)); !strings.Contains(out, "wrong master key") {
		t.Fatalf("serve with another key: %s", out)
	}
	if out, code := runEnv(t, nil, "fsck", "--data", data); code == 0 || !strings.Contains(out, "is encrypted at rest") {
		t.Fatalf("fsck without the key: exit %d %s", code, out)
	}
	if out, code := runEnv(t, nil, "fsck", "--data", data, "--key-file="+key); code != 0 {
		t.Fatalf("fsck with the key: exit %d %s", code, out)
	}

	next := writeKey(t)
	out, code := runEnv(t, nil, "rekey", "--data", data, "--old-key-file", key, "--key-file", next, "--new-data-key")
	if code != 0 || !strings.Contains(out, "new writes are sealed with data key 2") {
		t.Fatalf("rekey: exit %d %s", code, out)
	}
	if _, out := tryServe(t, data, "--encrypt", "--key-file="+key); !strings.Contains(out, "wrong master key") {
		t.Fatalf("serve with the retired key: %s", out)
	}
	p = startServe(t, data, "NEXUS_ENCRYPT=true", "NEXUS_KEY_FILE="+next)
	c = httpapi.NewClient(p.url)
	got, err := c.Get(t.Context(), x.ID)
	if err != nil || got.Content != secret {
		t.Fatalf("read after rekey: %+v %v", got, err)
	}
	stop(t, p)
}
