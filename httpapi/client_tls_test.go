package httpapi_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
	"github.com/nexus-mem/nexus/tlsconf"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

// tlsServer serves a memory store over TLS with a certificate of ca,
// demanding client certificates of ca; it returns the server's URL.
func tlsServer(t *testing.T, ca *tlstest.CA, dir string) string {
	t.Helper()
	var f tlsconf.Files
	f.Cert, f.Key = ca.Server(t).Write(t, dir, "server")
	f.ClientCA = ca.WriteCA(t, dir, "ca.pem")
	s, err := tlsconf.NewServer(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{}))
	srv.TLS = s.Config("http/1.1")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWithCAFile(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "nexus test CA")
	url := tlsServer(t, ca, dir)
	caFile := filepath.Join(dir, "ca.pem")
	cert, key := ca.Client(t, "agent-1").Write(t, dir, "client")
	ctx := context.Background()

	c := httpapi.NewClient(url, httpapi.WithCAFile(caFile), httpapi.WithClientCert(cert, key))
	put, err := c.Put(ctx, nexus.Draft{Namespace: "tls", Type: nexus.TypeMemory, Content: "hello", AgentID: "a"})
	if err != nil {
		t.Fatalf("Put with the CA and a client certificate: %v", err)
	}
	if got, err := c.Get(ctx, put.ID); err != nil || got.Content != "hello" {
		t.Fatalf("Get = %v, %v", got, err)
	}

	noCert := httpapi.NewClient(url, httpapi.WithCAFile(caFile))
	if err := noCert.Livez(ctx); nexus.ErrorCode(err) != nexus.EUnavailable || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("without a client certificate: %v, want unavailable: certificate required", err)
	}
	plain := httpapi.NewClient(strings.Replace(url, "https://", "http://", 1))
	if err := plain.Livez(ctx); nexus.ErrorCode(err) != nexus.EInvalid || nexus.ErrorMessage(err) != "the server speaks HTTPS: use an https:// server URL" {
		t.Errorf("http:// to the TLS server: %v, want invalid: use an https:// URL", err)
	}
	noCA := httpapi.NewClient(url, httpapi.WithClientCert(cert, key))
	if err := noCA.Livez(ctx); !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("without the CA: %v, want the server's certificate refused", err)
	}
}

func TestWithCAFile_badFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	c := httpapi.NewClient("https://127.0.0.1:1", httpapi.WithCAFile(missing))
	err := c.Livez(context.Background())
	if want := "TLS of the client: CA file " + missing + ": open: no such file or directory"; nexus.ErrorCode(err) != nexus.EInvalid || nexus.ErrorMessage(err) != want {
		t.Errorf("err = %v, want invalid naming the CA file %s", err, missing)
	}
	c = httpapi.NewClient("https://127.0.0.1:1", httpapi.WithClientCert(filepath.Join(dir, "c.crt"), ""))
	if err := c.Livez(context.Background()); nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), "key file: required with a client certificate") {
		t.Errorf("cert without key: err = %v, want invalid: key file required", err)
	}
}
