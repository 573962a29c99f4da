package node

import (
	"crypto/tls"
	"errors"
	"net"

	"github.com/nexus-mem/nexus/tlsconf"
)

// tlsFields name the fields of Config that hold each file of TLS.
var tlsFields = map[string]string{
	tlsconf.FileCert: "TLSCert", tlsconf.FileKey: "TLSKey", tlsconf.FileClientCA: "TLSClientCA",
}

// tlsFiles are the TLS files of c.
func (c *Config) tlsFiles() tlsconf.Files {
	return tlsconf.Files{Cert: c.TLSCert, Key: c.TLSKey, ClientCA: c.TLSClientCA}
}

// validateTLS names each bad TLS file of c: missing from a pair,
// unreadable, not PEM, or a key of another certificate.
func (c *Config) validateTLS(bad func(field, format string, args ...any)) {
	f := c.tlsFiles()
	if !f.Enabled() {
		return
	}
	for _, err := range tlsconf.Check(f) {
		var fe *tlsconf.FileError
		if errors.As(err, &fe) {
			bad(tlsFields[fe.File], "%v", err)
		}
	}
}

// openTLS loads the node's certificate, if it serves TLS.
func (n *Node) openTLS() error {
	f := n.cfg.tlsFiles()
	if !f.Enabled() {
		return nil
	}
	s, err := tlsconf.NewServer(f, n.log)
	if err != nil {
		return &ConfigError{Err: err}
	}
	n.tls = s
	return nil
}

// ReloadTLS takes up the certificate, key and client CA files again if
// they changed (as every handshake does; this is for SIGHUP, and says
// what it found). It reports whether new files were taken up; on an
// error the last good ones serve on. A node without TLS has nothing to
// reload.
func (n *Node) ReloadTLS() (bool, error) {
	if n.tls == nil {
		return false, nil
	}
	return n.tls.Reload()
}

// listener is ln as the node serves it: TLS if configured, speaking
// HTTP/1.1 as the plain listener does (one request at a time on a
// connection, so that limits on connections and streams mean the same). It also returns the scheme of the node's URLs, and warns of
// a token that would cross a network in clear.
func (n *Node) listener(ln net.Listener) (net.Listener, string) {
	if n.tls != nil {
		return tlsListener(ln, n.tls), "https"
	}
	if host, _, err := net.SplitHostPort(ln.Addr().String()); err == nil && !IsLoopback(host) && n.cfg.Token != "" {
		n.log.Warn("serving plain HTTP beyond loopback: clients send the token in clear; serve TLS (--tls-cert, --tls-key)", "addr", ln.Addr().String())
	}
	return ln, "http"
}

func tlsListener(ln net.Listener, s *tlsconf.Server) net.Listener {
	return tls.NewListener(ln, s.Config("http/1.1"))
}
