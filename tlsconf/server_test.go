// The server's minimum is TLS 1.2 by default since Go 1.22; bring the
// default back to TLS 1.0 so that only tlsconf's own minimum can refuse
// TLS 1.1 in TestServer_Config_refusesTLS11.
//
//go:debug tls10server=1

package tlsconf_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/tlsconf"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

// listen serves TLS with cfg on loopback: each connection completes its
// handshake and gets "ok". It returns the address.
func listen(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("ok"))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dial connects with cfg and returns the server's leaf certificate once
// it said "ok", or the error of the handshake or of the read (TLS 1.3
// reports a refused client certificate on the first read).
func dial(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	if string(b) != "ok" {
		return nil, errors.New("server said " + string(b))
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// setup writes a server pair of ca to dir and returns its files.
func setup(t *testing.T, ca *tlstest.CA, dir string) (tlsconf.Files, tlstest.Pair) {
	t.Helper()
	p := ca.Server(t)
	var f tlsconf.Files
	f.Cert, f.Key = p.Write(t, dir, "server")
	return f, p
}

func clientOf(t *testing.T, ca *tlstest.CA, cert *tlstest.Pair) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		kp, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		// Present it whatever CAs the server asks for (Certificates would
		// send nothing to a server that names another CA).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
	}
	return cfg
}

func TestServer_Config_mutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := tlstest.NewCA(t, "nexus test CA"), tlstest.NewCA(t, "another CA")
	f, pair := setup(t, ca, dir)
	f.ClientCA = ca.WriteCA(t, dir, "clients.pem")
	s, err := tlsconf.NewServer(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, s.Config())
	good, foreign := ca.Client(t, "agent-1"), other.Client(t, "intruder")

	if _, err := dial(addr, clientOf(t, ca, nil)); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("no client certificate: err = %v, want the handshake refused (certificate required)", err)
	}
	if _, err := dial(addr, clientOf(t, ca, &foreign)); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("certificate of another CA: err = %v, want the handshake refused (unknown certificate authority)", err)
	}
	leaf, err := dial(addr, clientOf(t, ca, &good))
	if err != nil {
		t.Fatalf("certificate of the client CA: %v", err)
	}
	if !leaf.Equal(pair.Cert) {
		t.Errorf("server presented %s, want %s", leaf.Subject, pair.Cert.Subject)
	}
}

func TestServer_Config_noClientCA(t *testing.T) {
	ca := tlstest.NewCA(t, "nexus test CA")
	f, pair := setup(t, ca, t.TempDir())
	s, err := tlsconf.NewServer(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, s.Config())
	leaf, err := dial(addr, clientOf(t, ca, nil))
	if err != nil {
		t.Fatalf("client without a certificate: %v", err)
	}
	if !leaf.Equal(pair.Cert) {
		t.Errorf("server presented %s, want %s", leaf.Subject, pair.Cert.Subject)
	}
	if _, err := dial(addr, clientOf(t, tlstest.NewCA(t, "another CA"), nil)); err == nil {
		t.Error("a client trusting another CA accepted the server")
	}
}

func TestServer_Config_refusesTLS11(t *testing.T) {
	ca := tlstest.NewCA(t, "nexus test CA")
	f, _ := setup(t, ca, t.TempDir())
	s, err := tlsconf.NewServer(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, s.Config())
	old := clientOf(t, ca, nil)
	old.MinVersion, old.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	if _, err := dial(addr, old); err == nil || !strings.Contains(err.Error(), "protocol version not supported") {
		t.Errorf("TLS 1.1 client: err = %v, want the handshake refused (protocol version not supported)", err)
	}
	v12 := clientOf(t, ca, nil)
	v12.MaxVersion = tls.VersionTLS12
	if _, err := dial(addr, v12); err != nil {
		t.Errorf("TLS 1.2 client: %v", err)
	}
}

