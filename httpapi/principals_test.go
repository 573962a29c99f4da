package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/tasks"
)

// The task routes and the store behind the access checks, with the
// principal of each request named by a test-only header (what the
// authentication middleware sets from a token): a claim's token is shown
// to its claimer only, another principal gets 403 forbidden even with
// it, and so does a forged agent_state checkpoint.
func TestTasksAPI_claimHolderOnly(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	guarded := authz.NewStore(st)
	q, err := tasks.Open(t.Context(), guarded, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	principals := map[string]*nexus.Principal{
		"alice": {Name: "alice", Role: nexus.RoleWrite, Write: []string{"*"}},
		"bob":   {Name: "bob", Role: nexus.RoleWrite, Write: []string{"*"}},
	}
	api := httpapi.NewServer(guarded, httpapi.Options{Tasks: q})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principals[r.Header.Get("X-Test-Principal")]
		api.ServeHTTP(w, r.WithContext(nexus.WithPrincipal(r.Context(), p)))
	}))
	t.Cleanup(srv.Close)
	call := func(who, method, path string, body any, out any) int {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		req.Header.Set("X-Test-Principal", who)
		if body != nil || method == http.MethodPost { // a body-less POST is JSON too
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var task, claimed, seen tasks.Task
	if code := call("alice", "POST", "/v1/tasks", map[string]any{"content": "Review the change."}, &task); code != 201 {
		t.Fatalf("create: %d", code)
	}
	call("alice", "POST", "/v1/agents", map[string]any{"id": "worker"}, nil)
	if code := call("alice", "POST", "/v1/tasks/claim", map[string]any{"agent_id": "worker"}, &claimed); code != 200 || len(claimed.Claim) != 32 {
		t.Fatalf("claim: %d %+v", code, claimed)
	}
	if code := call("bob", "GET", "/v1/tasks/"+task.ID.String(), nil, &seen); code != 200 || seen.Claim != "" || seen.Attempt != 1 {
		t.Fatalf("GET by bob: %d %+v", code, seen)
	}
	var e struct{ Error nexus.ErrorDetail }
	complete := map[string]any{"agent_id": "worker", "claim": claimed.Claim, "content": "LGTM"}
	if code := call("bob", "POST", "/v1/tasks/"+task.ID.String()+"/complete", complete, &e); code != 403 || e.Error.Code != nexus.EForbidden {
		t.Fatalf("completion by bob with alice's token: %d %+v", code, e)
	}
	if code := call("bob", "POST", "/v1/tasks/"+task.ID.String()+"/fail", map[string]any{"agent_id": "worker", "claim": claimed.Claim, "reason": "no"}, &e); code != 403 || e.Error.Code != nexus.EForbidden {
		t.Fatalf("failure by bob with alice's token: %d %+v", code, e)
	}
	if code := call("bob", "POST", "/v1/agents/worker/heartbeat", nil, &e); code != 403 || e.Error.Code != nexus.EForbidden {
		t.Fatalf("heartbeat by bob of alice's agent: %d %+v", code, e)
	}
	forged := map[string]any{"namespace": "agents", "type": "agent_state", "agent_id": "worker", "content": "{}"}
	if code := call("bob", "POST", "/v1/contexts", forged, &e); code != 403 || e.Error.Code != nexus.EForbidden {
		t.Fatalf("forged checkpoint: %d %+v", code, e)
	}
	var done struct {
		Task   tasks.Task
		Result nexus.Context
	}
	if code := call("alice", "POST", "/v1/tasks/"+task.ID.String()+"/complete", complete, &done); code != 200 || done.Task.Status != tasks.Done || done.Result.Principal != "alice" {
		t.Fatalf("completion by alice: %d %+v", code, done)
	}
}
