package main_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/tlsconf/tlstest"
)

// tlsFiles are the files of a server with mutual TLS and of its client.
type tlsFiles struct {
	ca                    *tlstest.CA
	dir                   string
	caFile                string
	serverCert, serverKey string
	clientCert, clientKey string
}

func newTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	f := &tlsFiles{ca: tlstest.NewCA(t, "nexus test CA"), dir: t.TempDir()}
	f.caFile = f.ca.WriteCA(t, f.dir, "ca.pem")
	f.serverCert, f.serverKey = f.ca.Server(t).Write(t, f.dir, "server")
	f.clientCert, f.clientKey = f.ca.Client(t, "cli").Write(t, f.dir, "client")
	return f
}

// nexusCmd runs the binary with env added to an environment without the
// client variables of the caller.
func nexusCmd(env []string, args ...string) (string, int) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "NEXUS_SERVER=", "NEXUS_TOKEN=", "NEXUS_CA=", "NEXUS_CLIENT_CERT=", "NEXUS_CLIENT_KEY=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return err.Error(), -1
	}
	return string(out), code
}

// The real binary serves HTTPS with mutual TLS; `nexus put` and `nexus
// get` reach it with --ca, --cert and --key (or their variables), and
// are refused at the handshake without them, with what to pass.
func TestServe_TLS(t *testing.T) {
	f := newTLSFiles(t)
	p := startServe(t, t.TempDir(), "--tls-cert="+f.serverCert, "--tls-key="+f.serverKey, "--tls-client-ca="+f.caFile)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	if !strings.HasPrefix(p.url, "https://127.0.0.1:") {
		t.Fatalf("the server says it listens on %s, want https://127.0.0.1:port", p.url)
	}
	creds := []string{"--server", p.url, "--ca", f.caFile, "--cert", f.clientCert, "--key", f.clientKey}

	out, code := nexusCmd(nil, append([]string{"put", "--ns", "tls", "over", "TLS"}, creds...)...)
	if code != 0 {
		t.Fatalf("put over TLS: exit %d\n%s", code, out)
	}
	id := strings.TrimSpace(out)
	env := []string{"NEXUS_SERVER=" + p.url, "NEXUS_CA=" + f.caFile, "NEXUS_CLIENT_CERT=" + f.clientCert, "NEXUS_CLIENT_KEY=" + f.clientKey}
	if out, code := nexusCmd(env, "get", id); code != 0 || !strings.Contains(out, "over TLS") {
		t.Fatalf("get over TLS with NEXUS_CA and NEXUS_CLIENT_*: exit %d\n%s", code, out)
	}

	if out, code := nexusCmd(nil, append([]string{"fsck"}, creds...)...); code != 0 || !strings.Contains(out, "clean") {
		t.Errorf("fsck through the admin API over TLS: exit %d\n%s", code, out)
	}

	if out, code := nexusCmd(nil, append([]string{"bench", "--writers", "2", "--duration", "200ms"}, creds...)...); code != 0 || !strings.Contains(out, " 0 errors") {
		t.Errorf("bench over TLS: exit %d\n%s", code, out)
	}

	out, code = nexusCmd(nil, "get", id, "--server", p.url, "--ca", f.caFile)
	if code != 1 || !strings.Contains(out, "refused the TLS handshake (tls: certificate required)") || !strings.Contains(out, "--cert and --key") {
		t.Errorf("get without a client certificate: exit %d, want 1 and the handshake refused naming --cert\n%s", code, out)
	}
	out, code = nexusCmd(nil, "get", id, "--server", p.url, "--cert", f.clientCert, "--key", f.clientKey)
	if code != 1 || !strings.Contains(out, "presents a certificate this client does not trust") || !strings.Contains(out, "--ca (env NEXUS_CA)") {
		t.Errorf("get without the CA: exit %d, want 1 and the server's certificate refused naming --ca\n%s", code, out)
	}
	missing := filepath.Join(f.dir, "missing.pem")
	out, code = nexusCmd(nil, "get", id, "--server", p.url, "--ca", missing)
	if code != 1 || !strings.Contains(out, "CA file "+missing+": open: no such file or directory") {
		t.Errorf("get with a missing CA file: exit %d\n%s", code, out)
	}
}

