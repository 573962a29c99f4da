package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
)

// Resource URI prefixes; the id follows.
const (
	contextPrefix = "nexus://contexts/"
	threadPrefix  = "nexus://threads/"
)

// threadOut is a thread as the thread resource returns it.
type threadOut struct {
	Contexts []contextOut `json:"contexts"`
	// Truncated says the thread is longer than nexus.MaxLimit and only its
	// newest contexts are given.
	Truncated bool `json:"truncated,omitempty"`
}

// addResources adds the context and thread resource templates to s.
func addResources(s *mcp.Server, store nexus.Store) {
	s.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:        "context",
		Title:       "Nexus context",
		URITemplate: contextPrefix + "{id}",
		MIMEType:    "application/json",
		Description: "One stored context as JSON: id, namespace, type, agent_id, parent_id, timestamp, semantic_hash, metadata and the whole content.",
	}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		uri := req.Params.URI
		id, err := resourceID(uri, contextPrefix)
		if err != nil {
			return nil, resourceError(uri, err)
		}
		c, err := store.Get(ctx, id)
		if err != nil {
			return nil, resourceError(uri, err)
		}
		return jsonResource(uri, newContext(c, true))
	})
	s.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:        "thread",
		Title:       "Nexus thread",
		URITemplate: threadPrefix + "{id}",
		MIMEType:    "application/json",
		Description: fmt.Sprintf("The thread that ends at a context, in reading order: its root first, the context itself last (at most the newest %d), as JSON {\"contexts\": [...]}.", nexus.MaxLimit),
	}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		uri := req.Params.URI
		id, err := resourceID(uri, threadPrefix)
		if err != nil {
			return nil, resourceError(uri, err)
		}
		cs, err := store.Chain(ctx, id, nexus.MaxLimit+1)
		if err != nil {
			return nil, resourceError(uri, err)
		}
		out := threadOut{Truncated: len(cs) > nexus.MaxLimit}
		cs = cs[:min(len(cs), nexus.MaxLimit)]
		slices.Reverse(cs)
		out.Contexts = newContexts(cs, true)
		return jsonResource(uri, out)
	})
}

// resourceID parses the id at the end of uri.
func resourceID(uri, prefix string) (nexus.ID, error) {
	s, ok := strings.CutPrefix(uri, prefix)
	if !ok {
		return nexus.ZeroID, nexus.Errorf(nexus.EInvalid, "resource URI %q does not start with %s", clip(uri, 80), prefix)
	}
	return parseID("the id in "+prefix+"{id}", s)
}

// jsonResource answers v as the JSON text of the resource uri.
func jsonResource(uri string, v any) (*mcp.ReadResourceResult, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, resourceError(uri, nexus.WrapError(nexus.EInternal, err, "encoding the resource"))
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: buf.String()}}}, nil
}

// resourceError turns err into a JSON-RPC error: invalid params for bad
// input and for a missing context (the code the MCP specification gives a
// missing resource), internal otherwise. Its data carries the URI and what
// the HTTP API would show of the error (see [nexus.DetailOf]).
func resourceError(uri string, err error) error {
	d := nexus.DetailOf(err)
	rpc := int64(jsonrpc.CodeInternalError)
	if d.Code == nexus.EInvalid || d.Code == nexus.ENotFound {
		rpc = jsonrpc.CodeInvalidParams
	}
	data, _ := json.Marshal(struct {
		URI string `json:"uri"`
		nexus.ErrorDetail
	}{uri, d}) // strings: cannot fail
	return &jsonrpc.Error{Code: rpc, Message: string(d.Code) + ": " + d.Message, Data: data}
}
