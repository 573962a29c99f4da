package browsertest

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// StartTLS is [Start] for a node whose TLS certificate a test CA signed:
// the browser accepts any server certificate. Cookies and the rest
// behave as over any HTTPS connection (Secure cookies are sent).
func StartTLS(t testing.TB) *Browser {
	t.Helper()
	Need(t)
	b, stop, err := Launch(t.TempDir(), chromedp.IgnoreCertErrors)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return b
}

// Cookies are the browser's cookies for the tab's current URL, HttpOnly
// ones included (which the page's scripts cannot see).
func (p *Tab) Cookies() []*network.Cookie {
	p.t.Helper()
	var cs []*network.Cookie
	p.Do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
		cs = res.Cookies
		return err
	}))
	return cs
}

// Cookie is the browser's cookie of that name for the tab's current URL,
// or nil.
func (p *Tab) Cookie(name string) *network.Cookie {
	p.t.Helper()
	for _, c := range p.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ErrorsBut are the errors recorded so far that contain none of the
// allowed strings (a refusal the test provoked, say).
func (p *Tab) ErrorsBut(allowed ...string) []string {
	var out []string
	for _, e := range p.Errors() {
		if !containsAny(e, allowed) {
			out = append(out, e)
		}
	}
	return out
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
