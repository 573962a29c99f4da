// Package mcpserver exposes a Nexus memory to AI agents over the Model
// Context Protocol, with the official Go SDK.
//
// # Basics
//
// [New] builds an *mcp.Server over any [nexus.Store] and [nexus.Searcher]:
// the on-disk store and its search engine in the server process, or an
// httpapi.Client talking to a running server (what `nexus mcp` does, so
// that every MCP process on a machine shares one memory). Run it over stdio
// with mcp.StdioTransport, or serve it over streamable HTTP with
// [NewHandler]. The server offers these tools:
//
//	store_context      store a context (Store.Put)
//	get_context        one context by id (Store.Get)
//	get_chain          a context and its ancestors (Store.Chain)
//	list_contexts      recent contexts with filters, paged (Store.List)
//	search_contexts    hybrid, semantic or keyword search (Searcher.Search)
//	related_contexts   the contexts nearest in meaning to one (Searcher.Related)
//
// and, with an [Agents] backend (Options.Agents, or a store that implements
// it, such as httpapi.Client), the task queue of external agents and the
// node's own agents:
//
//	register_agent     register a worker agent, with a lease
//	heartbeat_agent    renew its lease and its claims
//	create_task        queue a task
//	claim_task         claim the oldest task it can serve, with a claim number
//	complete_task      store the result of a claimed task, once
//	fail_task          give a claimed task up, or back to the queue
//	process_context    have one of the node's agents answer a context
//	generate_context   have one of the node's agents answer a prompt, stored as a new context
//
// It also offers two resource templates: nexus://contexts/{id} (one
// context as JSON) and nexus://threads/{id} (the thread that ends at a
// context, root first).
// Every tool has an input and an output schema; a successful call returns
// the output as structured content and as JSON text.
//
// # Errors
//
// A call that fails — bad arguments, a missing context, a server that
// cannot serve — is a tool result with isError set, never a protocol error,
// so the model sees what went wrong. Its text is the HTTP API's error body,
// a [nexus.ErrorBody] {"error":{"code":"...","message":"..."}}, with a
// [nexus.Code] (invalid, not_found, unavailable, ...) and a message written
// for the caller; an internal error says only "internal error", and its
// cause goes to Options.Logger. Arguments that do not match the input schema are
// code invalid. Resources, which have no error results, answer a protocol
// error whose data carries the same code and message.
//
// # Caveats
//
// Listings, chains and search hits cut content to 2,000 characters (marked
// content_truncated) unless the call asks for full_content; get_context and
// the resources always return it whole. Tool arguments are decoded as JSON
// numbers of double precision, so integers in metadata beyond 2^53 lose
// digits over MCP (the HTTP API keeps them). Search tools exist only when
// a searcher is given, agent and task tools only with an [Agents] backend.
package mcpserver
