package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nexus-mem/nexus"
)

// previewRunes is how much content listings, chains and hits carry unless
// asked for all of it.
const previewRunes = 2000

// tools holds what the tool handlers use.
type tools struct {
	store    nexus.Store
	searcher nexus.Searcher // nil: no search tools
	agents   Agents         // nil: no agent and task tools
	opts     Options
}

// register adds the tools to s.
func (t *tools) register(s *mcp.Server) {
	add(s, &mcp.Tool{
		Name:  "store_context",
		Title: "Store a context",
		Description: "Save something to the shared, durable memory, where other agents and later sessions can find it: " +
			"a decision and its reasons, an observation, a result, a summary of finished work, an instruction. " +
			"Each call stores one immutable context and returns it with its assigned id and timestamp. " +
			"To continue, answer or revise an earlier context, pass its id as parent_id: the new context joins that thread and nothing is overwritten. " +
			"Keep one idea per context and put tags, sources and file names in metadata.",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)},
	}, func(p props) {
		p.contextType("type")
		p.def("type", nexus.TypeMemory)
	}, contextSchema, t.put)
	add(s, &mcp.Tool{
		Name:        "get_context",
		Title:       "Get a context",
		Description: "Read one context by its id, with its whole content and metadata.",
		Annotations: readOnly(),
	}, nil, contextSchema, t.get)
	add(s, &mcp.Tool{
		Name:  "get_chain",
		Title: "Get a thread",
		Description: "Read the thread that leads to a context: the context itself, then its parent, its grandparent and so on up to the root, newest first. " +
			"Use it to recover the history behind a decision or the earlier turns of a conversation. " +
			"Content longer than 2000 characters is cut (content_truncated) unless full_content is true.",
		Annotations: readOnly(),
	}, func(p props) {
		p.bounds("limit", 1, nexus.MaxLimit)
	}, func(p props) { contextSchema(p.of("contexts")) }, t.chain)
	add(s, &mcp.Tool{
		Name:  "list_contexts",
		Title: "List recent contexts",
		Description: "List stored contexts, newest first (order \"asc\": oldest first), optionally only those of a namespace, type, agent or parent, or of a time window. " +
			"Use it to see what was recorded recently. The answer is one page: pass its next_cursor as cursor to get the next one. " +
			"Content longer than 2000 characters is cut (content_truncated) unless full_content is true.",
		Annotations: readOnly(),
	}, func(p props) {
		p.contextType("type")
		p.time("since", "until")
		p.bounds("limit", 1, nexus.MaxLimit)
		p.def("limit", 20)
		p.enum("order", string(nexus.Newest), string(nexus.Oldest))
		p.def("order", nexus.Newest)
	}, func(p props) { contextSchema(p.of("contexts")) }, t.list)
	if t.agents != nil {
		t.registerAgents(s)
	}
	if t.searcher == nil {
		return
	}
	add(s, &mcp.Tool{
		Name:  "search_contexts",
		Title: "Search the memory",
		Description: "Find stored contexts by meaning and by words, best first. Mode \"hybrid\" (the default) fuses both; \"semantic\" finds paraphrases and related ideas; " +
			"\"keyword\" finds exact terms, names and identifiers (BM25). " +
			"Narrow it with namespace, type, agent_id, parent_id (direct children of a context), thread_id (every context of the thread a context belongs to), " +
			"since/until, and metadata (each key must equal the given value); as_of searches the memory as it was at a past time. " +
			"Each hit has a score, the signals that matched and a snippet. Content longer than 2000 characters is cut (content_truncated) unless full_content is true; get_context reads one in full.",
		Annotations: readOnly(),
	}, func(p props) {
		p.enum("mode", string(nexus.Hybrid), string(nexus.Semantic), string(nexus.Keyword))
		p.def("mode", nexus.Hybrid)
		p.bounds("limit", 1, nexus.MaxSearchLimit)
		p.def("limit", nexus.DefaultSearchLimit)
		p.contextType("type")
		p.time("since", "until", "as_of")
		p.scalarValues("metadata")
		p.get("min_score").Minimum = ptr(0.0)
		p.get("query").MinLength = ptr(1)
	}, searchSchema, t.search)
	add(s, &mcp.Tool{
		Name:  "related_contexts",
		Title: "Find related contexts",
		Description: "Find the contexts closest in meaning to a given context, most similar first, leaving out the context itself. " +
			"Use it to discover earlier work on the same topic. A context written moments ago may not be indexed yet: the error says to retry. " +
			"Content longer than 2000 characters is cut (content_truncated) unless full_content is true.",
		Annotations: readOnly(),
	}, func(p props) {
		p.bounds("limit", 1, nexus.MaxSearchLimit)
		p.def("limit", nexus.DefaultSearchLimit)
		p.contextType("type")
		p.bounds("min_score", 0, 1)
	}, searchSchema, t.related)
}

