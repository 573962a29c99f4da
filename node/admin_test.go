package node_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// putTwo writes two contexts and returns the first one's time.
func putTwo(t *testing.T, n *nodetest.Node) time.Time {
	t.Helper()
	var first time.Time
	for i, s := range []string{"kept", "rolled back"} {
		c, err := n.Store().Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: s})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = c.Timestamp
		}
	}
	return first
}

// auditRecords reads and verifies the audit log through the API.
func auditRecords(t *testing.T, n *nodetest.Node) []audit.Record {
	t.Helper()
	rc, err := n.Client.AuditLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []audit.Record
	if _, err := audit.Verify(rc, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("the audit log does not verify: %v", err)
	}
	return out
}

// gitRefs lists the refs of the node's repository under prefix, with git.
func gitRefs(t *testing.T, n *nodetest.Node, prefix string) string {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", filepath.Join(n.Config.Dir, "repo.git"), "for-each-ref", "--format=%(refname)", prefix).Output()
	if err != nil {
		t.Fatalf("git for-each-ref: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestNode_Restore_audited(t *testing.T) {
	n := nodetest.Open(t, nodetest.Config(t))
	at := putTwo(t, n)
	plan, err := n.Client.Restore(context.Background(), at, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Fsck(context.Background(), false); err != nil { // in-process: the node's own
		t.Fatal(err)
	}
	recs := auditRecords(t, n)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4: %+v", len(recs), recs)
	}
	in, out := recs[0], recs[1]
	wantAt := at.UTC().Format(time.RFC3339Nano)
	if in.Kind != audit.KindIntent || in.Action != "restore" || in.Principal != "anonymous" || in.Route != "POST /v1/admin/restore" ||
		!strings.HasPrefix(in.Remote, "127.0.0.1:") || in.Params["at"] != wantAt || in.Params["dry_run"] != "false" {
		t.Errorf("intent %+v", in)
	}
	if out.Kind != audit.KindOutcome || out.Intent != in.Seq || out.Outcome != audit.OutcomeOK || out.Remote != in.Remote ||
		out.Result["rolled_back"] != "1" || out.Result["from"] != plan.From || out.Result["to"] != plan.To || out.Result["recovery_ref"] != plan.RecoveryRef {
		t.Errorf("outcome %+v, plan %+v", out, plan)
	}
	for _, r := range recs[2:] {
		if r.Action != "fsck" || r.Principal != "node" || r.Remote != "" || r.Route != "" || r.Params["deep"] != "false" {
			t.Errorf("in-process fsck record %+v", r)
		}
	}
	if recs[3].Outcome != audit.OutcomeOK || recs[3].Result["problems"] != "0" {
		t.Errorf("fsck outcome %+v", recs[3])
	}
}

// An admin action whose audit record cannot be written is refused: the
// restore does not happen.
func TestNode_Restore_refusedWithoutAudit(t *testing.T) {
	cfg := nodetest.Config(t)
	n := nodetest.Open(t, cfg)
	at := putTwo(t, n)
	head := n.Head()
	// A directory where the log's file was: no write can succeed, root's
	// included.
	path := node.AuditFile(cfg.Dir)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	body := `{"at":"` + at.UTC().Format(time.RFC3339Nano) + `"}`
	resp, err := n.HTTP.Post(n.URL+"/v1/admin/restore", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var msg bytes.Buffer
	msg.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(msg.String(), `"code":"unavailable"`) ||
		!strings.Contains(msg.String(), "the audit log cannot be written, so restore was refused and nothing was done") {
		t.Fatalf("restore without an audit log: %d %s", resp.StatusCode, msg.String())
	}
	if n.Len() != 2 || n.Head() != head {
		t.Fatalf("the refused restore changed the store: %d contexts, head %s (was %s)", n.Len(), n.Head(), head)
	}
	if refs := gitRefs(t, n, "refs/recovery/"); refs != "" {
		t.Fatalf("the refused restore left %s", refs)
	}
	if _, err := n.Backup(context.Background()); nexus.ErrorCode(err) != nexus.EUnavailable {
		t.Fatalf("in-process backup without an audit log = %v, want unavailable", err)
	}
	if list, _ := filepath.Glob(filepath.Join(cfg.Dir, "backups", "*")); len(list) != 0 {
		t.Fatalf("the refused backup wrote %v", list)
	}
}

func TestConfig_Validate_auditFile(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.AuditFile = t.TempDir()
	err := cfg.Validate()
	want := "AuditFile: " + cfg.AuditFile + " is a directory: the audit log is a file"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate = %v, want %q", err, want)
	}
	cfg.AuditFile = filepath.Join(cfg.AuditFile, "audit.log")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A node opened with AuditFile keeps its audit log there.
func TestNode_AuditFile(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.AuditFile = filepath.Join(t.TempDir(), "logs", "nexus-audit.log")
	n := nodetest.Open(t, cfg)
	putTwo(t, n)
	if _, err := n.Backup(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(cfg.AuditFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "\n"); got != 2 || !strings.Contains(string(b), `"action":"backup"`) {
		t.Fatalf("audit file:\n%s", b)
	}
	if _, err := os.Stat(node.AuditFile(cfg.Dir)); !os.IsNotExist(err) {
		t.Fatalf("the default audit file exists too: %v", err)
	}
}
