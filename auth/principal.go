package auth

import (
	"fmt"
	"path"
	"regexp"

	"github.com/nexus-mem/nexus"
)

// TokenName is the name of the principal NEXUS_TOKEN authenticates.
const TokenName = "token"

// namePattern is what a principal's name may look like: it is recorded
// on every commit the principal writes.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}$`)

// ValidatePrincipal checks a principal's name, role and globs.
func ValidatePrincipal(p *nexus.Principal) error {
	if !namePattern.MatchString(p.Name) {
		return fmt.Errorf("name %q: 1-64 of A-Z a-z 0-9 . _ : @ + -, starting with a letter or digit", clip(p.Name))
	}
	if p.Name == nexus.Anonymous.Name {
		return fmt.Errorf("name %q is reserved for the node without authentication", p.Name)
	}
	if !p.Role.Valid() {
		return fmt.Errorf("principal %s: role %q: must be read, write or admin", p.Name, clip(string(p.Role)))
	}
	if len(p.Read) == 0 && len(p.Write) == 0 {
		return fmt.Errorf("principal %s: no namespaces: name those it may read (read) or write (write); \"*\" is all", p.Name)
	}
	if len(p.Write) > 0 && !p.Role.Includes(nexus.RoleWrite) {
		return fmt.Errorf("principal %s: role read cannot write: give it role write or drop its write namespaces", p.Name)
	}
	for _, g := range append(append([]string{}, p.Read...), p.Write...) {
		if err := checkGlob(g); err != nil {
			return fmt.Errorf("principal %s: %w", p.Name, err)
		}
	}
	return nil
}

// checkGlob refuses an empty or malformed namespace glob.
func checkGlob(g string) error {
	if g == "" || len(g) > 128 {
		return fmt.Errorf("namespace glob %q: 1-128 characters", clip(g))
	}
	if _, err := path.Match(g, ""); err != nil {
		return fmt.Errorf("namespace glob %q: %v", clip(g), err)
	}
	return nil
}

// clip shortens s for a message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