// add registers a typed tool whose handler returns an output or an error.
// The schemas come from the types, refined by editIn and editOut. A
// successful call answers the output as structured content and as JSON
// text; a failed one as a tool error (see [toolError]).
func add[In, Out any](s *mcp.Server, tool *mcp.Tool, editIn, editOut func(props), h func(context.Context, In) (*Out, error)) {
	tool.InputSchema = schemaFor[In](editIn)
	tool.OutputSchema = schemaFor[Out](editOut)
	mcp.AddTool(s, tool, func(ctx context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, *Out, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, nil, asToolError(err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // code and prose read better without \u003c
		if err := enc.Encode(out); err != nil {
			return nil, nil, asToolError(nexus.WrapError(nexus.EInternal, err, "encoding the result"))
		}
		text := strings.TrimSuffix(buf.String(), "\n")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, out, nil
	})
}

func readOnly() *mcp.ToolAnnotations {
	return &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}
}

// contextOut is a stored context as the tools return it.
type contextOut struct {
	ID               string          `json:"id" jsonschema:"the context's id, a ULID: ids sort by creation time"`
	Namespace        string          `json:"namespace" jsonschema:"the namespace (project or team) it belongs to"`
	Type             string          `json:"type" jsonschema:"what kind of record it is"`
	AgentID          string          `json:"agent_id" jsonschema:"who wrote it"`
	ParentID         string          `json:"parent_id,omitempty" jsonschema:"the context it continues, if any"`
	Timestamp        time.Time       `json:"timestamp" jsonschema:"when it was stored (RFC 3339, assigned by the server)"`
	SemanticHash     string          `json:"semantic_hash" jsonschema:"sha256 of type, content and metadata: contexts with equal hashes say the same thing"`
	Metadata         json.RawMessage `json:"metadata" jsonschema:"the writer's JSON object of tags, sources and the like"`
	Content          string          `json:"content" jsonschema:"the text"`
	ContentTruncated bool            `json:"content_truncated,omitempty" jsonschema:"true when content was cut to 2000 characters; get_context returns all of it"`
}

// contextSchema refines the schema of a contextOut.
func contextSchema(p props) {
	p.outputID("id", "parent_id")
	p.contextType("type")
	p.get("semantic_hash").Pattern = "^[0-9a-f]{64}$"
}

// newContext converts c, cutting its content unless full.
func newContext(c *nexus.Context, full bool) contextOut {
	out := contextOut{
		ID: c.ID.String(), Namespace: c.Namespace, Type: string(c.Type), AgentID: c.AgentID,
		Timestamp: c.Timestamp, SemanticHash: c.SemanticHash, Metadata: c.Metadata, Content: c.Content,
	}
	if !c.ParentID.IsZero() {
		out.ParentID = c.ParentID.String()
	}
	if len(out.Metadata) == 0 {
		out.Metadata = json.RawMessage("{}")
	}
	if !full && utf8.RuneCountInString(out.Content) > previewRunes {
		out.Content, out.ContentTruncated = string([]rune(out.Content)[:previewRunes]), true
	}
	return out
}

func newContexts(cs []*nexus.Context, full bool) []contextOut {
	out := make([]contextOut, len(cs))
	for i, c := range cs {
		out[i] = newContext(c, full)
	}
	return out
}

