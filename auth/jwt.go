package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nexus-mem/nexus"
)

// maxJWTLen bounds the JWTs looked at.
const maxJWTLen = 16 << 10

// JWTConfig says how JWTs are verified and what their claims mean. The
// key is read from disk (PublicKeyFile or JWKSFile, not both); nothing
// is fetched over the network. Every JWT must carry exp.
type JWTConfig struct {
	// PublicKeyFile is a PEM public key (RSA of 2048 bits or more, ECDSA
	// P-256/384/521 or Ed25519).
	PublicKeyFile string
	// JWKSFile is a JSON Web Key Set; a JWT names its key with kid (it may
	// leave kid out when the set holds one key).
	JWKSFile string
	// Issuer and Audience, if set, must match iss and aud.
	Issuer, Audience string
	// Claims naming the principal: NameClaim (default "sub"), RoleClaim
	// (default "role"), ReadClaim and WriteClaim (default "read" and
	// "write": arrays of namespace globs, or one glob as a string).
	NameClaim, RoleClaim, ReadClaim, WriteClaim string
}

// withDefaults fills in the default claim names.
func (c JWTConfig) withDefaults() JWTConfig {
	for _, f := range []struct {
		v   *string
		def string
	}{{&c.NameClaim, "sub"}, {&c.RoleClaim, "role"}, {&c.ReadClaim, "read"}, {&c.WriteClaim, "write"}} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
	return c
}

// jwtVerifier checks JWTs against keys read once per load.
type jwtVerifier struct {
	cfg    JWTConfig
	keys   map[string]crypto.PublicKey // by kid; "" for the only key
	parser *jwt.Parser
	now    func() time.Time

	// verified remembers the JWTs whose signature and claims checked out,
	// by the SHA-256 of the token: a client sends the same JWT with every
	// request, and verifying its signature costs ≈ 120 µs (Ed25519) each
	// time. A remembered JWT is still checked against the clock (exp,
	// nbf) at every use. The verifier, and so the memory, is replaced by
	// every reload of the principals (a key rotated or removed).
	mu       sync.Mutex
	verified map[[sha256.Size]byte]verifiedJWT
}

// verifiedJWT is what a JWT checked out as: its principal and the window
// of time it is valid in.
type verifiedJWT struct {
	p        *nexus.Principal
	exp, nbf time.Time // nbf zero: none
}

// maxVerifiedJWTs bounds the verified JWTs remembered (≈ 200 bytes each
// with their principal).
const maxVerifiedJWTs = 10_000

func newJWTVerifier(c JWTConfig, now func() time.Time) (*jwtVerifier, error) {
	c = c.withDefaults()
	var keys map[string]crypto.PublicKey
	var err error
	switch {
	case c.PublicKeyFile != "" && c.JWKSFile != "":
		return nil, errors.New("name a public key file or a JWKS file, not both")
	case c.PublicKeyFile != "":
		var k crypto.PublicKey
		k, err = readPublicKey(c.PublicKeyFile)
		keys = map[string]crypto.PublicKey{"": k}
	case c.JWKSFile != "":
		keys, err = readJWKS(c.JWKSFile)
	default:
		return nil, errors.New("no key: name a public key file or a JWKS file")
	}
	if err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methodsFor(keys)), jwt.WithExpirationRequired(), jwt.WithTimeFunc(now)}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	return &jwtVerifier{cfg: c, keys: keys, parser: jwt.NewParser(opts...), now: now,
		verified: map[[sha256.Size]byte]verifiedJWT{}}, nil
}

// verify checks tok's signature, exp (required), nbf, iss and aud, then
// maps its claims to a principal. A JWT verified before is only checked
// against the clock again, exactly as the parser checks it (no leeway:
// valid from nbf inclusive to exp exclusive); outside that window it is
// parsed again, for the error that says why.
func (v *jwtVerifier) verify(tok string) (*nexus.Principal, error) {
	sum := sha256.Sum256([]byte(tok))
	v.mu.Lock()
	hit, ok := v.verified[sum]
	v.mu.Unlock()
	if ok {
		if now := v.now(); now.Before(hit.exp) && (hit.nbf.IsZero() || !now.Before(hit.nbf)) {
			return hit.p, nil
		}
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(tok, claims, v.key); err != nil {
		return nil, unauthorized(jwtReason(err))
	}
	pr, err := PrincipalFromClaims(v.cfg, claims)
	if err != nil {
		return nil, unauthorized("jwt: " + err.Error())
	}
	exp, _ := claims.GetExpirationTime() // required and checked by the parser
	nbf, _ := claims.GetNotBefore()
	if exp != nil {
		entry := verifiedJWT{p: pr, exp: exp.Time}
		if nbf != nil {
			entry.nbf = nbf.Time
		}
		v.remember(sum, entry)
	}
	return pr, nil
}

// remember keeps a verified JWT, making room first when the memory is
// full: the expired ones go, and if that left it more than three
// quarters full, arbitrary ones until it is not (so that the scan is paid
// once per quarter of the memory, not at every JWT).
func (v *jwtVerifier) remember(sum [sha256.Size]byte, e verifiedJWT) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.verified) >= maxVerifiedJWTs {
		now := v.now()
		for k, old := range v.verified {
			if !now.Before(old.exp) {
				delete(v.verified, k)
			}
		}
		for k := range v.verified {
			if len(v.verified) <= maxVerifiedJWTs*3/4 {
				break
			}
			delete(v.verified, k)
		}
	}
	v.verified[sum] = e
}