func TestServer_Config_reloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "nexus test CA")
	f, first := setup(t, ca, dir)
	var logs bytes.Buffer
	s, err := tlsconf.NewServer(f, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, s.Config())
	presents := func(want tlstest.Pair, when string) {
		t.Helper()
		leaf, err := dial(addr, clientOf(t, ca, nil))
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if !leaf.Equal(want.Cert) {
			t.Fatalf("%s: server presented serial %s, want %s", when, leaf.SerialNumber, want.Cert.SerialNumber)
		}
	}
	presents(first, "at start")

	second := ca.Server(t)
	second.Write(t, dir, "server") // overwritten in place
	presents(second, "after the files were replaced")
	if !strings.Contains(logs.String(), "tls: certificate taken up") || !strings.Contains(logs.String(), "on=handshake") {
		t.Errorf("log does not tell of the new certificate:\n%s", logs.String())
	}

	// Half-way through a renewal: the new certificate, the old key. The
	// last good pair serves on.
	third := ca.Server(t)
	if err := os.WriteFile(f.Cert, third.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	presents(second, "with a certificate that does not match the key")
	changed, err := s.Reload()
	var fe *tlsconf.FileError
	if changed || !errors.As(err, &fe) || fe.File != tlsconf.FileKey || fe.Path != f.Key {
		t.Fatalf("Reload of a mismatched pair = %v, %v; want false and a key FileError for %s", changed, err, f.Key)
	}
	if n := strings.Count(logs.String(), "files refused"); n != 1 {
		t.Errorf("the refused pair was logged %d times, want once:\n%s", n, logs.String())
	}
	if err := os.WriteFile(f.Key, third.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := s.Reload(); !changed || err != nil {
		t.Fatalf("Reload of the completed pair = %v, %v; want true, nil", changed, err)
	}
	if !s.Leaf().Equal(third.Cert) {
		t.Errorf("Leaf = serial %s, want %s", s.Leaf().SerialNumber, third.Cert.SerialNumber)
	}
	presents(third, "after Reload")
	if changed, err := s.Reload(); changed || err != nil {
		t.Errorf("Reload of unchanged files = %v, %v; want false, nil", changed, err)
	}
}

func TestServer_Config_reloadsClientCA(t *testing.T) {
	dir := t.TempDir()
	ca, next := tlstest.NewCA(t, "nexus test CA"), tlstest.NewCA(t, "next client CA")
	f, _ := setup(t, ca, dir)
	f.ClientCA = ca.WriteCA(t, dir, "clients.pem")
	s, err := tlsconf.NewServer(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, s.Config())
	oldClient, newClient := ca.Client(t, "agent-1"), next.Client(t, "agent-2")
	if _, err := dial(addr, clientOf(t, ca, &newClient)); err == nil {
		t.Fatal("a client of the next CA was accepted before the CA file changed")
	}
	next.WriteCA(t, dir, "clients.pem")
	if _, err := dial(addr, clientOf(t, ca, &newClient)); err != nil {
		t.Errorf("a client of the new client CA: %v", err)
	}
	if _, err := dial(addr, clientOf(t, ca, &oldClient)); err == nil {
		t.Error("a client of the replaced client CA was still accepted")
	}
}

func TestNewServer_badFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "nexus test CA")
	good, _ := setup(t, ca, dir)
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherKey := ca.Server(t)
	_, wrongKey := otherKey.Write(t, dir, "other")
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		f    tlsconf.Files
		file string
		want string
	}{
		{"no cert", tlsconf.Files{Key: good.Key}, tlsconf.FileCert, "certificate file: required to serve TLS"},
		{"no key", tlsconf.Files{Cert: good.Cert}, tlsconf.FileKey, "key file: required to serve TLS"},
		{"missing cert", tlsconf.Files{Cert: missing, Key: good.Key}, tlsconf.FileCert, "certificate file " + missing + ": open: no such file or directory"},
		{"junk cert", tlsconf.Files{Cert: junk, Key: good.Key}, tlsconf.FileCert, "certificate file " + junk + ": no PEM certificate in it"},
		{"junk key", tlsconf.Files{Cert: good.Cert, Key: junk}, tlsconf.FileKey, "key file " + junk + ": no PEM private key in it"},
		{"key of another cert", tlsconf.Files{Cert: good.Cert, Key: wrongKey}, tlsconf.FileKey, "key file " + wrongKey + ": does not go with the certificate " + good.Cert},
		{"junk client CA", tlsconf.Files{Cert: good.Cert, Key: good.Key, ClientCA: junk}, tlsconf.FileClientCA, "client CA file " + junk + ": no PEM certificate in it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsconf.NewServer(tc.f, nil)
			var fe *tlsconf.FileError
			if !errors.As(err, &fe) || fe.File != tc.file || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err = %v, want a %s FileError starting %q", err, tc.file, tc.want)
			}
		})
	}
}

func TestClient(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "nexus test CA")
	f, _ := setup(t, ca, dir)
	f.ClientCA = ca.WriteCA(t, dir, "ca.pem")
	s, err := tlsconf.NewServer(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := listen(t, s.Config())
	client := ca.Client(t, "agent-1")
	cert, key := client.Write(t, dir, "client")

	cfg, err := tlsconf.Client(f.ClientCA, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(addr, cfg); err != nil {
		t.Errorf("client with CA and certificate: %v", err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	for _, tc := range []struct {
		name, ca, cert, key, want string
	}{
		{"missing CA", filepath.Join(dir, "nope.pem"), "", "", "CA file " + filepath.Join(dir, "nope.pem") + ": open: no such file or directory"},
		{"CA not PEM", key, "", "", "CA file " + key + ": no PEM certificate in it"},
		{"cert without key", f.ClientCA, cert, "", "key file: required with a client certificate"},
		{"key without cert", f.ClientCA, "", key, "certificate file: required with a client key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsconf.Client(tc.ca, tc.cert, tc.key)
			var fe *tlsconf.FileError
			if !errors.As(err, &fe) || err.Error() != tc.want {
				t.Errorf("err = %v, want FileError %q", err, tc.want)
			}
		})
	}
}
