package main_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/internal/browsertest"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

// authConsoleNode is a real `nexus serve` with two principals in its tokens
// file: ops (admin) and viewer (read only).
type authConsoleNode struct {
	t             *testing.T
	url           string
	admin, reader string
	client        *http.Client
}

func startAuthConsoleNode(t *testing.T, extra ...string) *authConsoleNode {
	t.Helper()
	data := t.TempDir()
	f := &auth.File{}
	admin, err := f.Create(nexus.Principal{Name: "ops", Role: nexus.RoleAdmin, Read: []string{"*"}, Write: []string{"*"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reader, err := f.Create(nexus.Principal{Name: "viewer", Role: nexus.RoleRead, Read: []string{"*"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(filepath.Join(data, "tokens.json")); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, data, append([]string{"--backup-interval=0"}, extra...)...)
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() })
	client := &http.Client{Timeout: 30 * time.Second}
	if strings.HasPrefix(p.url, "https:") {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	return &authConsoleNode{t: t, url: p.url, admin: admin, reader: reader, client: client}
}

// api sends a request with a bearer token and returns the status and body.
func (n *authConsoleNode) api(tok, method, path string, body any) (int, []byte) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// contents are the contents of the node's latest contexts.
func (n *authConsoleNode) contents() string {
	n.t.Helper()
	code, b := n.api(n.admin, "GET", "/v1/contexts?limit=1000", nil)
	if code != 200 {
		n.t.Fatalf("GET /v1/contexts: %d %s", code, b)
	}
	return string(b)
}

// refused is the node's count of requests refused by the named limit.
func (n *authConsoleNode) refused(limit string) int {
	n.t.Helper()
	code, b := n.api(n.admin, "GET", "/metrics", nil)
	if code != 200 {
		n.t.Fatalf("GET /metrics: %d", code)
	}
	m := regexp.MustCompile(`(?m)^nexus_limit_refused_total\{limit="` + limit + `"\} (\d+)`).FindSubmatch(b)
	if m == nil {
		n.t.Fatalf("/metrics has no nexus_limit_refused_total for limit %q", limit)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// The 401 of GET /v1/session on the login page, and of a refused login,
// are logged by the browser as failed loads: expected, not page errors.
var loginNoise = []string{"status of 401"}

// openLogin opens the console and waits for its login form.
func openLogin(t *testing.T, tab *browsertest.Tab, url string) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("GET / answers %d %q: the console (package console) is not served at /", resp.StatusCode, ct)
	}
	tab.Do(chromedp.Navigate(url+"/"), chromedp.WaitVisible(`form#login input[name="token"][type="password"]`))
}

// signIn types tok into the (empty) login form and submits it.
func signIn(tab *browsertest.Tab, tok string) {
	tab.Do(
		chromedp.SendKeys(`form#login input[name="token"]`, tok),
		chromedp.Click(`form#login button[type="submit"]`),
	)
}

// until waits until the JavaScript expression is true.
func until(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Poll[bool](expr)(ctx, t)
		return chromedp.Void{}, err
	}
}

// afterNavigation evaluates expr until it is not empty, through the
// navigation under way (which ends evaluations started before it), and
// returns it.
func afterNavigation(t *testing.T, tab *browsertest.Tab, expr string) string {
	t.Helper()
	deadline := time.Now().Add(browsertest.StepTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(tab.Ctx, 5*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		cancel()
		if err == nil && v != "" {
			return v
		}
		last = err
		time.Sleep(50 * time.Millisecond) // the browser is another process: poll it
	}
	t.Fatalf("%s stayed empty for %s (last error: %v)", expr, browsertest.StepTimeout, last)
	return ""
}

// A login through the console's form sets the session cookie HttpOnly
// and SameSite=Strict (not Secure over plain HTTP); a wrong token shows
// an error and sets nothing. The token typed appears nowhere the page
// can reach afterwards: not in the DOM (nor any input's value), not in
// localStorage, sessionStorage or document.cookie. A state change made
// with the cookie but without X-Nexus-CSRF is refused 403 forbidden; with
// it, accepted.
func TestConsole_loginCookieCSRF(t *testing.T) {
	n := startAuthConsoleNode(t)
	tab := browsertest.Start(t).NewTab(t, 1280, 800)
	openLogin(t, tab, n.url)

	wrong, _ := auth.NewToken()
	signIn(tab, wrong)
	tab.Do(chromedp.WaitVisible(`form#login [role="alert"]`))
	if msg := browsertest.Eval[string](tab, `document.querySelector('form#login [role="alert"]').textContent`); !strings.Contains(msg, "refused") {
		t.Errorf("a wrong token shows %q, want a refusal", msg)
	}
	if c := tab.Cookie("nexus_session"); c != nil {
		t.Fatalf("a wrong token set a session cookie: %+v", c)
	}

	signIn(tab, n.admin)
	waitPage(tab, "overview")
	c := tab.Cookie("nexus_session")
	if c == nil {
		t.Fatal("no session cookie after the login")
	}
	if !c.HTTPOnly || c.SameSite != "Strict" || c.Secure || c.Path != "/" || !c.Session {
		t.Errorf("session cookie: HttpOnly %v, SameSite %q, Secure %v, Path %q, session %v; want HttpOnly, Strict, not Secure over HTTP, /, a session cookie",
			c.HTTPOnly, c.SameSite, c.Secure, c.Path, c.Session)
	}

	// The secret is nowhere the page can reach.
	tokJS, _ := json.Marshal(n.admin)
	where := browsertest.Eval[[]string](tab, `(() => {
		const tok = `+string(tokJS)+`, found = [];
		if (document.documentElement.outerHTML.includes(tok)) found.push('DOM');
		for (const el of document.querySelectorAll('input, textarea')) if (el.value.includes(tok)) found.push('input ' + (el.name || el.id));
		const dump = (s) => { let o = ''; for (let i = 0; i < s.length; i++) o += s.key(i) + '=' + s.getItem(s.key(i)) + ';'; return o; };
		if (dump(localStorage).includes(tok)) found.push('localStorage');
		if (dump(sessionStorage).includes(tok)) found.push('sessionStorage');
		if (document.cookie.includes(tok)) found.push('document.cookie');
		if (document.cookie.includes('nexus_session')) found.push('the session cookie in document.cookie');
		return found;
	})()`)
	if len(where) > 0 {
		t.Errorf("after the login the token (or the session cookie) is in %v", where)
	}

	// Made from the console's own page: without the CSRF token refused,
	// with it accepted.
	post := func(withCSRF bool, content string) string {
		return browsertest.Eval[string](tab, fmt.Sprintf(`(async () => {
			const s = await (await fetch('/v1/session', {credentials: 'same-origin'})).json();
			const headers = {'Content-Type': 'application/json'};
			if (%v) headers['X-Nexus-CSRF'] = s.csrf_token;
			const r = await fetch('/v1/contexts', {method: 'POST', credentials: 'same-origin', headers,
				body: JSON.stringify({type: 'memory', namespace: 'console', content: %q})});
			const b = await r.json();
			return r.status + ' ' + (b.error ? b.error.code : b.namespace);
		})()`, withCSRF, content))
	}
	if got := post(false, "without the CSRF token"); got != "403 forbidden" {
		t.Errorf("a cookie POST without X-Nexus-CSRF: %s, want 403 forbidden", got)
	}
	if got := post(true, "with the CSRF token"); got != "201 console" {
		t.Errorf("a cookie POST with X-Nexus-CSRF: %s, want 201", got)
	}
	if all := n.contents(); strings.Contains(all, "without the CSRF token") || !strings.Contains(all, "with the CSRF token") {
		t.Errorf("the store after the two POSTs: %s", all)
	}
	if errs := tab.ErrorsBut(append(loginNoise, "status of 403")...); len(errs) > 0 {
		t.Errorf("the console reported errors: %q", errs)
	}
}

// Under the node's TLS the session cookie is Secure too.
func TestConsole_secureCookieTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "nexus console CA")
	cert, key := ca.Server(t).Write(t, t.TempDir(), "server")
	n := startAuthConsoleNode(t, "--tls-cert="+cert, "--tls-key="+key)
	if !strings.HasPrefix(n.url, "https://") {
		t.Fatalf("the node listens on %s, want https", n.url)
	}
	tab := browsertest.StartTLS(t).NewTab(t, 1280, 800)
	openLogin(t, tab, n.url)
	signIn(tab, n.reader)
	waitPage(tab, "overview")
	c := tab.Cookie("nexus_session")
	if c == nil || !c.Secure || !c.HTTPOnly || c.SameSite != "Strict" {
		t.Fatalf("session cookie over TLS: %+v; want Secure, HttpOnly, SameSite=Strict", c)
	}
	if errs := tab.ErrorsBut(loginNoise...); len(errs) > 0 {
		t.Errorf("the console reported errors: %q", errs)
	}
}

// consolePages are the console's hash routes and the names their pages
// carry; "{id}" is a context's id.
var consolePages = []struct{ hash, name string }{
	{"#/overview", "overview"}, {"#/contexts", "contexts"}, {"#/contexts/{id}", "context"}, {"#/search", "search"},
	{"#/agents", "agents"}, {"#/recovery", "recovery"}, {"#/cluster", "cluster"},
}

// A read-only principal's session sees no [data-admin] element on any
// page; an admin's sees the admin controls of the recovery page (the
// selector finds what it should).
func TestConsole_readOnlySeesNoAdmin(t *testing.T) {
	n := startAuthConsoleNode(t)
	code, b := n.api(n.admin, "POST", "/v1/contexts", map[string]any{"type": "decision", "namespace": "console", "content": "A context to look at."})
	var c nexus.Context
	if json.Unmarshal(b, &c); code != 201 {
		t.Fatalf("POST /v1/contexts: %d %s", code, b)
	}
	for _, who := range []struct {
		name, tok string
		admin     bool
	}{{"viewer", n.reader, false}, {"ops", n.admin, true}} {
		t.Run(who.name, func(t *testing.T) {
			tab := browsertest.Start(t).NewTab(t, 1280, 800)
			openLogin(t, tab, n.url)
			signIn(tab, who.tok)
			waitPage(tab, "overview")
			adminSeen := 0
			for _, p := range consolePages {
				hash := strings.ReplaceAll(p.hash, "{id}", c.ID.String())
				tab.Do(chromedp.Evaluate[chromedp.Void](`location.hash = ` + strconv.Quote(hash)))
				waitPage(tab, p.name)
				k := browsertest.Eval[int](tab, `document.querySelectorAll('[data-admin]').length`)
				if !who.admin && k != 0 {
					t.Errorf("%s: a read-only session sees %d [data-admin] element(s)", hash, k)
				}
				adminSeen += k
			}
			if who.admin && adminSeen == 0 {
				t.Error("an admin's session sees no [data-admin] element on any page")
			}
			if errs := tab.ErrorsBut(loginNoise...); len(errs) > 0 {
				t.Errorf("the console reported errors: %q", errs)
			}
		})
	}
}

// attackPage is another site's page: on load its script tries to store
// a context on the node with the browser's credentials, by a fetch the
// browser sends without asking (no-cors, text/plain) and by one it must
// ask for (JSON, credentials included), and it holds a plain HTML form
// that posts to the node.
const attackPage = `<!doctype html><title>elsewhere</title>
<form id="f" method="post" enctype="text/plain" action="NODE/v1/contexts">
<input name='{"type":"memory","namespace":"console","content":"MARKER form","x":"' value='"}'>
</form><p id="out"></p>
<script>
(async () => {
  const out = [];
  try {
    await fetch('NODE/v1/contexts', {method: 'POST', mode: 'no-cors', credentials: 'include',
      headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({type: 'memory', namespace: 'console', content: 'MARKER no-cors'})});
    out.push('no-cors sent');
  } catch (e) { out.push('no-cors failed'); }
  try {
    const r = await fetch('NODE/v1/contexts', {method: 'POST', credentials: 'include',
      headers: {'Content-Type': 'application/json', 'X-Nexus-CSRF': 'a guess'}, body: JSON.stringify({type: 'memory', namespace: 'console', content: 'MARKER cors'})});
    out.push('cors ' + r.status);
  } catch (e) { out.push('cors blocked'); }
  document.getElementById('out').textContent = out.join(', ');
})();
</script>`

// A cross-site request is refused: with an admin logged in to the
// console, a page served from another loopback port (same site, so the
// SameSite=Strict cookie still goes along) tries to store a context by
// fetch and by a plain form; the node refuses each (403, counted as
// origin refusals) and its store holds nothing new.
func TestConsole_crossSiteRefused(t *testing.T) {
	n := startAuthConsoleNode(t)
	b := browsertest.Start(t)
	tab := b.NewTab(t, 1280, 800)
	openLogin(t, tab, n.url)
	signIn(tab, n.admin)
	waitPage(tab, "overview")
	before := n.refused("origin")

	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, strings.ReplaceAll(attackPage, "NODE", n.url))
	}))
	defer evil.Close()
	if evil.URL[len("http://127.0.0.1:"):] == n.url[len("http://127.0.0.1:"):] {
		t.Fatal("the two servers share a port")
	}
	other := b.NewTab(t, 1280, 800)
	other.Do(chromedp.Navigate(evil.URL+"/"), until(`document.getElementById('out').textContent.includes('cors')`))
	got := browsertest.Eval[string](other, `document.getElementById('out').textContent`)
	// The browser sends the no-cors request, and the JSON one only after
	// a preflight the node does not grant.
	if got != "no-cors sent, cors blocked" {
		t.Errorf("the other site's fetches: %q, want the simple one sent and the JSON one blocked", got)
	}
	// The form navigates the tab to the node's answer.
	other.Do(chromedp.Evaluate[chromedp.Void](`setTimeout(() => document.getElementById('f').submit(), 0)`))
	answer := afterNavigation(t, other, `location.href.includes('/v1/contexts') && document.body ? document.body.innerText : ''`)
	if !strings.Contains(answer, `"code":"forbidden"`) {
		t.Errorf("the node answered the other site's form with %q, want a 403 forbidden", answer)
	}
	if all := n.contents(); strings.Contains(all, "MARKER") {
		t.Errorf("a cross-site request stored a context: %s", all)
	}
	if after := n.refused("origin"); after-before < 2 {
		t.Errorf("origin refusals went from %d to %d, want the fetch and the form refused", before, after)
	}
	// The console's own tab is unharmed and still logged in.
	if got := browsertest.Eval[int](tab, `fetch('/v1/session').then(r => r.status)`); got != 200 {
		t.Errorf("the console's session after the attack: %d", got)
	}
	if errs := tab.ErrorsBut(loginNoise...); len(errs) > 0 {
		t.Errorf("the console reported errors: %q", errs)
	}
}