type putInput struct {
	Content   string          `json:"content" jsonschema:"the text to store (UTF-8; at most 1 MiB unless the server says otherwise)"`
	Type      string          `json:"type,omitempty" jsonschema:"what kind of record this is; memory when left out"`
	Namespace string          `json:"namespace,omitempty" jsonschema:"the project or team it belongs to: 1-64 of a-z 0-9 . _ - (default: the parent's, else the server's)"`
	Metadata  json.RawMessage `json:"metadata,omitempty" jsonschema:"a JSON object of tags, sources, file names, links; searches can filter on its keys"`
	ParentID  string          `json:"parent_id,omitempty" jsonschema:"id of the context this one continues, answers or revises"`
	AgentID   string          `json:"agent_id,omitempty" jsonschema:"who is writing: 1-128 of A-Z a-z 0-9 . _ - : @ / + (default: the server's)"`
}

func (t *tools) put(ctx context.Context, in putInput) (*contextOut, error) {
	d := nexus.Draft{Namespace: in.Namespace, Type: nexus.Type(in.Type), Content: in.Content, Metadata: in.Metadata, AgentID: in.AgentID}
	if d.AgentID == "" {
		d.AgentID = t.opts.Agent
	}
	if d.Type == "" {
		d.Type = nexus.TypeMemory
	}
	var err error
	if d.ParentID, err = optionalID("parent_id", in.ParentID); err != nil {
		return nil, err
	}
	d.Namespace = t.namespace(ctx, d.Namespace, d.ParentID)
	c, err := t.store.Put(ctx, d)
	if err != nil {
		return nil, err
	}
	return ptr(newContext(c, true)), nil
}

// namespace is the namespace of a new context: ns if given, else its
// parent's (a thread stays in one namespace), else the server's. A parent
// that cannot be read is left for the write to report.
func (t *tools) namespace(ctx context.Context, ns string, parent nexus.ID) string {
	if ns == "" && !parent.IsZero() {
		if p, err := t.store.Get(ctx, parent); err == nil {
			ns = p.Namespace
		}
	}
	if ns == "" {
		ns = t.opts.Namespace
	}
	return ns
}

type getInput struct {
	ID string `json:"id" jsonschema:"the context's id: 26 characters such as 01JB8X6Q4Z9V5M2K7T3R1N0PAW"`
}

func (t *tools) get(ctx context.Context, in getInput) (*contextOut, error) {
	id, err := parseID("id", in.ID)
	if err != nil {
		return nil, err
	}
	c, err := t.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return ptr(newContext(c, true)), nil
}

type chainInput struct {
	ID          string `json:"id" jsonschema:"the id of the context whose thread to read"`
	Limit       int    `json:"limit,omitempty" jsonschema:"the most contexts to return, counted from id (default: the whole thread)"`
	FullContent bool   `json:"full_content,omitempty" jsonschema:"return content uncut"`
}

type contextsOut struct {
	Contexts []contextOut `json:"contexts" jsonschema:"the context first, then its ancestors up to the root"`
}

func (t *tools) chain(ctx context.Context, in chainInput) (*contextsOut, error) {
	id, err := parseID("id", in.ID)
	if err != nil {
		return nil, err
	}
	cs, err := t.store.Chain(ctx, id, in.Limit)
	if err != nil {
		return nil, err
	}
	return &contextsOut{Contexts: newContexts(cs, in.FullContent)}, nil
}

type listInput struct {
	Namespace   string `json:"namespace,omitempty" jsonschema:"only contexts of this namespace"`
	Type        string `json:"type,omitempty" jsonschema:"only contexts of this type"`
	AgentID     string `json:"agent_id,omitempty" jsonschema:"only contexts written by this agent"`
	ParentID    string `json:"parent_id,omitempty" jsonschema:"only the direct children of this context"`
	Since       string `json:"since,omitempty" jsonschema:"only contexts stored at or after this RFC 3339 time"`
	Until       string `json:"until,omitempty" jsonschema:"only contexts stored before this RFC 3339 time"`
	Limit       int    `json:"limit,omitempty" jsonschema:"the most contexts on this page"`
	Cursor      string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
	Order       string `json:"order,omitempty" jsonschema:"desc: newest first; asc: oldest first"`
	FullContent bool   `json:"full_content,omitempty" jsonschema:"return content uncut"`
}

