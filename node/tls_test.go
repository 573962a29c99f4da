package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

// tlsNode opens a node serving TLS with a certificate of ca, demanding
// client certificates of ca if mutual.
func tlsNode(t *testing.T, ca *tlstest.CA, mutual bool) (*nodetest.Node, tlstest.Pair) {
	t.Helper()
	cfg := nodetest.Config(t)
	cfg.NoSearch = true
	dir := t.TempDir()
	pair := ca.Server(t)
	cfg.TLSCert, cfg.TLSKey = pair.Write(t, dir, "server")
	if mutual {
		cfg.TLSClientCA = ca.WriteCA(t, dir, "clients.pem")
	}
	return nodetest.Open(t, cfg), pair
}

// tlsClient trusts ca and presents cert, if not nil, whatever CAs the
// server asks for.
func tlsClient(ca *tlstest.CA, cert *tlstest.Pair) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		kp, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
		if err != nil {
			panic(err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	return cfg
}

// get GETs url/livez with cfg on a new connection and returns the status
// and the server's certificate.
func get(t *testing.T, url string, cfg *tls.Config) (int, *x509.Certificate, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url + "/livez")
	if err != nil {
		return 0, nil, err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.TLS.PeerCertificates[0], nil
}

func TestNode_Serve_mutualTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "nexus test CA"), tlstest.NewCA(t, "another CA")
	n, pair := tlsNode(t, ca, true)
	if !strings.HasPrefix(n.URL, "https://") {
		t.Fatalf("URL = %s, want https", n.URL)
	}
	good, foreign := ca.Client(t, "agent-1"), other.Client(t, "intruder")

	if _, _, err := get(t, n.URL, tlsClient(ca, nil)); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("without a client certificate: err = %v, want the handshake refused (certificate required)", err)
	}
	if _, _, err := get(t, n.URL, tlsClient(ca, &foreign)); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("with a certificate of another CA: err = %v, want the handshake refused (unknown certificate authority)", err)
	}
	code, leaf, err := get(t, n.URL, tlsClient(ca, &good))
	if err != nil || code != http.StatusOK || !leaf.Equal(pair.Cert) {
		t.Fatalf("with a client certificate: %d, %v; want 200 from the node's certificate", code, err)
	}

	c := httpapi.NewClient(n.URL, httpapi.WithTLS(tlsClient(ca, &good)))
	put, err := c.Put(context.Background(), nexus.Draft{Namespace: "tls", Type: nexus.TypeMemory, Content: "over TLS", AgentID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(context.Background(), put.ID)
	if err != nil || got.Content != "over TLS" {
		t.Fatalf("Get = %v, %v; want the context put over TLS", got, err)
	}
}

func TestNode_ReloadTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "nexus test CA")
	n, first := tlsNode(t, ca, false)
	if _, leaf, err := get(t, n.URL, tlsClient(ca, nil)); err != nil || !leaf.Equal(first.Cert) {
		t.Fatalf("at start: %v, serial %v; want %s", err, leaf, first.Cert.SerialNumber)
	}
	if changed, err := n.ReloadTLS(); changed || err != nil {
		t.Fatalf("ReloadTLS of unchanged files = %v, %v; want false, nil", changed, err)
	}
	second := ca.Server(t)
	second.Write(t, filepath.Dir(n.Config.TLSCert), "server")
	if changed, err := n.ReloadTLS(); !changed || err != nil {
		t.Fatalf("ReloadTLS of new files = %v, %v; want true, nil", changed, err)
	}
	if _, leaf, err := get(t, n.URL, tlsClient(ca, nil)); err != nil || !leaf.Equal(second.Cert) {
		t.Fatalf("after the reload: %v; want serial %s", err, second.Cert.SerialNumber)
	}
}

// lockedBuffer is a log written by the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestNode_Serve_warnsOfTokenInClear(t *testing.T) {
	var logs lockedBuffer
	cfg := nodetest.Config(t)
	cfg.NoSearch = true
	cfg.Addr, cfg.Token = "0.0.0.0:0", "a-token-of-enough-length-0123456789"
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := nodetest.Open(t, cfg)
	n.Close() // Serve logged before it served, and has returned
	if !strings.Contains(logs.String(), "clients send the token in clear") {
		t.Errorf("no warning of a token sent in clear:\n%s", logs.String())
	}
}

func TestConfig_Validate_tls(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "nexus test CA")
	cert, key := ca.Server(t).Write(t, dir, "server")
	_, otherKey := ca.Server(t).Write(t, dir, "other")
	clientCA := ca.WriteCA(t, dir, "ca.pem")
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		set  func(c *node.Config)
		want string // "" valid
	}{
		{"plain", func(c *node.Config) {}, ""},
		{"tls", func(c *node.Config) { c.TLSCert, c.TLSKey = cert, key }, ""},
		{"key without cert", func(c *node.Config) { c.TLSKey = key }, "TLSCert: certificate file: required to serve TLS"},
		{"client CA alone", func(c *node.Config) { c.TLSClientCA = clientCA }, "TLSCert: certificate file: required to serve TLS\nTLSKey: key file: required to serve TLS"},
		{"missing cert", func(c *node.Config) { c.TLSCert, c.TLSKey = missing, key }, "TLSCert: certificate file " + missing + ": open: no such file or directory"},
		{"key of another cert", func(c *node.Config) { c.TLSCert, c.TLSKey = cert, otherKey }, "TLSKey: key file " + otherKey + ": does not go with the certificate " + cert},
		{"non-loopback with mutual TLS", func(c *node.Config) {
			c.Addr, c.TLSCert, c.TLSKey, c.TLSClientCA = "0.0.0.0:7411", cert, key, clientCA
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := node.DefaultConfig()
			tc.set(&c)
			err := c.Validate()
			var ce *node.ConfigError
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.want != "" && (!errors.As(err, &ce) || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("Validate = %v, want a ConfigError starting %q", err, tc.want)
			}
		})
	}
}

// TLS alone does not open a node beyond loopback: it encrypts, but lets
// any client in. Client certificates (or principals) do.
func TestOpen_TLSAloneBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "nexus test CA")
	cert, key := ca.Server(t).Write(t, dir, "server")
	cfg := nodetest.Config(t)
	cfg.Addr, cfg.TLSCert, cfg.TLSKey = "0.0.0.0:7411", cert, key
	n, err := node.Open(context.Background(), cfg)
	if err == nil {
		n.Close(context.Background())
		t.Fatal("a node beyond loopback with TLS alone opened")
	}
	var ce *node.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `listening on "0.0.0.0:7411" exposes the memory beyond this machine`) {
		t.Fatalf("open: %v, want a ConfigError naming the exposure", err)
	}
	cfg.TLSClientCA = ca.WriteCA(t, dir, "ca.pem")
	n, err = node.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("with client certificates: %v", err)
	}
	n.Close(context.Background())
}
