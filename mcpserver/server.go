package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
)

// DefaultAgent is the agent id of contexts stored without one.
const DefaultAgent = "mcp"

// Options configure [New]. The zero value works.
type Options struct {
	// Agent is the agent_id of contexts stored without one; "" means
	// DefaultAgent.
	Agent string
	// Namespace is the namespace of contexts stored without one; "" means
	// the store's default.
	Namespace string
	// Logger receives the SDK's events; nil discards them.
	Logger *slog.Logger
	// Agents backs the agent and task tools. When nil, the store is used
	// if it implements [Agents] (an httpapi.Client does); otherwise those
	// tools are not offered.
	Agents Agents
	// Redactor cleans the node's secrets out of every tool error and the
	// log; nil: nothing is redacted.
	Redactor *nexus.Redactor
}

// instructions tell the model what the server is for.
const instructions = `Nexus is a shared, durable memory for agents. Everything stored here outlives this session and is visible to the other agents and sessions using the same memory.
- Before starting work, search_contexts (or list_contexts) for what was already decided, tried or observed.
- Record decisions, findings, results and summaries with store_context, one idea per context, with a fitting type.
- Contexts are immutable: to continue, answer or revise one, store a new context with parent_id set to it; get_chain reads such a thread back.
- Ids are 26-character ULIDs such as 01JB8X6Q4Z9V5M2K7T3R1N0PAW; use the ids that tools return.`

// New returns an MCP server offering the memory in store, search through
// searcher, and the agent and task tools through opts.Agents (or the
// store, if it implements [Agents]). A nil searcher leaves out the search
// tools.
func New(store nexus.Store, searcher nexus.Searcher, opts Options) *mcp.Server {
	if opts.Agent == "" {
		opts.Agent = DefaultAgent
	}
	if opts.Agents == nil {
		opts.Agents, _ = store.(Agents)
	}
	text := instructions
	if opts.Agents != nil {
		text += agentInstructions
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "nexus", Title: "Nexus memory", Version: version()}, &mcp.ServerOptions{
		Instructions: text,
		Logger:       opts.Logger,
		Capabilities: &mcp.ServerCapabilities{}, // tools and resources are added below; no logging
	})
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = slog.New(opts.Redactor.Handler(log.Handler()))
	s.AddReceivingMiddleware(toolErrors(log, opts.Redactor), checkRoles())
	t := &tools{store: store, searcher: searcher, agents: opts.Agents, opts: opts}
	t.register(s)
	addResources(s, store)
	return s
}

// NewHandler serves s over streamable HTTP. Sessions are stateless and
// answers plain JSON, so any number of server processes can answer, a
// restart loses nothing, and nothing is kept per client. maxBody bounds
// request bodies (0: the SDK's default of 4 MiB).
func NewHandler(s *mcp.Server, maxBody int64) http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{
		Stateless:           true,
		JSONResponse:        true,
		MaxRequestBodyBytes: maxBody,
	})
}

// version is the module version of this build, or "devel".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path == "github.com/nexus-mem/nexus" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, d := range bi.Deps {
			if d.Path == "github.com/nexus-mem/nexus" {
				return d.Version
			}
		}
	}
	return "devel"
}

// toolError is the error of a failed tool call: what the client is shown
// of it, and its cause for the log. Its text, which the SDK puts in the
// result, is the API's JSON error body.
type toolError struct {
	detail nexus.ErrorDetail
	cause  error
}

func (e *toolError) Error() string { return errorBody(e.detail) }

// asToolError turns any error into a tool error that shows the client
// what the HTTP API would (see [nexus.DetailOf]).
func asToolError(err error) error {
	return &toolError{detail: nexus.DetailOf(err), cause: err}
}

// errorBody renders the [nexus.ErrorBody] of d.
func errorBody(d nexus.ErrorDetail) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(nexus.ErrorBody{Error: d}) // strings only: cannot fail
	return strings.TrimSpace(buf.String())
}

// toolErrors gives the failures the SDK reports before a tool handler
// runs — arguments that do not match the input schema or do not decode —
// the same shape as the handlers' errors, with code invalid; it logs the
// cause of the internal errors of handlers, which clients do not see; and
// it redacts the node's secrets from every tool error.
func toolErrors(log *slog.Logger, redact *nexus.Redactor) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			r, ok := res.(*mcp.CallToolResult)
			if err != nil || !ok || !r.IsError || r.GetError() == nil {
				return res, err
			}
			var te *toolError
			if errors.As(r.GetError(), &te) {
				if te.detail.Code == nexus.EInternal {
					log.Error("tool call failed", "tool", toolName(req), "err", te.cause)
				}
				redactContent(r, redact)
				return res, err
			}
			msg := "arguments do not match the input schema: " + schemaMessage(r.GetError().Error())
			r.Content = []mcp.Content{&mcp.TextContent{Text: errorBody(nexus.ErrorDetail{Code: nexus.EInvalid, Message: msg})}}
			return r, nil
		}
	}
}

// redactContent replaces the secrets redact knows in the text of r.
func redactContent(r *mcp.CallToolResult, redact *nexus.Redactor) {
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			t.Text = redact.Redact(t.Text)
		}
	}
}

// toolName is the name of the tool a request calls, or "".
func toolName(req mcp.Request) string {
	if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok {
		return p.Name
	}
	return ""
}

// schemaNoise is what the schema validator's messages say that the caller
// need not read: prefixes naming the validation steps, and numbers as
// fractions or with six decimals.
var (
	schemaPrefixes = strings.NewReplacer(`validating "arguments": `, "", "validating root: ", "", "validating /properties/", "")
	schemaNumbers  = regexp.MustCompile(`\b(\d+)(?:/1|\.000000)\b`)
)

// schemaMessage shortens a message of the schema validator, such as
// `validating "arguments": validating root: validating /properties/limit:
// maximum: 1000/1 is greater than 100.000000`, to "limit: maximum: 1000 is
// greater than 100".
func schemaMessage(msg string) string {
	return schemaNumbers.ReplaceAllString(schemaPrefixes.Replace(msg), "$1")
}
