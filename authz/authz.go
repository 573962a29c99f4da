// Package authz enforces what the principal of a request may read and
// write. It wraps the node's store, searcher and event stream in
// decorators that take the principal from the request's context
// (nexus.PrincipalFrom): the HTTP API and the MCP tools reach the memory
// only through them, so every route and tool applies the same checks.
//
// The rules:
//   - no principal in the context is the node itself (its agents, its
//     task queue, in-process use): everything is allowed;
//   - writing needs role write and a namespace the principal may write;
//     the system types and namespaces ([SystemTypes],
//     [SystemNamespaces]) are written by the node only, whatever the
//     principal: forbidden;
//   - a context in a namespace the principal may not read does not exist
//     for it (not_found), in chains, children, listings, the journal,
//     search results and the event stream alike; naming such a namespace
//     in a filter is forbidden;
//   - every context a principal writes records its name
//     (nexus.Context.Principal and a Principal trailer on the commit).
package authz

import (
	"context"
	"slices"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/orchestrator"
)

// Reserved namespaces of the node's own records.
const (
	// IncidentsNamespace holds the node's records of incidents.
	IncidentsNamespace = "incidents"
	// AuditNamespace holds the node's audit records.
	AuditNamespace = "audit"
)

// SystemNamespaces are written by the node only.
var SystemNamespaces = []string{orchestrator.StateNamespace, IncidentsNamespace, AuditNamespace}

// SystemTypes are written by the node only, in any namespace.
var SystemTypes = []nexus.Type{nexus.TypeAgentState, nexus.TypeIncident}

// IsSystem reports whether a context of type t in namespace ns is the
// node's to write.
func IsSystem(ns string, t nexus.Type) bool {
	return slices.Contains(SystemNamespaces, ns) || slices.Contains(SystemTypes, t)
}

// principal returns the caller of ctx, or nil for the node itself.
func principal(ctx context.Context) *nexus.Principal {
	p, ok := nexus.PrincipalFrom(ctx)
	if !ok {
		return nil
	}
	return p
}

// readsAll reports whether p may read every namespace: its read or write
// globs include "*".
func readsAll(p *nexus.Principal) bool {
	return p.Can(nexus.RoleRead) && (slices.Contains(p.Read, "*") || slices.Contains(p.Write, "*"))
}

// only returns the one namespace p may read when its globs name exactly
// one namespace and no pattern, else "".
func only(p *nexus.Principal) string {
	var ns string
	for _, g := range slices.Concat(p.Read, p.Write) {
		if nexus.ValidateNamespace(g) != nil { // a pattern, or nothing valid
			return ""
		}
		if ns != "" && ns != g {
			return ""
		}
		ns = g
	}
	return ns
}

// CheckWrite reports whether the caller of ctx may write a context of
// type t in namespace ns: nil, or an EForbidden error saying why. The
// node itself (no principal) may write anything.
func CheckWrite(ctx context.Context, ns string, t nexus.Type) error {
	p := principal(ctx)
	if p == nil {
		return nil
	}
	if !p.Can(nexus.RoleWrite) {
		return nexus.Errorf(nexus.EForbidden, "principal %q has role %q: writing needs role write", p.Name, p.Role)
	}
	if slices.Contains(SystemTypes, t) {
		return nexus.Errorf(nexus.EForbidden, "type %s is written by the node only", t)
	}
	if slices.Contains(SystemNamespaces, ns) {
		return nexus.Errorf(nexus.EForbidden, "namespace %q is written by the node only", ns)
	}
	if !p.CanWrite(ns) {
		return nexus.Errorf(nexus.EForbidden, "principal %q may not write namespace %q", p.Name, ns)
	}
	return nil
}

// CanRead reports whether the caller of ctx may read namespace ns.
func CanRead(ctx context.Context, ns string) bool {
	p := principal(ctx)
	return p == nil || p.CanRead(ns)
}

// checkReadFilter refuses a filter naming a namespace the caller may not
// read.
func checkReadFilter(ctx context.Context, ns string) error {
	if ns == "" || CanRead(ctx, ns) {
		return nil
	}
	p := principal(ctx)
	return nexus.Errorf(nexus.EForbidden, "principal %q may not read namespace %q", p.Name, ns)
}

// notFound is the error of a context the caller may not read: the same
// the store gives for one that does not exist.
func notFound(id nexus.ID) error {
	return nexus.Errorf(nexus.ENotFound, "context %s not found", id)
}
