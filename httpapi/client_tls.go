package httpapi

import (
	"crypto/tls"
	"net/http"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/tlsconf"
)

// plainToTLS starts the answer of a Go TLS server to plain HTTP.
var plainToTLS = []byte("Client sent an HTTP request to an HTTPS server")

// clientTLS is what the TLS options of a client asked for.
type clientTLS struct {
	cfg                       *tls.Config
	caFile, certFile, keyFile string
}

// WithTLS makes the client speak TLS to an https:// server with cfg (see
// [tlsconf.Client]): its requests go through a transport of its own,
// cloned from the one of [WithHTTPClient] if that is an
// [*http.Transport].
func WithTLS(cfg *tls.Config) ClientOption {
	return func(c *Client) { c.tlsOf().cfg = cfg }
}

// WithCAFile makes the client trust the server certificates signed by the
// PEM CA certificates in path, instead of the system's roots. A file that
// cannot be used shows up as an invalid error on the first request.
func WithCAFile(path string) ClientOption {
	return func(c *Client) { c.tlsOf().caFile = path }
}

// WithClientCert makes the client present the PEM certificate and key in
// certFile and keyFile to a server that demands one (mutual TLS). Files
// that cannot be used show up as an invalid error on the first request.
func WithClientCert(certFile, keyFile string) ClientOption {
	return func(c *Client) { t := c.tlsOf(); t.certFile, t.keyFile = certFile, keyFile }
}

func (c *Client) tlsOf() *clientTLS {
	if c.tls == nil {
		c.tls = &clientTLS{}
	}
	return c.tls
}

// applyTLS gives the client a transport with the configuration its TLS
// options asked for; a bad file is kept in c.err for every request.
func (c *Client) applyTLS() {
	t := c.tls
	if t == nil {
		return
	}
	cfg := t.cfg
	if t.caFile != "" || t.certFile != "" || t.keyFile != "" {
		var err error
		if cfg, err = tlsconf.Client(t.caFile, t.certFile, t.keyFile); err != nil {
			c.err = nexus.Errorf(nexus.EInvalid, "TLS of the client: %v", err)
			return
		}
	}
	base, ok := c.hc.Transport.(*http.Transport)
	if !ok {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	tr.TLSClientConfig, tr.ForceAttemptHTTP2 = cfg, false // HTTP/1.1, as the server speaks
	hc := *c.hc
	hc.Transport = tr
	c.hc = &hc
}
