package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// `restore --dry-run` names the commit main would move to, with its time,
// and the restore then moves main there.
func TestRun_RestoreDryRun(t *testing.T) {
	data := t.TempDir()
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var written []*nexus.Context
	for i := range 4 {
		c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, AgentID: "ann", Content: fmt.Sprint("fact ", i)})
		if err != nil {
			t.Fatal(err)
		}
		written = append(written, c)
	}
	page, err := s.Log(context.Background(), nexus.LogFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	head, target := page.Entries[0], page.Entries[2] // the commits of contexts 3 and 1
	if target.ContextID != written[1].ID {
		t.Fatalf("journal %+v: want the commit of %s third", page.Entries, written[1].ID)
	}
	s.Close()
	at := written[1].Timestamp.Format(time.RFC3339Nano)
	to := fmt.Sprintf("%s (%s, ann: %s)", target.Commit[:12], target.Time.UTC().Format(time.RFC3339), target.Summary)

	out, errs, code := runIn(t, "restore", "--data", data, "--at", at, "--dry-run")
	want := fmt.Sprintf("would roll back 2 contexts (%s … %s); 2 kept\nmain would move from %s to %s\n",
		written[2].ID, written[3].ID, head.Commit[:12], to)
	if code != 0 || out != want {
		t.Fatalf("restore --dry-run: exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", code, out, want, errs)
	}
	out, errs, code = runIn(t, "restore", "--data", data, "--at", at)
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("rolled back 2 contexts (%s … %s); 2 kept\nmain moved from %s to %s\n",
		written[2].ID, written[3].ID, head.Commit[:12], to)) {
		t.Fatalf("restore: exit %d:\n%s%s", code, out, errs)
	}
}
