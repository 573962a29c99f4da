package main_test

import (
	"bytes"
	"fmt"
	"os"
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