// jwtReason says briefly why a JWT was refused.
func jwtReason(err error) string {
	for _, r := range []struct {
		err error
		msg string
	}{
		{jwt.ErrTokenExpired, "jwt: expired"}, {jwt.ErrTokenRequiredClaimMissing, "jwt: no exp claim"},
		{jwt.ErrTokenNotValidYet, "jwt: not valid yet"}, {jwt.ErrTokenInvalidIssuer, "jwt: wrong issuer"},
		{jwt.ErrTokenInvalidAudience, "jwt: wrong audience"}, {jwt.ErrTokenSignatureInvalid, "jwt: bad signature"},
		{jwt.ErrTokenUnverifiable, "jwt: no key to verify it"}, {jwt.ErrTokenMalformed, "jwt: malformed"},
	} {
		if errors.Is(err, r.err) {
			return r.msg
		}
	}
	return "jwt: invalid"
}

// key is the key of a JWT: by kid, or the only one.
func (v *jwtVerifier) key(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k, ok := v.keys[kid]
	if !ok && kid == "" && len(v.keys) == 1 {
		for _, only := range v.keys {
			k, ok = only, true
		}
	}
	if !ok {
		return nil, fmt.Errorf("no key with kid %q", clip(kid))
	}
	if !slices.Contains(methodsFor(map[string]crypto.PublicKey{"": k}), t.Method.Alg()) {
		return nil, fmt.Errorf("algorithm %s does not fit the key", t.Method.Alg())
	}
	return k, nil
}

// methodsFor lists the signing algorithms the keys can verify.
func methodsFor(keys map[string]crypto.PublicKey) []string {
	var out []string
	for _, k := range keys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			out = append(out, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
		case *ecdsa.PublicKey:
			out = append(out, map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[k.Curve.Params().Name])
		case ed25519.PublicKey:
			out = append(out, "EdDSA")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkKey refuses keys too weak or of other kinds.
func checkKey(k any) (crypto.PublicKey, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: at least 2048 are needed", k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported key type %T (RSA, ECDSA or Ed25519)", k)
}

// readPublicKey reads a PEM "PUBLIC KEY" (PKIX) file.
func readPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key %s: no PEM PUBLIC KEY block", path)
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", path, err)
	}
	return checkKey(k)
}

// readJWKS reads a JSON Web Key Set file.
func readJWKS(path string) (map[string]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	keys, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", path, err)
	}
	return keys, nil
}

// jwk is one key of a set: RSA (n, e), EC (crv, x, y) or OKP Ed25519 (x).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWKS decodes a JSON Web Key Set into its verification keys by kid
// (keys for encryption, use "enc", are left out).
func ParseJWKS(data []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a key set: %w", err)
	}
	keys := map[string]crypto.PublicKey{}
	for i, j := range set.Keys {
		if j.Use == "enc" {
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, clip(j.Kid), err)
		}
		if _, dup := keys[j.Kid]; dup {
			return nil, fmt.Errorf("kid %q is used twice", clip(j.Kid))
		}
		keys[j.Kid] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("no signature keys")
	}
	return keys, nil
}

func (j jwk) publicKey() (crypto.PublicKey, error) {
	b := func(s string) []byte {
		v, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return nil
		}
		return v
	}
	switch j.Kty {
	case "RSA":
		n, e := b(j.N), b(j.E)
		if len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad n or e")
		}
		ev := new(big.Int).SetBytes(e).Int64()
		if ev < 3 || ev%2 == 0 {
			return nil, errors.New("bad exponent")
		}
		return checkKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ev)})
	case "EC":
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		c, ok := curves[j.Crv]
		if !ok {
			return nil, fmt.Errorf("unsupported curve %q", clip(j.Crv))
		}
		k, err := ecdsa.ParseUncompressedPublicKey(c, append(append([]byte{4}, b(j.X)...), b(j.Y)...))
		if err != nil {
			return nil, fmt.Errorf("bad EC point: %w", err)
		}
		return k, nil
	case "OKP":
		x := b(j.X)
		if j.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("only Ed25519 OKP keys of 32 bytes")
		}
		return ed25519.PublicKey(x), nil
	}
	return nil, fmt.Errorf("unsupported key type %q", clip(j.Kty))
}

// PrincipalFromClaims maps a verified JWT's claims to a principal: its
// name, role and namespaces, named by c's claim names. The principal must
// be valid as a tokens file's would be.
func PrincipalFromClaims(c JWTConfig, claims map[string]any) (*nexus.Principal, error) {
	c = c.withDefaults()
	name, _ := claims[c.NameClaim].(string)
	role, _ := claims[c.RoleClaim].(string)
	p := &nexus.Principal{Name: name, Role: nexus.Role(role)}
	var err error
	if p.Read, err = globsClaim(claims, c.ReadClaim); err != nil {
		return nil, err
	}
	if p.Write, err = globsClaim(claims, c.WriteClaim); err != nil {
		return nil, err
	}
	if err := ValidatePrincipal(p); err != nil {
		return nil, err
	}
	return p, nil
}

// globsClaim reads a claim that is a glob or an array of globs.
func globsClaim(claims map[string]any, name string) ([]string, error) {
	switch v := claims[name].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		if len(v) > 256 {
			return nil, fmt.Errorf("claim %s: more than 256 globs", name)
		}
		out := make([]string, 0, len(v))
		for _, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, fmt.Errorf("claim %s: not an array of strings", name)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("claim %s: not a string or an array of strings", name)
}
