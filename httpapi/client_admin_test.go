package httpapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
	"github.com/nexus-mem/nexus/storetest"
)

// newAdminNode serves a store on disk with its admin routes and returns
// the store and a client of the server.
func newAdminNode(t *testing.T) (*gitstore.Store, *httpapi.Client) {
	t.Helper()
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := newServer(t, st, httpapi.Options{Admin: newNodeAdmin(st)})
	return st, httpapi.NewClient(srv.URL, httpapi.WithToken(token), httpapi.WithHTTPClient(srv.Client()))
}

// putN stores n contexts and returns them, oldest first.
func putN(t *testing.T, c *httpapi.Client, n int) []*nexus.Context {
	t.Helper()
	var out []*nexus.Context
	for i := range n {
		x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("note ", i)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func TestClient_Fsck(t *testing.T) {
	st, c := newAdminNode(t)
	putN(t, c, 3)
	for _, deep := range []bool{false, true} {
		got, err := c.Fsck(t.Context(), deep)
		if err != nil {
			t.Fatalf("deep %v: %v", deep, err)
		}
		want, err := st.Fsck(t.Context(), deep)
		if err != nil {
			t.Fatal(err)
		}
		got.Took, want.Took = 0, 0
		if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *want) {
			t.Errorf("deep %v: the client decoded %+v, the store reports %+v", deep, *got, *want)
		}
		if got.Deep != deep || got.Head != st.Head().String() || !got.Clean() {
			t.Errorf("deep %v: report %+v", deep, *got)
		}
	}
	if got, _ := c.Fsck(t.Context(), true); got.Contexts != 3 || got.Commits != 3 {
		t.Errorf("deep check saw %d contexts in %d commits, want 3 in 3", got.Contexts, got.Commits)
	}
}

func TestClient_Restore(t *testing.T) {
	st, c := newAdminNode(t)
	cs := putN(t, c, 3)
	head := st.Head().String()
	plan, err := c.Restore(t.Context(), cs[0].Timestamp, true)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || plan.Kept != 1 || plan.RolledBack != 2 || plan.LastKept != cs[0].ID ||
		plan.FirstGone != cs[1].ID || plan.LastGone != cs[2].ID || plan.From != head || !plan.At.Equal(cs[0].Timestamp) {
		t.Fatalf("dry run: %+v", *plan)
	}
	if st.Len() != 3 || st.Head().String() != head {
		t.Fatalf("a dry run changed the store: %d contexts, head %s", st.Len(), st.Head())
	}
	plan, err = c.Restore(t.Context(), cs[0].Timestamp, false)
	if err != nil {
		t.Fatal(err)
	}
	if plan.DryRun || plan.RolledBack != 2 || plan.From != head || plan.To != st.Head().String() || plan.RecoveryRef == "" {
		t.Fatalf("restore: %+v (head now %s)", *plan, st.Head())
	}
	if st.Len() != 1 {
		t.Errorf("after the restore the store holds %d contexts, want 1", st.Len())
	}
	_, err = c.Restore(t.Context(), time.Time{}, true)
	wantCode(t, "restore without a time", err, nexus.EInvalid)
}

func TestClient_Recover(t *testing.T) {
	_, c := newAdminNode(t)
	putN(t, c, 1)
	res, err := c.Recover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Stopping || len(res.Steps) != 2 {
		t.Fatalf("recover: %+v", res)
	}
	for i, name := range []string{nexus.ComponentGit, nexus.ComponentStore} {
		if s := res.Steps[i]; s.Component != name || s.Status != recovery.OK || s.At.IsZero() {
			t.Errorf("step %d: %+v, want %s %s", i, s, name, recovery.OK)
		}
	}
}

func TestClient_adminDisabled(t *testing.T) {
	c := newClient(t, storetest.NewMemStore())
	_, err := c.Fsck(t.Context(), true)
	wantCode(t, "fsck", err, nexus.ENotFound)
	_, err = c.Restore(t.Context(), time.Now(), true)
	wantCode(t, "restore", err, nexus.ENotFound)
	_, err = c.Recover(t.Context())
	wantCode(t, "recover", err, nexus.ENotFound)
}
