package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// asPrincipal serves h as the principal the X-Test-Principal header names
// ("name" or "name:role"), as the authentication in front of it would.
func asPrincipal(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Test-Principal"); v != "" {
			name, role, _ := strings.Cut(v, ":")
			if role == "" {
				role = string(nexus.RoleWrite)
			}
			p := &nexus.Principal{Name: name, Role: nexus.Role(role), Read: []string{"*"}, Write: []string{"*"}}
			r = r.WithContext(nexus.WithPrincipal(r.Context(), p))
		}
		h.ServeHTTP(w, r)
	})
}

// getAs sends a GET as the principal named, "" for none.
func getAs(t *testing.T, srv *httptest.Server, target, principal string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if principal != "" {
		req.Header.Set("X-Test-Principal", principal)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func errorOf(t *testing.T, resp *http.Response) nexus.ErrorDetail {
	t.Helper()
	defer resp.Body.Close()
	var body nexus.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	return body.Error
}

// Each principal gets its own rate; over it a request gets 429
// rate_limited naming the limit, with Retry-After; the probes are never
// limited. The clock stands still, so no token comes back.
func TestServer_rateLimit(t *testing.T) {
	var now atomic.Int64 // the clock, in Unix nanoseconds
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	h := httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{Limits: httpapi.Limits{Rate: 0.5, Burst: 2, Now: clock}})
	srv := httptest.NewServer(asPrincipal(h))
	defer srv.Close()
	for _, who := range []string{"alice", "bob", ""} {
		for i := range 2 {
			if resp := getAs(t, srv, "/v1/contexts", who); resp.StatusCode != 200 {
				t.Fatalf("%q request %d: %d, want 200 within the burst", who, i, resp.StatusCode)
			} else {
				resp.Body.Close()
			}
		}
		resp := getAs(t, srv, "/v1/contexts", who)
		if ra := resp.Header.Get("Retry-After"); resp.StatusCode != 429 || ra != "2" {
			t.Errorf("%q third request: %d Retry-After %q, want 429 after 2 s", who, resp.StatusCode, ra)
		}
		name := who
		if name == "" {
			name = nexus.Anonymous.Name
		}
		if e := errorOf(t, resp); e.Code != nexus.ERateLimited || !strings.Contains(e.Message, fmt.Sprintf("principal %q", name)) || !strings.Contains(e.Message, "--rate-limit") {
			t.Errorf("%q third request: %+v", who, e)
		}
	}
	for _, probe := range []string{"/livez", "/readyz"} {
		if resp := getAs(t, srv, probe, "alice"); resp.StatusCode != 200 {
			t.Errorf("%s over the rate: %d, want 200", probe, resp.StatusCode)
		}
	}
	now.Add(int64(2 * time.Second)) // one token back
	if resp := getAs(t, srv, "/v1/contexts", "alice"); resp.StatusCode != 200 {
		t.Errorf("after 2 s: %d, want 200", resp.StatusCode)
	}
	if got := h.LimitStats().Refused["rate"]; got != 3 {
		t.Errorf("refused by rate: %d, want 3", got)
	}
}

// Event streams are capped per principal (429) and in total (503, with
// Retry-After); a closed stream gives its slot back.
func TestServer_streamLimits(t *testing.T) {
	n := newEventNode(t, httpapi.Options{Limits: httpapi.Limits{Streams: 3, StreamsPerPrincipal: 2}}, events.Options{})
	srv := httptest.NewServer(asPrincipal(n.h))
	defer srv.Close()
	open := func(who string) *http.Response {
		resp := getAs(t, srv, "/v1/events", who)
		if resp.StatusCode == 200 {
			// The preamble is written once the stream holds its slot.
			if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		return resp
	}
	a1, a2 := open("alice"), open("alice")
	defer a2.Body.Close()
	if a1.StatusCode != 200 || a2.StatusCode != 200 {
		t.Fatalf("alice's streams: %d %d, want 200", a1.StatusCode, a2.StatusCode)
	}
	a3 := open("alice")
	if e := errorOf(t, a3); a3.StatusCode != 429 || e.Code != nexus.ERateLimited || !strings.Contains(e.Message, `principal "alice" holds 2 event streams`) {
		t.Errorf("alice's third stream: %d %+v, want 429 naming the limit", a3.StatusCode, e)
	}
	b1 := open("bob")
	defer b1.Body.Close()
	if b1.StatusCode != 200 {
		t.Fatalf("bob's stream: %d", b1.StatusCode)
	}
	c1 := open("carol")
	if ra := c1.Header.Get("Retry-After"); c1.StatusCode != 503 || ra != "1" {
		t.Errorf("carol's stream over the total: %d Retry-After %q, want 503 with Retry-After", c1.StatusCode, ra)
	}
	if e := errorOf(t, c1); e.Code != nexus.EUnavailable || !strings.Contains(e.Message, "holds 3 event streams, its limit (streams: --max-streams)") {
		t.Errorf("carol's stream: %+v", e)
	}
	a1.Body.Close()
	for h := n.h.(*httpapi.Server); h.LimitStats().Streams != 2; {
		time.Sleep(time.Millisecond) // waits for the server to see the stream closed
	}
	c2 := open("carol")
	defer c2.Body.Close()
	if c2.StatusCode != 200 {
		t.Errorf("carol's stream after alice closed one: %d, want 200", c2.StatusCode)
	}
	st := n.h.(*httpapi.Server).LimitStats()
	if st.Refused["streams"] != 1 || st.Refused["streams_per_principal"] != 1 || st.Streams != 3 {
		t.Errorf("stats %+v, want 1 refused by each stream limit and 3 open", st)
	}
}

// Pages of listings, chains and children end at the byte budget with a
// cursor; following the cursors gives every context once, in order.
func TestServer_pageBytes(t *testing.T) {
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const budget = 10 << 10 // each context encodes to a bit over 3 KiB: 3 per page
	srv := newServer(t, st, httpapi.Options{Limits: httpapi.Limits{PageBytes: budget}})
	c := httpapi.NewClient(srv.URL, httpapi.WithToken(token), httpapi.WithHTTPClient(srv.Client()))
	root, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: strings.Repeat("r", 3<<10)})
	if err != nil {
		t.Fatal(err)
	}
	chain, kids := []*nexus.Context{root}, []*nexus.Context{}
	for i := range 7 {
		x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, ParentID: chain[len(chain)-1].ID, Content: strings.Repeat(fmt.Sprint(i), 3<<10)})
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, x)
		k, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, ParentID: root.ID, Content: strings.Repeat("k", 3<<10)})
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, k)
	}
	kids = append([]*nexus.Context{chain[1]}, kids...) // the chain's first link is a child of root too

	pages := func(first string) (ids []nexus.ID, sizes []int) {
		for target := first; target != ""; {
			resp := getAs(t, srv, target, "")
			var body struct {
				Contexts   []*nexus.Context `json:"contexts"`
				NextCursor string           `json:"next_cursor"`
			}
			b := new(strings.Builder)
			if _, err := bufio.NewReader(resp.Body).WriteTo(b); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if err := json.Unmarshal([]byte(b.String()), &body); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %d %v", target, resp.StatusCode, err)
			}
			sizes = append(sizes, b.Len())
			for _, x := range body.Contexts {
				ids = append(ids, x.ID)
			}
			target = ""
			if body.NextCursor != "" {
				switch {
				case strings.Contains(first, "/chain"):
					target = "/v1/contexts/" + body.NextCursor + "/chain"
				case strings.Contains(first, "/children"):
					target = "/v1/contexts/" + root.ID.String() + "/children?cursor=" + body.NextCursor
				default:
					target = first + "&cursor=" + body.NextCursor
				}
			}
		}
		return ids, sizes
	}
	idsOf := func(cs []*nexus.Context, reverse bool) []nexus.ID {
		var out []nexus.ID
		for _, x := range cs {
			out = append(out, x.ID)
		}
		if reverse {
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
		}
		return out
	}
	all := make([]*nexus.Context, 0, 15)
	all = append(all, root)
	for i := range 7 {
		all = append(all, chain[i+1], kids[i+1])
	}
	for _, r := range []struct {
		target string
		want   []nexus.ID
	}{
		{"/v1/contexts?limit=1000&order=asc", idsOf(all, false)},
		{"/v1/contexts/" + chain[7].ID.String() + "/chain", idsOf(chain, true)},
		{"/v1/contexts/" + root.ID.String() + "/children", idsOf(kids, false)},
	} {
		ids, sizes := pages(r.target)
		if fmt.Sprint(ids) != fmt.Sprint(r.want) {
			t.Errorf("%s: pages gave %v, want %v", r.target, ids, r.want)
		}
		for i, s := range sizes {
			if s > budget || (i < len(sizes)-1 && s < budget*3/4) {
				t.Errorf("%s: page %d is %d bytes; want at most %d, and the budget filled but for the last", r.target, i, s, budget)
			}
		}
	}
	// The client follows the pages of chains and children.
	if got, err := c.Chain(t.Context(), chain[7].ID, 0); err != nil || fmt.Sprint(idsOf(got, false)) != fmt.Sprint(idsOf(chain, true)) {
		t.Errorf("client chain: %v %v", idsOf(got, false), err)
	}
	if got, err := c.Chain(t.Context(), chain[7].ID, 5); err != nil || fmt.Sprint(idsOf(got, false)) != fmt.Sprint(idsOf(chain, true)[:5]) {
		t.Errorf("client chain of 5: %v %v", idsOf(got, false), err)
	}
	if got, err := c.Children(t.Context(), root.ID); err != nil || fmt.Sprint(idsOf(got, false)) != fmt.Sprint(idsOf(kids, false)) {
		t.Errorf("client children: %v %v", idsOf(got, false), err)
	}
	if resp := getAs(t, srv, "/v1/contexts/"+root.ID.String()+"/children?cursor=x", ""); resp.StatusCode != 400 {
		t.Errorf("children with a bad cursor: %d, want 400", resp.StatusCode)
	}
}

