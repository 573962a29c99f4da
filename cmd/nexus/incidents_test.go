package main_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
)

// A running `nexus serve` whose index files are destroyed recovers them
// and records the incident; `nexus incidents` lists it (as a table and as
// JSON), `nexus incidents show` tells its timeline and post-mortem, and
// after a restart it is still there.
func TestCLI_Incidents(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data, "--backup-interval=0")
	putMany(t, p.url, 10, "indexed")
	if _, err := httpapi.NewClient(p.url).Search(context.Background(), nexus.SearchRequest{Query: "indexed", Consistent: true}); err != nil {
		t.Fatal(err)
	}
	stopServe(p) // saves the index
	p = startServe(t, data, "--backup-interval=0", "--recover-interval=50ms")
	defer func() { stopServe(p) }()
	out, errs, code := nexusCLI(t, "incidents", "--server", p.url)
	if code != 0 || out != "No incidents.\n" {
		t.Fatalf("a healthy node: exit %d\n%s%s", code, out, errs)
	}
	files, _ := filepath.Glob(filepath.Join(data, "index", "*", "*.bin"))
	if len(files) != 4 { // docs, fresh, keyword, vectors
		t.Fatalf("saved index files: %v", files)
	}
	for _, f := range files {
		os.Remove(f)
	}
	inc := awaitIncident(t, p.url)

	out, errs, code = nexusCLI(t, "incidents", "--server", p.url)
	row := line(t, out, inc.ID.String())
	if code != 0 || !strings.HasPrefix(out, "INCIDENT ") || !strings.Contains(row, " semantic_index ") || !strings.Contains(row, " recovered ") ||
		!strings.Contains(row, "saved index:") {
		t.Fatalf("nexus incidents: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = nexusCLI(t, "incidents", "list", "--component", "semantic_index", "--json", "--server", p.url)
	var page recovery.IncidentPage
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Incidents) != 1 || page.Incidents[0].ID != inc.ID || page.NextCursor != "" {
		t.Fatalf("nexus incidents list --json: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = nexusCLI(t, "incidents", "show", inc.ID.String(), "--server", p.url)
	for _, want := range []string{"incident:  " + inc.ID.String() + " (failure)", "component: semantic_index", "status:    recovered",
		"timeline:", "detect    detected", "recover   recovered", "saved index written again from memory and verified",
		"post-mortem:", "what failed:      semantic_index: the search index", "time to recovery: ", "operator action:  nothing to repair now"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("nexus incidents show lacks %q: exit %d\n%s%s", want, code, out, errs)
		}
	}
	out, errs, code = nexusCLI(t, "incidents", "show", "--json", inc.ID.String(), "--server", p.url)
	var a httpapi.IncidentAnswer
	if code != 0 || json.Unmarshal([]byte(out), &a) != nil || a.Incident.ID != inc.ID || a.PostMortem.TimeToRecovery == nil ||
		*a.PostMortem.TimeToRecovery != inc.Duration || !strings.HasPrefix(a.PostMortem.Summary, "semantic_index: recovered by the node") {
		t.Fatalf("nexus incidents show --json: exit %d\n%s%s", code, out, errs)
	}

	// Mistakes: a usage error (2), a refused request (1, with its reason).
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"incidents", "--component", "Bad!"}, 1, "invalid component"},
		{[]string{"incidents", "--since", "yesterday"}, 2, "--since: want RFC 3339 time"},
		{[]string{"incidents", "show", "nope"}, 2, "invalid id"},
		{[]string{"incidents", "show"}, 2, "want one incident id"},
		{[]string{"incidents", "show", inc.Updates[0].String()}, 1, "is not an incident"},
	} {
		_, errs, code := nexusCLI(t, append(c.args, "--server", p.url)...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, want %d and %q:\n%s", c.args, code, c.code, c.want, errs)
		}
	}
	if out, _, code := nexusCLI(t, "incidents", "--component", "git_repository", "--server", p.url); code != 0 || out != "No incidents.\n" {
		t.Fatalf("git_repository incidents: exit %d\n%s", code, out)
	}

	stopServe(p)
	p = startServe(t, data, "--backup-interval=0")
	out, errs, code = nexusCLI(t, "incidents", "--json", "--server", p.url)
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Incidents) != 1 || page.Incidents[0].ID != inc.ID ||
		page.Incidents[0].Status != recovery.IncidentRecovered {
		t.Fatalf("after a restart: exit %d\n%s%s", code, out, errs)
	}
}

// awaitIncident polls the server (another process) until it lists a
// recovered incident of the index, for at most a minute.
func awaitIncident(t *testing.T, url string) *recovery.Incident {
	t.Helper()
	c := httpapi.NewClient(url)
	deadline := time.Now().Add(time.Minute)
	for {
		page, err := c.Incidents(context.Background(), recovery.IncidentQuery{Component: nexus.ComponentIndex})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range page.Incidents {
			if i.Status == recovery.IncidentRecovered {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovered index incident after a minute: %+v", page.Incidents)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
