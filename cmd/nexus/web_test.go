package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// rawPost sends a POST as a web page could make the browser send it:
// with the headers given, and an optional body.
func rawPost(t *testing.T, target, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The attacks of a web page on a loopback node without a token fail
// against the real binary: a foreign Host (DNS rebinding) cannot restore
// the store, a cross-site Origin or Sec-Fetch-Site cannot recover or
// check it, a form cannot post to a body-less route. The same requests
// from the Go client and from a local JSON caller still work.
func TestServe_browserAttacks(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	c := httpapi.NewClient(p.url)
	var cs []*nexus.Context
	for i := range 3 {
		x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("fact ", i)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, x)
	}
	u, _ := url.Parse(p.url)
	restore := fmt.Sprintf(`{"at":%q}`, cs[0].Timestamp.Format("2006-01-02T15:04:05.999999999Z07:00"))
	js := "application/json"

	// DNS rebinding: evil.example resolves to 127.0.0.1.
	code, body := rawPost(t, p.url+"/v1/admin/restore", restore, map[string]string{"Host": "evil.example:" + u.Port(), "Content-Type": js})
	if code != http.StatusMisdirectedRequest || !strings.Contains(body, `"code":"forbidden"`) || !strings.Contains(body, `Host \"evil.example:`) {
		t.Errorf("restore under a foreign Host: %d %s, want 421 forbidden naming the Host", code, body)
	}
	if page, err := c.List(t.Context(), nexus.Filter{}); err != nil || len(page.Contexts) != 3 {
		t.Fatalf("after the refused restore the node lists %d contexts (%v), want all 3", len(page.Contexts), err)
	}

	for _, r := range []struct {
		name, target string
		header       map[string]string
		status       int
		says         string
	}{
		{"recover from another origin", "/v1/admin/recover", map[string]string{"Origin": "http://evil.example", "Content-Type": js}, 403, `Origin \"http://evil.example\"`},
		{"deep fsck from another origin", "/v1/admin/fsck?deep=true", map[string]string{"Origin": "http://evil.example", "Content-Type": js}, 403, `Origin \"http://evil.example\"`},
		{"recover, cross-site", "/v1/admin/recover", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": js}, 403, "Sec-Fetch-Site: cross-site"},
		{"recover, same-site", "/v1/admin/recover", map[string]string{"Sec-Fetch-Site": "same-site", "Content-Type": js}, 403, "Sec-Fetch-Site: same-site"},
		{"recover by a form", "/v1/admin/recover", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "which a web form cannot send"},
		{"deep fsck by a text/plain form", "/v1/admin/fsck?deep=true", map[string]string{"Content-Type": "text/plain"}, 415, "which a web form cannot send"},
		{"heartbeat by a form", "/v1/agents/x/heartbeat", map[string]string{"Content-Type": "text/plain"}, 415, "which a web form cannot send"},
		{"recover without a type", "/v1/admin/recover", nil, 415, "Content-Type is missing"},
	} {
		code, body := rawPost(t, p.url+r.target, "", r.header)
		if code != r.status || !strings.Contains(body, r.says) {
			t.Errorf("%s: %d %s, want %d saying %q", r.name, code, body, r.status, r.says)
		}
	}

	// A local JSON caller, as curl -H 'Content-Type: application/json',
	// under every loopback name with the port, and a page of the node's
	// own origin.
	for _, h := range []map[string]string{
		{"Content-Type": js},
		{"Content-Type": js, "Host": "localhost:" + u.Port()},
		{"Content-Type": js, "Host": "[::1]:" + u.Port()},
		{"Content-Type": js, "Origin": "http://127.0.0.1:" + u.Port(), "Sec-Fetch-Site": "same-origin"},
	} {
		if code, body := rawPost(t, p.url+"/v1/admin/fsck?deep=true", "", h); code != 200 || !strings.Contains(body, `"deep":true`) {
			t.Errorf("deep fsck with %v: %d %s, want 200", h, code, body)
		}
	}
	if code, body := rawPost(t, p.url+"/v1/admin/recover", "", map[string]string{"Content-Type": js}); code != 200 {
		t.Errorf("recover as JSON: %d %s, want 200", code, body)
	}
	// The Go client.
	if _, err := c.Fsck(t.Context(), true); err != nil {
		t.Errorf("client fsck: %v", err)
	}
	if _, err := c.Recover(t.Context()); err != nil {
		t.Errorf("client recover: %v", err)
	}
	if _, err := c.Restore(t.Context(), cs[0].Timestamp, false); err != nil {
		t.Errorf("client restore: %v", err)
	}
	// (The node records the restore itself in the incidents namespace.)
	if page, err := c.List(t.Context(), nexus.Filter{Namespace: nexus.DefaultNamespace}); err != nil || len(page.Contexts) != 1 {
		t.Errorf("after the client's restore the node lists %d contexts (%v), want 1", len(page.Contexts), err)
	}
}

// A public name is accepted as Host, any other name is not.
func TestServe_publicName(t *testing.T) {
	p := startServe(t, t.TempDir(), "--public-name=nexus.example.com")
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	for host, want := range map[string]int{"nexus.example.com": 200, "nexus.example.com:8443": 200, "other.example.com": 421} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, p.url+"/v1/contexts", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET under Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// Five concurrent listings of 1000 contexts of 1 MiB each get pages
// within the page budget (4 MiB), with a cursor that reaches every
// context.
func TestServe_boundedPages(t *testing.T) {
	p := startServe(t, t.TempDir())
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	c := httpapi.NewClient(p.url)
	big := strings.Repeat("x", 1<<20-16)
	const n = 9
	for range n {
		if _, err := c.Put(t.Context(), nexus.Draft{Namespace: "big", Type: nexus.TypeMemory, Content: big}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	sizes := make([]int, 5)
	for i := range sizes {
		wg.Go(func() {
			resp, err := http.Get(p.url + "/v1/contexts?namespace=big&limit=1000")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var page nexus.Page
			if err := json.Unmarshal(b, &page); err != nil || len(page.Contexts) != 3 || page.NextCursor != page.Contexts[2].ID.String() {
				t.Errorf("list: %d contexts, cursor %q, %v; want 3 and the last one's id", len(page.Contexts), page.NextCursor, err)
			}
			sizes[i] = len(b)
		})
	}
	wg.Wait()
	for i, s := range sizes {
		if s > httpapi.DefaultPageBytes {
			t.Errorf("response %d is %d bytes, over the page budget of %d", i, s, httpapi.DefaultPageBytes)
		}
	}
	seen := 0
	for f := (nexus.Filter{Namespace: "big", Limit: 1000}); ; {
		page, err := c.List(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page.Contexts)
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	if seen != n {
		t.Errorf("following the cursors gave %d contexts, want %d", seen, n)
	}
}