// An exact search is refused to a principal below admin, and to anyone
// when the store is over the limit.
func TestServer_exactSearch(t *testing.T) {
	st := storetest.NewMemStore()
	for i := range 3 {
		if _, err := st.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("fact ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	post := func(limit int, principal string) (int, nexus.ErrorDetail) {
		h := httpapi.NewServer(st, httpapi.Options{Searcher: nopSearcher{}, Limits: httpapi.Limits{ExactContexts: limit}})
		srv := httptest.NewServer(asPrincipal(h))
		defer srv.Close()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/search", strings.NewReader(`{"query":"fact","exact":true}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Test-Principal", principal)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			resp.Body.Close()
			return 200, nexus.ErrorDetail{}
		}
		return resp.StatusCode, errorOf(t, resp)
	}
	if code, e := post(3, "admin:admin"); code != 200 {
		t.Errorf("admin, store at the limit: %d %+v, want 200", code, e)
	}
	if code, e := post(2, "admin:admin"); code != 413 || e.Code != nexus.ETooLarge || !strings.Contains(e.Message, "the store holds 3, over the limit of 2 (exact: --max-exact-contexts)") {
		t.Errorf("admin, store over the limit: %d %+v", code, e)
	}
	if code, e := post(0, "reader:read"); code != 403 || e.Code != "forbidden" || !strings.Contains(e.Message, "reserved to admin principals") {
		t.Errorf("reader: %d %+v", code, e)
	}
}

// nopSearcher finds nothing.
type nopSearcher struct{}

func (nopSearcher) Search(context.Context, nexus.SearchRequest) (*nexus.SearchResult, error) {
	return &nexus.SearchResult{}, nil
}

func (nopSearcher) Related(context.Context, nexus.ID, nexus.SearchRequest) (*nexus.SearchResult, error) {
	return &nexus.SearchResult{}, nil
}