type listOut struct {
	Contexts   []contextOut `json:"contexts" jsonschema:"the contexts of this page, in the order asked for"`
	NextCursor string       `json:"next_cursor,omitempty" jsonschema:"pass as cursor to get the next page; absent on the last page"`
}

func (t *tools) list(ctx context.Context, in listInput) (*listOut, error) {
	f := nexus.Filter{Namespace: in.Namespace, Type: nexus.Type(in.Type), AgentID: in.AgentID, Limit: in.Limit, Cursor: in.Cursor, Order: nexus.Order(in.Order)}
	var err error
	if f.ParentID, err = optionalID("parent_id", in.ParentID); err != nil {
		return nil, err
	}
	if f.Since, err = parseTime("since", in.Since); err != nil {
		return nil, err
	}
	if f.Until, err = parseTime("until", in.Until); err != nil {
		return nil, err
	}
	p, err := t.store.List(ctx, f)
	if err != nil {
		return nil, err
	}
	return &listOut{Contexts: newContexts(p.Contexts, in.FullContent), NextCursor: p.NextCursor}, nil
}

type searchInput struct {
	Query       string         `json:"query" jsonschema:"what to look for, in natural language or as key words; \"exact phrase\" requires the words in that order, -word excludes, type:decision, agent:ID, namespace:NS, thread:ID, parent:ID and meta.KEY:VALUE filter"`
	Mode        string         `json:"mode,omitempty" jsonschema:"hybrid: meaning and words; semantic: meaning only; keyword: words only"`
	Limit       int            `json:"limit,omitempty" jsonschema:"the most hits"`
	Namespace   string         `json:"namespace,omitempty" jsonschema:"only contexts of this namespace"`
	Type        string         `json:"type,omitempty" jsonschema:"only contexts of this type"`
	AgentID     string         `json:"agent_id,omitempty" jsonschema:"only contexts written by this agent"`
	ParentID    string         `json:"parent_id,omitempty" jsonschema:"only the direct children of this context"`
	ThreadID    string         `json:"thread_id,omitempty" jsonschema:"only contexts of the thread this context belongs to (same root)"`
	Since       string         `json:"since,omitempty" jsonschema:"only contexts stored at or after this RFC 3339 time"`
	Until       string         `json:"until,omitempty" jsonschema:"only contexts stored before this RFC 3339 time"`
	Metadata    map[string]any `json:"metadata,omitempty" jsonschema:"only contexts whose metadata has each of these keys with an equal value"`
	MinScore    float64        `json:"min_score,omitempty" jsonschema:"drop hits scoring below this (cosine similarity in semantic mode, BM25 in keyword mode, 0-1 in hybrid mode)"`
	AsOf        string         `json:"as_of,omitempty" jsonschema:"search the memory as it was at this RFC 3339 time"`
	Consistent  bool           `json:"consistent,omitempty" jsonschema:"wait until every context stored before this call is indexed (use right after storing)"`
	FullContent bool           `json:"full_content,omitempty" jsonschema:"return content uncut"`
}

type relatedInput struct {
	ID          string  `json:"id" jsonschema:"the context to find relatives of"`
	Limit       int     `json:"limit,omitempty" jsonschema:"the most contexts"`
	MinScore    float64 `json:"min_score,omitempty" jsonschema:"the least cosine similarity to keep"`
	Namespace   string  `json:"namespace,omitempty" jsonschema:"only contexts of this namespace"`
	Type        string  `json:"type,omitempty" jsonschema:"only contexts of this type"`
	AgentID     string  `json:"agent_id,omitempty" jsonschema:"only contexts written by this agent"`
	FullContent bool    `json:"full_content,omitempty" jsonschema:"return content uncut"`
}

type searchOut struct {
	Hits     []hitOut `json:"hits" jsonschema:"best first"`
	Mode     string   `json:"mode" jsonschema:"the mode that ran"`
	TookMS   float64  `json:"took_ms" jsonschema:"milliseconds the search took on the server"`
	Degraded string   `json:"degraded,omitempty" jsonschema:"why a signal was left out (e.g. the embedding provider is down), if one was"`
	IndexLag int      `json:"index_lag" jsonschema:"stored contexts not indexed yet, which the search could not see"`
}

