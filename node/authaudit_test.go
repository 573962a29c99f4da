package node_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A request with a wrong token is refused and recorded in the audit log,
// whose chain still verifies; a reload of the principals is recorded too.
func TestNode_AuthFailureAudited(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.Token = "k3Jx9Qw2LmZ8pT4vRn7YbC1sHd6FgE5aUo0iWeXyNqMr"
	n := nodetest.Open(t, cfg)
	req, _ := http.NewRequest("GET", n.URL+"/v1/contexts", nil)
	req.Header.Set("Authorization", "Bearer wrong-token-wrong-token-wrong-token")
	resp, err := n.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", resp.StatusCode)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	snap, err := n.Audit().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var kinds []string
	if _, err := audit.Verify(snap, func(rec audit.Record) error {
		kinds = append(kinds, string(rec.Kind)+" "+rec.Action)
		if strings.Contains(rec.Error, "wrong-token") || strings.Contains(rec.Route, "wrong-token") {
			t.Errorf("the audit record holds the presented token: %+v", rec)
		}
		return nil
	}); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	got := strings.Join(kinds, ", ")
	if !strings.Contains(got, "auth_failure authenticate") || !strings.Contains(got, "config.reload") {
		t.Fatalf("audit records %q, want the auth failure and the reload", got)
	}
}
