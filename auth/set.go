package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nexus-mem/nexus"
)

// Sources are where a node's principals come from.
type Sources struct {
	// Token is NEXUS_TOKEN: one admin principal named TokenName, with
	// every namespace; "" for none. Its strength is checked.
	Token string
	// TokensFile is the path of a tokens file; "" for none.
	TokensFile string
	// TokensFileOptional makes a missing TokensFile an empty one.
	TokensFileOptional bool
	// Principals are listed in the configuration file.
	Principals []Entry
	// JWT, if set, verifies JWTs.
	JWT *JWTConfig
}

// Set is the table of a node's principals. It is safe for concurrent use;
// Reload swaps the whole table at once.
type Set struct {
	load  func() (Sources, error)
	now   func() time.Time
	table atomic.Pointer[table]
}

type table struct {
	tokens []tokenEntry
	jwt    *jwtVerifier
}

type tokenEntry struct {
	hash [sha256.Size]byte
	p    *nexus.Principal
}

// New loads the principals load returns; Reload calls it again. now is
// the clock JWT expiry is checked against (nil: time.Now).
func New(load func() (Sources, error), now func() time.Time) (*Set, error) {
	if now == nil {
		now = time.Now
	}
	s := &Set{load: load, now: now}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the sources again and swaps the table. On error the old
// table stays in force.
func (s *Set) Reload() error {
	src, err := s.load()
	if err != nil {
		return err
	}
	t, err := build(src, s.now)
	if err != nil {
		return err
	}
	s.table.Store(t)
	return nil
}

// build makes the table of src.
func build(src Sources, now func() time.Time) (*table, error) {
	var es []Entry
	if src.Token != "" {
		if err := CheckStrength(src.Token); err != nil {
			return nil, fmt.Errorf("NEXUS_TOKEN: %w", err)
		}
		es = append(es, Entry{Name: TokenName, Role: nexus.RoleAdmin, Read: []string{"*"}, Write: []string{"*"}, TokenSHA256: HashToken(src.Token)})
	}
	es = append(es, src.Principals...)
	if src.TokensFile != "" {
		f, err := LoadFile(src.TokensFile, src.TokensFileOptional)
		if err != nil {
			return nil, err
		}
		es = append(es, f.Principals...)
	}
	if err := checkEntries(es); err != nil {
		return nil, fmt.Errorf("principals: %w", err)
	}
	t := &table{}
	for i := range es {
		var te tokenEntry
		hex.Decode(te.hash[:], []byte(es[i].TokenSHA256)) // checked by checkEntries
		te.p = es[i].Principal()
		t.tokens = append(t.tokens, te)
	}
	if src.JWT != nil {
		v, err := newJWTVerifier(*src.JWT, now)
		if err != nil {
			return nil, fmt.Errorf("jwt: %w", err)
		}
		t.jwt = v
	}
	return t, nil
}

// Enabled reports whether any principal is configured: then every
// request must authenticate.
func (s *Set) Enabled() bool {
	t := s.table.Load()
	return len(t.tokens) > 0 || t.jwt != nil
}

// Principals lists the token principals, in the order of their sources.
func (s *Set) Principals() []*nexus.Principal {
	t := s.table.Load()
	out := make([]*nexus.Principal, len(t.tokens))
	for i, te := range t.tokens {
		out[i] = te.p
	}
	return out
}

// Authenticate returns the principal of a credential: a token, or a JWT
// when JWTs are configured. Failures are unauthorized errors whose
// message says why, without echoing the credential.
func (s *Set) Authenticate(cred string) (*nexus.Principal, error) {
	t := s.table.Load()
	if cred == "" {
		return nil, unauthorized("no credential")
	}
	if t.jwt != nil && strings.Count(cred, ".") == 2 && len(cred) <= maxJWTLen {
		return t.jwt.verify(cred)
	}
	if err := CheckStrength(cred); err != nil {
		return nil, unauthorized("unknown token")
	}
	return t.lookup(cred)
}

// lookup compares the token's hash with every principal's, in constant
// time and without stopping at a match, so the time taken says nothing
// about which principal (if any) holds it.
func (t *table) lookup(tok string) (*nexus.Principal, error) {
	sum := sha256.Sum256([]byte(tok))
	var found *nexus.Principal
	for i := range t.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.tokens[i].hash[:]) == 1 {
			found = t.tokens[i].p
		}
	}
	if found == nil {
		return nil, unauthorized("unknown token")
	}
	return found, nil
}

func unauthorized(reason string) error {
	return nexus.Errorf(nexus.EUnauthorized, "%s", reason)
}
