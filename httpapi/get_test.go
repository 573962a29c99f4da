package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// GET /v1/contexts/{id} answers the stored JSON of the context, byte for
// byte what POST answered and the context's own encoding, whether the
// bytes come from the store's cache (just written) or from git (the store
// reopened, its cache empty), on a plain and an encrypted store, with the
// headers of every JSON answer. After a restore, the contexts it rolled
// back are not_found, the kept one is served unchanged.
func TestGet_servesTheStoredBytes(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypt), func(t *testing.T) {
			dir := t.TempDir()
			var opts gitstore.Options
			if encrypt {
				key := filepath.Join(t.TempDir(), "master.key")
				if err := os.WriteFile(key, []byte(gitstore.NewMasterKey()), 0o600); err != nil {
					t.Fatal(err)
				}
				opts.Encrypt = &gitstore.Encryption{KeyFile: key}
			}
			st, err := gitstore.Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Encrypted() != encrypt {
				t.Fatalf("Encrypted() = %v", st.Encrypted())
			}
			srv := newServer(t, authz.NewStore(st), httpapi.Options{Admin: newNodeAdmin(st)})
			var ids []string
			posted := map[string][]byte{}
			for i, body := range []string{
				`{"type":"decision","content":"<b>a & b</b> é\u2028 one","metadata":{ "k" : [1, 2.50] },"agent_id":"ann","namespace":"team"}`,
				`{"type":"observation","content":"two ` + strings.Repeat("x", 3000) + `"}`,
				`{"type":"result","content":"three"}`,
			} {
				resp := send(t, srv, request{method: http.MethodPost, target: "/v1/contexts", ctype: "application/json", body: strings.NewReader(body)})
				if resp.status != http.StatusCreated {
					t.Fatalf("POST %d: %d %s", i, resp.status, resp.body)
				}
				var c nexus.Context
				if err := json.Unmarshal(resp.body, &c); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, c.ID.String())
				posted[c.ID.String()] = resp.body
			}
			get := func(id string) response {
				t.Helper()
				return send(t, srv, request{method: http.MethodGet, target: "/v1/contexts/" + id})
			}
			check := func(stage string, ids ...string) {
				t.Helper()
				for _, id := range ids {
					resp := get(id)
					if resp.status != http.StatusOK || !bytes.Equal(resp.body, posted[id]) {
						t.Fatalf("%s: GET %s answered %d\n%s\nwant what POST answered\n%s", stage, id, resp.status, resp.body, posted[id])
					}
					if ct, ns := resp.header.Get("Content-Type"), resp.header.Get("X-Content-Type-Options"); ct != "application/json" || ns != "nosniff" {
						t.Errorf("%s: GET %s: Content-Type %q, X-Content-Type-Options %q", stage, id, ct, ns)
					}
					var c nexus.Context
					if err := json.Unmarshal(resp.body, &c); err != nil {
						t.Fatal(err)
					}
					if want := encoding(t, &c); !bytes.Equal(resp.body, want) {
						t.Errorf("%s: GET %s answered\n%s\nwant the context's encoding\n%s", stage, id, resp.body, want)
					}
				}
			}
			before := st.CacheStats()
			check("cached", ids...)
			if got := st.CacheStats(); got.Hits-before.Hits != 3 || got.Misses != before.Misses {
				t.Errorf("cached reads: %d hits, %d misses; want 3 hits and no miss", got.Hits-before.Hits, got.Misses-before.Misses)
			}

			// Reopened, the store reads every context from git once.
			srv.Close()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			if st, err = gitstore.Open(dir, opts); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			srv = newServer(t, authz.NewStore(st), httpapi.Options{Admin: newNodeAdmin(st)})
			check("from git", ids...)
			check("cached again", ids...)
			if got := st.CacheStats(); got.Misses != 3 || got.Hits != 3 {
				t.Errorf("reopened store: %d misses, %d hits; want 3 and 3", got.Misses, got.Hits)
			}

			// A restore to the first context rolls back the other two: their
			// cached bytes are never served again.
			id0, err := nexus.ParseID(ids[0])
			if err != nil {
				t.Fatal(err)
			}
			first, err := st.Get(t.Context(), id0)
			if err != nil {
				t.Fatal(err)
			}
			c := httpapi.NewClient(srv.URL, httpapi.WithToken(token), httpapi.WithHTTPClient(srv.Client()))
			plan, err := c.Restore(t.Context(), first.Timestamp, false)
			if err != nil {
				t.Fatal(err)
			}
			if plan.RolledBack != 2 || plan.Kept != 1 {
				t.Fatalf("restore: %+v", *plan)
			}
			for _, id := range ids[1:] {
				wantError(t, get(id), http.StatusNotFound, nexus.ENotFound)
			}
			check("kept after the restore", ids[0])
		})
	}
}
