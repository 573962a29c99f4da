package config

import (
	"encoding/hex"
	"fmt"

	"github.com/nexus-mem/nexus"
)

// Auth lists who may use the node: principals written here (their
// tokens only as SHA-256 hashes), a tokens file, and JWTs signed by a
// key on disk. With none, and no NEXUS_TOKEN, the node serves loopback
// without authentication.
type Auth struct {
	// TokensFile is a tokens file of principals (the file
	// `nexus token create` writes); default DATA/tokens.json if it exists.
	TokensFile string `yaml:"tokens_file"`
	// Principals are listed here besides the tokens file's.
	Principals []Principal `yaml:"principals"`
	// JWT verifies JWTs issued elsewhere; off unless a key file is named.
	JWT JWT `yaml:"jwt"`
}

// Principal is a principal of the configuration file.
type Principal struct {
	// Name is recorded on every commit the principal writes.
	Name string `yaml:"name"`
	// Role is read, write or admin.
	Role string `yaml:"role"`
	// Read and Write are the namespace globs it may read and write ("*"
	// for all).
	Read  []string `yaml:"read"`
	Write []string `yaml:"write"`
	// TokenSHA256 is the SHA-256 of its token in hex (`nexus token hash`
	// prints it); the token itself is never written here.
	TokenSHA256 string `yaml:"token_sha256"`
}

// JWT says how JWTs are verified and mapped to principals.
type JWT struct {
	// PublicKeyFile is a PEM public key; JWKSFile a JSON Web Key Set.
	// Name one of them to accept JWTs.
	PublicKeyFile string `yaml:"public_key_file"`
	JWKSFile      string `yaml:"jwks_file"`
	// Issuer and Audience, if set, must match the iss and aud claims.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// The claims holding the principal's name (default sub), role
	// (default role) and namespace globs (default read and write).
	NameClaim  string `yaml:"name_claim"`
	RoleClaim  string `yaml:"role_claim"`
	ReadClaim  string `yaml:"read_claim"`
	WriteClaim string `yaml:"write_claim"`
}

// Enabled reports whether JWTs are accepted.
func (j JWT) Enabled() bool { return j.PublicKeyFile != "" || j.JWKSFile != "" }

// fillAuth makes the auth section's paths absolute.
func (d *decoder) fillAuth(a *Auth) {
	a.TokensFile = d.abs(a.TokensFile)
	a.JWT.PublicKeyFile, a.JWT.JWKSFile = d.abs(a.JWT.PublicKeyFile), d.abs(a.JWT.JWKSFile)
}

// validateAuth checks what can be checked line by line; the node checks
// the principals as a whole (names, globs, duplicates) when it loads
// them.
func (d *decoder) validateAuth(a *Auth) {
	if a.JWT.PublicKeyFile != "" && a.JWT.JWKSFile != "" {
		d.errorf("auth.jwt.jwks_file", "name public_key_file or jwks_file, not both")
	}
	for i, p := range a.Principals {
		path := fmt.Sprintf("auth.principals[%d]", i)
		if p.Name == "" {
			d.errorf(path+".name", "required")
		}
		if !nexus.Role(p.Role).Valid() {
			d.errorf(path+".role", "%q: must be read, write or admin", p.Role)
		}
		if b, err := hex.DecodeString(p.TokenSHA256); err != nil || len(b) != 32 {
			d.errorf(path+".token_sha256", "must be the 64 hex digits of the SHA-256 of a token (never the token itself)")
		}
	}
}
