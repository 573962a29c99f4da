package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// createToken adds a principal to the tokens file at path and returns
// its token.
func createToken(t *testing.T, path string, p nexus.Principal) string {
	t.Helper()
	f, err := auth.LoadFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := f.Create(p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	return tok
}

func revokeToken(t *testing.T, path, name string) {
	t.Helper()
	f, err := auth.LoadFile(path, false)
	if err == nil {
		err = f.Revoke(name)
	}
	if err == nil {
		err = f.Save(path)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// putAs stores a context as the holder of tok and returns the error code.
func putAs(n *nodetest.Node, tok string) nexus.Code {
	c := httpapi.NewClient(n.URL, httpapi.WithToken(tok), httpapi.WithHTTPClient(n.HTTP))
	_, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "x", Namespace: "team"})
	return nexus.ErrorCode(err)
}

// The data directory's tokens file is read at open and again by Reload:
// a revoked token stops working and a new one works, without a restart;
// a broken file keeps the principals in force.
func TestNode_Reload(t *testing.T) {
	cfg := nodetest.Config(t)
	path := node.TokensFile(cfg.Dir)
	reader := createToken(t, path, nexus.Principal{Name: "reader", Role: nexus.RoleRead, Read: []string{"*"}})
	n := nodetest.Open(t, cfg)
	if code := putAs(n, reader); code != nexus.EForbidden {
		t.Fatalf("reader writing: %q, want forbidden", code)
	}
	if code := putAs(n, ""); code != nexus.EUnauthorized {
		t.Fatalf("no token: %q, want unauthorized", code)
	}
	revokeToken(t, path, "reader")
	writer := createToken(t, path, nexus.Principal{Name: "writer", Role: nexus.RoleWrite, Read: []string{"*"}, Write: []string{"*"}})
	if code := putAs(n, writer); code != nexus.EUnauthorized {
		t.Fatalf("a new token before the reload: %q, want unauthorized", code)
	}
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if code := putAs(n, writer); code != "" {
		t.Fatalf("writer after the reload: %q", code)
	}
	if code := putAs(n, reader); code != nexus.EUnauthorized {
		t.Fatalf("revoked reader after the reload: %q, want unauthorized", code)
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if err := n.Reload(); err == nil || !strings.Contains(err.Error(), "reload principals: tokens file") {
		t.Fatalf("reload of a broken file: %v", err)
	}
	if code := putAs(n, writer); code != "" {
		t.Fatalf("writer after a failed reload: %q", code)
	}
}

// Principals listed in the configuration file count, and a reload reads
// the file again.
func TestNode_ReloadConfigFile(t *testing.T) {
	cfg := nodetest.Config(t)
	tok, _ := auth.NewToken()
	cfgPath := filepath.Join(t.TempDir(), "nexus.yaml")
	write := func(role string) {
		os.WriteFile(cfgPath, []byte("auth:\n  principals:\n    - name: ci\n      role: "+role+"\n      read: [\"*\"]\n      write: [\"team\"]\n      token_sha256: "+auth.HashToken(tok)+"\n"), 0o600)
	}
	write("write")
	f, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = f
	n := nodetest.Open(t, cfg)
	if code := putAs(n, tok); code != "" {
		t.Fatalf("ci writing: %q", code)
	}
	os.WriteFile(cfgPath, []byte("auth:\n  principals:\n    - name: ci\n      role: read\n      read: [\"*\"]\n      token_sha256: "+auth.HashToken(tok)+"\n"), 0o600)
	if err := n.Reload(); err != nil {
		t.Fatal(err)
	}
	if code := putAs(n, tok); code != nexus.EForbidden {
		t.Fatalf("ci writing after it became a reader: %q, want forbidden", code)
	}
}

// Beyond loopback a node needs a principal; NEXUS_TOKEN must be strong.
func TestOpen_principals(t *testing.T) {
	exposed := nodetest.Config(t)
	exposed.Addr = "0.0.0.0:0"
	_, err := node.Open(context.Background(), exposed)
	var ce *node.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `listening on "0.0.0.0:0" exposes the memory beyond this machine`) {
		t.Fatalf("open on 0.0.0.0 without principals: %v", err)
	}
	createToken(t, node.TokensFile(exposed.Dir), nexus.Principal{Name: "ops", Role: nexus.RoleAdmin, Read: []string{"*"}, Write: []string{"*"}})
	n, err := node.Open(context.Background(), exposed)
	if err != nil {
		t.Fatalf("open on 0.0.0.0 with a tokens file: %v", err)
	}
	n.Close(context.Background())

	weak := nodetest.Config(t)
	weak.Token = "s3cret-token"
	if err := weak.Validate(); err == nil || !strings.Contains(err.Error(), "Token: NEXUS_TOKEN: the token is too weak: it has 12 characters, at least 32 are needed") {
		t.Fatalf("weak NEXUS_TOKEN: %v", err)
	}
	named := nodetest.Config(t)
	named.TokensFile = filepath.Join(t.TempDir(), "missing.json")
	if _, err := node.Open(context.Background(), named); !errors.As(err, &ce) || !strings.Contains(err.Error(), "principals: read tokens file") {
		t.Fatalf("a named tokens file that is missing: %v", err)
	}
}

// JWTs verified with the key the configuration file names authenticate
// their principal; an expired one is refused.
func TestNode_JWT(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "jwt.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	cfgPath := filepath.Join(dir, "nexus.yaml")
	os.WriteFile(cfgPath, []byte("auth:\n  jwt:\n    public_key_file: jwt.pub\n    audience: nexus\n"), 0o600)
	f, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := nodetest.Config(t)
	cfg.File = f
	n := nodetest.Open(t, cfg)
	sign := func(exp time.Time) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "ci", "role": "write", "read": "*", "write": "*", "aud": "nexus", "exp": exp.Unix()}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if code := putAs(n, sign(time.Now().Add(time.Hour))); code != "" {
		t.Fatalf("a valid JWT: %q", code)
	}
	if code := putAs(n, sign(time.Now().Add(-time.Minute))); code != nexus.EUnauthorized {
		t.Fatalf("an expired JWT: %q, want unauthorized", code)
	}
}
