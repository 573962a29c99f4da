package nexus

import (
	"context"
	"path"
)

// Role is what a principal may do. Each role includes the ones before it:
// read < write < admin.
type Role string

// Roles.
const (
	RoleRead  Role = "read"  // read and search contexts, follow events
	RoleWrite Role = "write" // also write contexts, run agents, claim and finish tasks
	RoleAdmin Role = "admin" // also restore, recover, fsck, backup, configuration
)

// rank orders the roles; an unknown role ranks below read.
func (r Role) rank() int {
	switch r {
	case RoleRead:
		return 1
	case RoleWrite:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Includes reports whether a principal with role r may do what role
// other allows.
func (r Role) Includes(other Role) bool { return r.rank() >= other.rank() && other.Valid() }

// Principal is an authenticated caller of a node: a name (recorded on
// every commit it writes), a role, and the namespaces it may read and
// write, as path.Match globs ("*" for all). A principal may write only
// where it may also read.
type Principal struct {
	Name  string   `json:"name"`
	Role  Role     `json:"role"`
	Read  []string `json:"read,omitempty"`
	Write []string `json:"write,omitempty"`
}

// Anonymous is the principal of a node without authentication (no token
// configured, loopback only): it may do everything.
var Anonymous = &Principal{Name: "anonymous", Role: RoleAdmin, Read: []string{"*"}, Write: []string{"*"}}

// Can reports whether p may act with role r at all.
func (p *Principal) Can(r Role) bool { return p != nil && p.Role.Includes(r) }

// CanRead reports whether p may read namespace ns.
func (p *Principal) CanRead(ns string) bool {
	return p.Can(RoleRead) && (matchAny(p.Read, ns) || matchAny(p.Write, ns))
}

// CanWrite reports whether p may write namespace ns.
func (p *Principal) CanWrite(ns string) bool {
	return p.Can(RoleWrite) && matchAny(p.Write, ns)
}

func matchAny(globs []string, ns string) bool {
	for _, g := range globs {
		if ok, err := path.Match(g, ns); err == nil && ok {
			return true
		}
	}
	return false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, the caller the node authenticated.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, if any.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
