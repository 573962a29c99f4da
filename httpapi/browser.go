package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/nexus-mem/nexus"
)

// codeForbidden is the code of a request refused for who or where it
// comes from (HTTP 403).
const codeForbidden nexus.Code = "forbidden"

// browserGuard keeps web pages the user visits from driving the API: a
// page can make the browser send requests to a loopback server, either
// under a name the attacker controls that resolves to 127.0.0.1 (DNS
// rebinding) or from its own origin (cross-site requests, forms).
type browserGuard struct {
	// names are the public names the server answers as, lower case: a
	// name alone matches any port, name:port only that port.
	names []string
}

func newBrowserGuard(publicNames []string) browserGuard {
	g := browserGuard{}
	for _, n := range publicNames {
		g.names = append(g.names, strings.ToLower(strings.TrimSpace(n)))
	}
	return g
}

// checkHost refuses a request whose Host is not a name of the server: it
// writes the refusal and returns the limit's name.
func (g browserGuard) checkHost(w http.ResponseWriter, r *http.Request) (string, bool) {
	if !g.allowedHost(r.Host, localAddr(r)) {
		writeError(w, http.StatusMisdirectedRequest, nexus.ErrorDetail{Code: codeForbidden, Message: hostMessage(r.Host)})
		return limitHost, false
	}
	return "", true
}

// checkChange refuses a state-changing request that a web page could
// have sent: from another origin, or without a JSON content type (what a
// form sends). It writes the refusal and returns the limit's name. /mcp
// is left to the MCP SDK's own checks.
func (g browserGuard) checkChange(w http.ResponseWriter, r *http.Request) (string, bool) {
	if safeMethod(r.Method) || r.URL.Path == "/mcp" {
		return "", true
	}
	if msg := g.crossSite(r, localAddr(r)); msg != "" {
		writeError(w, http.StatusForbidden, nexus.ErrorDetail{Code: codeForbidden, Message: msg})
		return limitOrigin, false
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		d := nexus.DetailOf(err)
		d.Message += " (every state-changing request must be JSON, which a web form cannot send)"
		writeError(w, statusOf(d.Code), d)
		return limitForm, false
	}
	return "", true
}

func hostMessage(host string) string {
	return "Host " + quoteClip(host) + " is not a name this server answers as: use localhost, 127.0.0.1 or [::1] " +
		"with its port, or a name configured with --public-name (requests under other names may come from a web page through DNS rebinding)"
}

func quoteClip(s string) string { return `"` + clip(s, 80) + `"` }

// safeMethod reports whether m changes nothing on the server.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// localAddr is the address the request's connection arrived on; nil for
// a request handed to the handler in process, which no browser sent.
func localAddr(r *http.Request) net.Addr {
	a, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return a
}

// allowedHost reports whether host (a Host header or an origin's host)
// names this server: a loopback name with the port of the connection,
// the IP address the connection arrived on, or a public name.
func (g browserGuard) allowedHost(host string, local net.Addr) bool {
	if local == nil {
		return true
	}
	name, port := splitHost(host)
	if name == "" {
		return false
	}
	lip, lport := addrParts(local)
	for _, n := range g.names {
		pn, pp := splitHost(n)
		if pn == name && (pp == "" || pp == port) {
			return true
		}
	}
	if port != lport && !(port == "" && (lport == "80" || lport == "443")) {
		return false
	}
	if name == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(name)
	if err != nil {
		return false // a name that is not ours: DNS rebinding
	}
	// An IP literal cannot be rebound: a loopback one, or the address the
	// connection came to (a node listening beyond loopback).
	return ip.IsLoopback() || ip.Unmap() == lip.Unmap()
}

// splitHost splits host[:port] (IPv6 in brackets) into its lower-case
// name and its port, "" when absent.
func splitHost(host string) (name, port string) {
	host = strings.ToLower(host)
	if h, p, err := net.SplitHostPort(host); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ""
}

// addrParts splits the address a connection arrived on into its IP and
// port; a TCP address (every connection of a node) without formatting it
// and parsing it back.
func addrParts(a net.Addr) (netip.Addr, string) {
	var ap netip.AddrPort
	if t, ok := a.(*net.TCPAddr); ok {
		ap = t.AddrPort()
	} else {
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Addr{}, ""
		}
	}
	if !ap.Addr().IsValid() {
		return netip.Addr{}, ""
	}
	return ap.Addr(), strconv.Itoa(int(ap.Port()))
}

// crossSite says why r came from a page of another origin, or "".
func (g browserGuard) crossSite(r *http.Request, local net.Addr) string {
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "a " + clip(site, 20) + " request from a web page may not change anything on this server (Sec-Fetch-Site: " + clip(site, 20) + ")"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !g.allowedHost(u.Host, local) {
		return "Origin " + quoteClip(origin) + " may not change anything on this server: only pages of the server's own names may"
	}
	return ""
}