// SIGHUP makes the server take up replaced certificate files: the next
// handshake presents the new certificate, with no restart.
func TestServe_TLSReloadOnSIGHUP(t *testing.T) {
	f := newTLSFiles(t)
	p := startServe(t, t.TempDir(), "--tls-cert="+f.serverCert, "--tls-key="+f.serverKey)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	addr := strings.TrimPrefix(p.url, "https://")
	presented := func() *x509.Certificate {
		t.Helper()
		pool := x509.NewCertPool()
		pool.AddCert(f.ca.Cert)
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	first := presented()

	renewed := f.ca.Server(t)
	renewed.Write(t, f.dir, "server")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const reloaded = `msg="tls: certificate taken up" on=reload`
	waitFor(t, time.Minute, "the server logs "+reloaded, func() bool { return strings.Contains(p.stderr.String(), reloaded) })
	if got := presented(); !got.Equal(renewed.Cert) || got.Equal(first) {
		t.Fatalf("after SIGHUP the server presents serial %s, want the renewed %s", got.SerialNumber, renewed.Cert.SerialNumber)
	}
	if p.cmd.ProcessState != nil {
		t.Fatal("the server exited on SIGHUP")
	}
}

// nexus mcp reaches an https:// server with --ca, --cert and --key.
func TestMCP_TLS(t *testing.T) {
	f := newTLSFiles(t)
	p := startServe(t, t.TempDir(), "--tls-cert="+f.serverCert, "--tls-key="+f.serverKey, "--tls-client-ca="+f.caFile)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	cs, _ := mcpProcess(t, "--server", p.url, "--no-start", "--ca", f.caFile, "--cert", f.clientCert, "--key", f.clientKey)
	var stored, got nexus.Context
	mustCall(t, cs, "store_context", map[string]any{"content": "through mcp over TLS", "namespace": "tls"}, &stored)
	mustCall(t, cs, "get_context", map[string]any{"id": stored.ID.String()}, &got)
	if got.Content != "through mcp over TLS" {
		t.Fatalf("get_context = %q", got.Content)
	}

	plain := strings.Replace(p.url, "https://", "http://", 1)
	if out, code := nexusCmd(nil, "mcp", "--server", plain, "--no-start"); code != 1 || !strings.Contains(out, "speaks HTTPS: use an https:// --server URL") {
		t.Errorf("nexus mcp to the TLS server over http://: exit %d\n%s", code, out)
	}
	if out, code := nexusCmd(nil, "get", "--server", plain, stored.ID.String()); code != 1 || !strings.Contains(out, "the server speaks HTTPS: use an https:// server URL") {
		t.Errorf("get from the TLS server over http://: exit %d\n%s", code, out)
	}
	out, code := nexusCmd(nil, "mcp", "--server", p.url, "--no-start", "--ca", f.caFile)
	if code != 1 || !strings.Contains(out, "refused the TLS handshake") {
		t.Errorf("nexus mcp without a client certificate: exit %d\n%s", code, out)
	}
}

// The configuration file's server.tls serves HTTPS, its paths relative
// to the file.
func TestServe_TLSFromConfigFile(t *testing.T) {
	f := newTLSFiles(t)
	conf := filepath.Join(f.dir, "nexus.yaml")
	if err := os.WriteFile(conf, []byte("server:\n  tls: {cert_file: server.crt, key_file: server.key, client_ca_file: ca.pem}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Mutual TLS from the file alone lets the node listen beyond loopback.
	p := startServe(t, t.TempDir(), "--config="+conf, "--addr=0.0.0.0:0")
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	hostPort, ok := strings.CutPrefix(p.url, "https://")
	host, port, err := net.SplitHostPort(hostPort)
	if !ok || err != nil || !net.ParseIP(host).IsUnspecified() {
		t.Fatalf("the server listens on %s, want https on every address (0.0.0.0 or [::])", p.url)
	}
	p.url = "https://127.0.0.1:" + port
	if out, code := nexusCmd(nil, "ls", "--server", p.url, "--ca", f.caFile, "--cert", f.clientCert, "--key", f.clientKey); code != 0 {
		t.Fatalf("ls over mutual TLS: exit %d\n%s", code, out)
	}
	if out, code := nexusCmd(nil, "ls", "--server", p.url, "--ca", f.caFile); code != 1 || !strings.Contains(out, "certificate required") {
		t.Fatalf("ls without a client certificate: exit %d, want 1 and the handshake refused\n%s", code, out)
	}
}