type hitOut struct {
	Context    contextOut `json:"context"`
	Score      float64    `json:"score" jsonschema:"the rank score: higher is better"`
	Matched    []string   `json:"matched" jsonschema:"the signals that found it: semantic, keyword"`
	Similarity *float64   `json:"similarity,omitempty" jsonschema:"cosine similarity to the query, when the semantic signal found it"`
	BM25       *float64   `json:"bm25,omitempty" jsonschema:"BM25 score, when the keyword signal found it"`
	Terms      []string   `json:"terms,omitempty" jsonschema:"the query words it contains"`
	Snippet    string     `json:"snippet" jsonschema:"the passage that matched best"`
}

func searchSchema(p props) {
	p.enum("mode", string(nexus.Hybrid), string(nexus.Semantic), string(nexus.Keyword))
	contextSchema(props{p.of("hits").get("context")})
}

func (t *tools) search(ctx context.Context, in searchInput) (*searchOut, error) {
	req := nexus.SearchRequest{
		Query: in.Query, Mode: nexus.SearchMode(in.Mode), Limit: in.Limit, Namespace: in.Namespace, Type: nexus.Type(in.Type),
		AgentID: in.AgentID, Metadata: in.Metadata, MinScore: in.MinScore, Consistent: in.Consistent,
	}
	var err error
	for _, f := range []struct {
		name, v string
		dst     *nexus.ID
	}{{"parent_id", in.ParentID, &req.ParentID}, {"thread_id", in.ThreadID, &req.ThreadID}} {
		if *f.dst, err = optionalID(f.name, f.v); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"since", in.Since, &req.Since}, {"until", in.Until, &req.Until}, {"as_of", in.AsOf, &req.AsOf}} {
		if *f.dst, err = parseTime(f.name, f.v); err != nil {
			return nil, err
		}
	}
	res, err := t.searcher.Search(ctx, req)
	if err != nil {
		return nil, err
	}
	return newSearchOut(res, in.FullContent), nil
}

func (t *tools) related(ctx context.Context, in relatedInput) (*searchOut, error) {
	id, err := parseID("id", in.ID)
	if err != nil {
		return nil, err
	}
	req := nexus.SearchRequest{Limit: in.Limit, MinScore: in.MinScore, Namespace: in.Namespace, Type: nexus.Type(in.Type), AgentID: in.AgentID}
	res, err := t.searcher.Related(ctx, id, req)
	if err != nil {
		return nil, err
	}
	return newSearchOut(res, in.FullContent), nil
}

func newSearchOut(res *nexus.SearchResult, full bool) *searchOut {
	out := &searchOut{Hits: make([]hitOut, len(res.Hits)), Mode: string(res.Mode), TookMS: res.TookMS, Degraded: res.Degraded, IndexLag: res.IndexLag}
	for i, h := range res.Hits {
		matched := h.Matched
		if matched == nil {
			matched = []string{}
		}
		out.Hits[i] = hitOut{
			Context: newContext(h.Context, full), Score: h.Score, Matched: matched,
			Similarity: h.Similarity, BM25: h.BM25, Terms: h.Terms, Snippet: h.Snippet,
		}
	}
	return out
}

// parseID parses the id argument name.
func parseID(name, s string) (nexus.ID, error) {
	if s == "" {
		return nexus.ZeroID, nexus.Errorf(nexus.EInvalid, "%s is required: a 26-character context id", name)
	}
	id, err := nexus.ParseID(s)
	if err != nil {
		return id, nexus.Errorf(nexus.EInvalid, "%s: %s", name, nexus.ErrorMessage(err))
	}
	return id, nil
}

// optionalID parses the id argument name, if given.
func optionalID(name, s string) (nexus.ID, error) {
	if s == "" {
		return nexus.ZeroID, nil
	}
	return parseID(name, s)
}

// parseTime parses the RFC 3339 time argument name, if given.
func parseTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, nexus.Errorf(nexus.EInvalid, "%s: want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", name, clip(s, 40))
	}
	return t, nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
