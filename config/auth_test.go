package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/config"
)

func TestParse_auth(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	c, err := config.Parse("/etc/nexus/nexus.yaml", []byte(`
auth:
  tokens_file: tokens.json
  principals:
    - name: ci
      role: read
      read: ["team-*"]
      token_sha256: `+hash+`
  jwt:
    jwks_file: /keys/jwks.json
    issuer: idp
    name_claim: email
`))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Auth
	if a.TokensFile != filepath.Join("/etc/nexus", "tokens.json") || len(a.Principals) != 1 || !a.JWT.Enabled() {
		t.Fatalf("auth %+v", a)
	}
	p := a.Principals[0]
	if p.Name != "ci" || p.Role != "read" || p.Read[0] != "team-*" || p.TokenSHA256 != hash || a.JWT.Issuer != "idp" || a.JWT.NameClaim != "email" {
		t.Fatalf("auth %+v", a)
	}
}

func TestParse_authErrors(t *testing.T) {
	_, err := config.Parse("nexus.yaml", []byte(`auth:
  principals:
    - role: root
      token: nxs_abc
    - name: x
      role: read
      token_sha256: nxs_0123456789abcdef0123456789abcdef
  jwt:
    public_key_file: a.pem
    jwks_file: b.json
`))
	want := []string{
		`nexus.yaml:4: auth.principals[0].token: an API key is never written in the configuration file`,
	}
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("errors:\n%v\nwant one starting %q", err, w)
		}
	}
	_, err = config.Parse("nexus.yaml", []byte(`auth:
  principals:
    - role: root
    - name: x
      role: read
      token_sha256: nxs_0123456789abcdef0123456789abcdef
  jwt:
    public_key_file: a.pem
    jwks_file: b.json
`))
	for _, w := range []string{
		`nexus.yaml:3: auth.principals[0].name: required`,
		`nexus.yaml:3: auth.principals[0].role: "root": must be read, write or admin`,
		`nexus.yaml:3: auth.principals[0].token_sha256: must be the 64 hex digits`,
		`nexus.yaml:6: auth.principals[1].token_sha256: must be the 64 hex digits`,
		`nexus.yaml:9: auth.jwt.jwks_file: name public_key_file or jwks_file, not both`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("errors:\n%v\nwant %q", err, w)
		}
	}
}
