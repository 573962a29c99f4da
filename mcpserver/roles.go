package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
)

// toolRoles is the least role each tool needs, as the HTTP API's routes
// doing the same thing: read to look, write to store or to work the task
// queue.
var toolRoles = map[string]nexus.Role{
	"store_context": nexus.RoleWrite, "get_context": nexus.RoleRead, "get_chain": nexus.RoleRead,
	"list_contexts": nexus.RoleRead, "search_contexts": nexus.RoleRead, "related_contexts": nexus.RoleRead,
	"register_agent": nexus.RoleWrite, "heartbeat_agent": nexus.RoleWrite, "create_task": nexus.RoleWrite,
	"claim_task": nexus.RoleWrite, "complete_task": nexus.RoleWrite, "fail_task": nexus.RoleWrite,
	"process_context": nexus.RoleWrite, "generate_context": nexus.RoleWrite,
}

// ToolRole is the least role the tool named name needs.
func ToolRole(name string) (nexus.Role, bool) {
	r, ok := toolRoles[name]
	return r, ok
}

// checkRoles shows a principal (put in the context by the HTTP API) only
// the tools its role can call, in tools/list, and refuses a tool call
// whose principal has a role below the tool's, as a tool error with code
// forbidden. A request without a principal (stdio, in process) is the
// node's own: it sees and calls every tool. A call of an unknown tool
// goes through, and the SDK refuses it.
func checkRoles() mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				res, err := next(ctx, method, req)
				if p, ok := nexus.PrincipalFrom(ctx); ok && err == nil {
					if list, ok := res.(*mcp.ListToolsResult); ok {
						visibleTools(list, p)
					}
				}
				return res, err
			}
			if method != "tools/call" {
				return next(ctx, method, req)
			}
			p, ok := nexus.PrincipalFrom(ctx)
			name := toolName(req)
			need, known := ToolRole(name)
			if !ok || !known || p.Can(need) {
				return next(ctx, method, req)
			}
			r := &mcp.CallToolResult{}
			r.SetError(asToolError(nexus.Errorf(nexus.EForbidden, "tool %s needs role %s; principal %s has role %s", name, need, p.Name, p.Role)))
			return r, nil
		}
	}
}

// visibleTools keeps in list the tools p's role can call (a tool without
// a role is shown to no principal), and marks the list private: another
// principal is shown another one.
func visibleTools(list *mcp.ListToolsResult, p *nexus.Principal) {
	shown := make([]*mcp.Tool, 0, len(list.Tools))
	for _, t := range list.Tools {
		if need, ok := ToolRole(t.Name); ok && p.Can(need) {
			shown = append(shown, t)
		}
	}
	list.Tools = shown
	list.CacheScope = "private"
}
