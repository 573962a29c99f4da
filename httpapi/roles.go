package httpapi

import (
	"strings"

	"github.com/nexus-mem/nexus"
)

// routeRoles is the least role each route needs: read to look, write to
// change the memory or the task queue, admin to repair, restore and back
// up. Routes under /v1/admin/ need admin without being listed. A route
// that is in neither is refused to every principal.
var routeRoles = map[string]nexus.Role{
	"POST /v1/contexts":                    nexus.RoleWrite,
	"GET /v1/contexts":                     nexus.RoleRead,
	"GET /v1/contexts/{id}":                nexus.RoleRead,
	"GET /v1/contexts/{id}/chain":          nexus.RoleRead,
	"GET /v1/contexts/{id}/children":       nexus.RoleRead,
	"GET /v1/contexts/{id}/related":        nexus.RoleRead,
	"POST /v1/search":                      nexus.RoleRead,
	"GET /v1/log":                          nexus.RoleRead,
	"GET /v1/incidents":                    nexus.RoleRead,
	"GET /v1/incidents/{id}":               nexus.RoleRead,
	"GET /livez":                           nexus.RoleRead, // and without a credential
	"GET /health":                          nexus.RoleRead,
	"GET /metrics":                         nexus.RoleRead,
	"GET /readyz":                          nexus.RoleRead,
	"GET /v1/events":                       nexus.RoleRead,
	"GET /v1/openapi.json":                 nexus.RoleRead,
	"POST /v1/agents":                      nexus.RoleWrite,
	"GET /v1/agents":                       nexus.RoleRead,
	"GET /v1/agents/{id}":                  nexus.RoleRead,
	"POST /v1/agents/{id}/heartbeat":       nexus.RoleWrite,
	"POST /v1/agents/{id}/process":         nexus.RoleWrite,
	"POST /v1/agents/process":              nexus.RoleWrite,
	"POST /v1/agents/{id}/generate":        nexus.RoleWrite,
	"POST /v1/agents/generate":             nexus.RoleWrite,
	"POST /v1/tasks":                       nexus.RoleWrite,
	"GET /v1/tasks":                        nexus.RoleRead,
	"GET /v1/tasks/{id}":                   nexus.RoleRead,
	"POST /v1/tasks/claim":                 nexus.RoleWrite,
	"POST /v1/tasks/{id}/complete":         nexus.RoleWrite,
	"POST /v1/tasks/{id}/fail":             nexus.RoleWrite,
	"GET /v1/cluster":                      nexus.RoleRead,
	"POST /v1/cluster/join":                nexus.RoleAdmin,
	"DELETE /v1/cluster/members/{id}":      nexus.RoleAdmin,
	"POST /v1/cluster/transfer-leadership": nexus.RoleAdmin,
	"/mcp":                                 nexus.RoleRead, // each tool checks its own role
	"POST /v1/session":                     nexus.RoleRead, // and without a credential: the login
	"GET /v1/session":                      nexus.RoleRead,
	"DELETE /v1/session":                   nexus.RoleRead,
}

// RouteRole is the least role the route registered as pattern needs.
func RouteRole(pattern string) (nexus.Role, bool) {
	if r, ok := routeRoles[pattern]; ok {
		return r, true
	}
	_, path, _ := strings.Cut(pattern, " ")
	if strings.HasPrefix(path, "/v1/admin/") {
		return nexus.RoleAdmin, true
	}
	return "", false
}
