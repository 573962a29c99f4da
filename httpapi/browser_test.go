package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// Every request's Host must name the server: a loopback name or address
// with its port, or a public name (any port, or the one configured).
func TestServer_host(t *testing.T) {
	h := httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{PublicNames: []string{"Nexus.Example.com", "proxy.example.com:8443"}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port := u.Port()
	for host, want := range map[string]int{
		"127.0.0.1:" + port:          200,
		"localhost:" + port:          200,
		"LOCALHOST:" + port:          200,
		"[::1]:" + port:              200,
		"127.0.0.2:" + port:          200, // a loopback address cannot be rebound
		"nexus.example.com":          200,
		"nexus.example.com:9999":     200,
		"proxy.example.com:8443":     200,
		"proxy.example.com":          421,
		"proxy.example.com:9999":     421,
		"localhost:1":                421, // another port: not this server
		"localhost":                  421,
		"evil.example:" + port:       421,
		"localhost.evil.example":     421,
		"127.0.0.1.nip.io:" + port:   421,
		"10.1.2.3:" + port:           421, // an address the connection did not come to
		"nexus.example.com.evil.com": 421,
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/contexts", nil)
		req.Host = host
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			resp.Body.Close()
		} else if e := errorOf(t, resp); e.Code != "forbidden" || !strings.Contains(e.Message, "--public-name") {
			t.Errorf("Host %q: %+v", host, e)
		}
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
	if got := h.LimitStats().Refused["host"]; got != 9 {
		t.Errorf("refused for their Host: %d, want 9", got)
	}
}

// A state-changing request from another origin or site is refused, and
// so is one without a JSON type; reads are not, nor is the server's own
// origin.
func TestServer_crossSite(t *testing.T) {
	h := httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{PublicNames: []string{"nexus.example.com"}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	draft := `{"type":"memory","content":"x"}`
	for _, r := range []struct {
		name, method string
		header       map[string]string
		want         int
	}{
		{"own origin", "POST", map[string]string{"Origin": "http://" + u.Host, "Sec-Fetch-Site": "same-origin"}, 201},
		{"public name origin", "POST", map[string]string{"Origin": "https://nexus.example.com"}, 201},
		{"no origin, typed in", "POST", map[string]string{"Sec-Fetch-Site": "none"}, 201},
		{"foreign origin", "POST", map[string]string{"Origin": "http://evil.example"}, 403},
		{"foreign origin, own port", "POST", map[string]string{"Origin": "http://evil.example:" + u.Port()}, 403},
		{"null origin", "POST", map[string]string{"Origin": "null"}, 403},
		{"file origin", "POST", map[string]string{"Origin": "file://" + u.Host}, 403},
		{"cross-site", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site", "POST", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"foreign origin reading", "GET", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 200},
	} {
		target := "/v1/contexts"
		req, _ := http.NewRequestWithContext(t.Context(), r.method, srv.URL+target, strings.NewReader(draft))
		if r.method == "GET" {
			req.Body = http.NoBody
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range r.header {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 403 {
			if e := errorOf(t, resp); e.Code != "forbidden" || !strings.Contains(e.Message, "may not change anything on this server") {
				t.Errorf("%s: %+v", r.name, e)
			}
		} else {
			resp.Body.Close()
		}
		if resp.StatusCode != r.want {
			t.Errorf("%s: %d, want %d", r.name, resp.StatusCode, r.want)
		}
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/contexts", strings.NewReader(draft))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if e := errorOf(t, resp); resp.StatusCode != 415 || !strings.Contains(e.Message, "which a web form cannot send") {
			t.Errorf("Content-Type %q: %d %+v, want 415", ct, resp.StatusCode, e)
		}
	}
	st := h.LimitStats()
	if st.Refused["origin"] != 6 || st.Refused["form"] != 4 {
		t.Errorf("refused: %v, want 6 for their origin and 4 as forms", st.Refused)
	}
}
