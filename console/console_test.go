package console_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/console"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

func get(t *testing.T, h http.Handler, method, target string, header map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// GET / is the page and GET /console/<file> an embedded file, each with
// its content type, the CSP and an ETag that answers 304.
func TestHandler_serves(t *testing.T) {
	h := console.Handler()
	for _, c := range []struct{ target, ctype, contains string }{
		{"/", "text/html; charset=utf-8", `<main id="page"`},
		{"/console/index.html", "text/html; charset=utf-8", `<script type="module" src="/console/js/app.js"></script>`},
		{"/console/js/app.js", "text/javascript; charset=utf-8", "function route()"},
		{"/console/app.css", "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{"/console/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot"},
		{"/console/icon.svg", "image/svg+xml", "<svg"},
	} {
		resp := get(t, h, "GET", c.target, nil)
		b := body(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(b, c.contains) {
			t.Errorf("GET %s: %d %q, want 200 %q containing %q", c.target, resp.StatusCode, resp.Header.Get("Content-Type"), c.ctype, c.contains)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != console.CSP {
			t.Errorf("GET %s: CSP %q, want %q", c.target, got, console.CSP)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", c.target, k, got, want)
			}
		}
		etag := resp.Header.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
			t.Errorf("GET %s: ETag %q", c.target, etag)
		}
		again := get(t, h, "GET", c.target, map[string]string{"If-None-Match": etag})
		if again.StatusCode != http.StatusNotModified || body(t, again) != "" {
			t.Errorf("GET %s with its ETag: %d, want 304 without a body", c.target, again.StatusCode)
		}
	}
	head := get(t, h, "HEAD", "/", nil)
	if head.StatusCode != 200 || body(t, head) != "" || head.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD /: %d, want 200 with a length and no body", head.StatusCode)
	}
}

// Anything else is a JSON error with a code, as the API answers.
func TestHandler_refuses(t *testing.T) {
	h := console.Handler()
	for _, c := range []struct {
		method, target string
		status         int
		code, says     string
	}{
		{"GET", "/console/nope.js", 404, "not_found", "no console file at /console/nope.js"},
		{"GET", "/console/", 404, "not_found", "no console file at /console/"},
		{"GET", "/console/js", 404, "not_found", "no console file at /console/js"},
		{"GET", "/console/js/../app.css", 404, "not_found", "no console file"},
		{"GET", "/console//app.css", 404, "not_found", "no console file"},
		{"GET", "/other", 404, "not_found", "no console file at /other"},
		{"POST", "/", 405, "invalid", "method POST is not allowed on the console's files; allowed: GET, HEAD"},
		{"DELETE", "/console/app.css", 405, "invalid", "allowed: GET, HEAD"},
	} {
		resp := get(t, h, c.method, c.target, nil)
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal([]byte(body(t, resp)), &e); err != nil {
			t.Errorf("%s %s: not JSON: %v", c.method, c.target, err)
			continue
		}
		if resp.StatusCode != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.says) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %+v, want %d %s saying %q", c.method, c.target, resp.StatusCode, e.Error, c.status, c.code, c.says)
		}
		if resp.Header.Get("Content-Security-Policy") != console.CSP {
			t.Errorf("%s %s: no CSP", c.method, c.target)
		}
	}
}

// The files keep to what the CSP allows and the contract asks: no
// inline script, no inline handler or style attribute, no eval or
// markup built from strings (every text goes in as a text node), and
// every file the page or a module loads is embedded.
func TestAssets_rules(t *testing.T) {
	root := os.DirFS("assets")
	var pages, modules []string
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "vendor/") {
			return err
		}
		switch path.Ext(p) {
		case ".html":
			pages = append(pages, p)
		case ".js":
			modules = append(modules, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 || len(modules) < 10 {
		t.Fatalf("found pages %v and modules %v", pages, modules)
	}
	exists := func(from, ref string) {
		t.Helper()
		p := strings.TrimPrefix(ref, "/console/")
		if strings.HasPrefix(ref, ".") {
			p = path.Join(path.Dir(from), ref)
		}
		if _, err := fs.Stat(root, p); err != nil {
			t.Errorf("%s loads %s, which is not in assets/", from, ref)
		}
	}
	html := read(t, "assets/"+pages[0])
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>`), // inline script
		regexp.MustCompile(`<script(?:(?:\s+type="module")?\s*)>`),
		regexp.MustCompile(`\son[a-z]+\s*=`),   // inline handler
		regexp.MustCompile(`\sstyle\s*=`),      // style attribute
		regexp.MustCompile(`javascript:`),      // script URL
		regexp.MustCompile(`(?:src|href)="//`), // another host
		regexp.MustCompile(`(?:src|href)="https?:`),
	} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("%s: %q is not allowed", pages[0], m)
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="(/console/[^"]+)"`).FindAllStringSubmatch(html, -1) {
		exists(pages[0], m[1])
	}
	for _, p := range modules {
		// Every module is preloaded, so that the browser fetches them at
		// once rather than one import after another.
		if !strings.Contains(html, `<link rel="modulepreload" href="/console/`+p+`">`) {
			t.Errorf("%s does not preload %s", pages[0], p)
		}
		src := read(t, filepath.Join("assets", p))
		for _, bad := range []*regexp.Regexp{
			regexp.MustCompile(`\.innerHTML|\.outerHTML\s*=|insertAdjacentHTML|document\.write`),
			regexp.MustCompile(`\beval\(|new Function\(|setTimeout\(\s*['"]`),
			regexp.MustCompile(`setAttribute\(\s*['"](?:style|on[a-z]+)['"]`),
			regexp.MustCompile(`\.cssText|localStorage|sessionStorage|document\.cookie`),
			regexp.MustCompile(`https?://`),
		} {
			if m := bad.FindString(src); m != "" {
				t.Errorf("%s: %q is not allowed", p, m)
			}
		}
		for _, m := range regexp.MustCompile(`(?m)^import .* from '([^']+)';`).FindAllStringSubmatch(src, -1) {
			exists(p, m[1])
		}
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Mounted in the API's server, the console's files are served without a
// credential (the sign-in page must load), while the API behind them
// still demands one.
func TestHandler_inTheServer(t *testing.T) {
	s := httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{Token: "the-token"})
	for _, target := range []string{"/", "/console/js/app.js"} {
		resp := get(t, s, "GET", target, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != console.CSP {
			t.Errorf("GET %s without a token: %d (CSP %q), want 200 with the CSP", target, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
	}
	if resp := get(t, s, "GET", "/v1/contexts", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/contexts without a token: %d, want 401", resp.StatusCode)
	}
	if resp := get(t, s, "GET", "/v1/contexts", map[string]string{"Authorization": "Bearer the-token"}); resp.StatusCode != 200 {
		t.Errorf("GET /v1/contexts with the token: %d, want 200", resp.StatusCode)
	}
}
