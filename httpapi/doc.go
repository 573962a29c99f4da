// Package httpapi serves a [nexus.Store] over HTTP/JSON and provides a
// [Client] that implements the same interface against such a server.
//
// # Basics
//
// [NewServer] wraps any store in an [http.Handler]:
//
//	POST /v1/contexts                  store a nexus.Draft; 201 with the context
//	GET  /v1/contexts/{id}             one context
//	GET  /v1/contexts/{id}/chain       the context and its ancestors (?limit=)
//	GET  /v1/contexts/{id}/children    direct children, oldest first
//	GET  /v1/contexts                  list (?namespace=&type=&agent=&parent=
//	                                   &since=&until=&limit=&cursor=&order=)
//	GET  /v1/log                       the journal, newest first (?limit=&cursor=)
//	GET  /v1/events                    server-sent events (?namespace=&type=&agent=,
//	                                   Last-Event-ID), when Options.Events is set
//	GET  /v1/openapi.json              the OpenAPI 3 document of every route
//	GET  /livez                        the process is up; never needs a token
//	GET  /readyz                       the store can serve
//	     /mcp                          Model Context Protocol, streamable HTTP, when
//	                                   Options.MCP is set (same token)
//
// plus /v1/agents (the node's own agents when Options.Agents is set: list,
// process a context by agent, capability, pipeline or broadcast; external
// agents when Options.Tasks is set: register, heartbeat) and /v1/tasks
// (the task queue of external agents: create, list, claim, complete,
// fail), and search, health, metrics and admin routes (fsck, restore and
// recover through an [Admin], which [Client] also implements): the OpenAPI
// document (openapi.json, written by hand and embedded) describes them all,
// and tests hold it to the routes registered and to real responses.
//
// [Client.Subscribe] streams the events and, when a connection drops,
// resumes by itself with the id of the last event read, so the events go
// on without a gap or a repeat (see package events for what ids are).
//
// Every error is a JSON body {"error":{"code":"...","message":"..."}} whose
// code is a [nexus.Code] and whose status follows from it (invalid 400,
// unauthorized 401, forbidden 403, not_found 404, conflict 409, too_large 413,
// unsupported_media 415, rate_limited 429, internal 500, unavailable 503,
// insufficient_storage 507); unknown routes answer 404 and wrong methods 405.
// The body is a [nexus.ErrorBody], the same as the MCP server's tool errors.
// [Client] turns those bodies back into [*nexus.Error] values with the same
// code and message, so code written against a local store behaves the same
// against a remote one.
//
// # Caveats
//
// The server is strict about its input: request bodies must be JSON
// (Content-Type application/json), valid UTF-8, with no unknown fields and
// nothing after the object; unknown or repeated query parameters are errors;
// paths with dot segments, doubled slashes or encoded tricks are rejected
// rather than redirected. Times in queries are RFC 3339.
//
// Internal errors are logged with their cause and answered with the message
// "internal error", so no detail of the server leaks to clients.
//
// # Authentication
//
// When [Options.Auth] has principals (or [Options.Token] is set), every
// route but GET /livez requires a bearer credential; the request then
// carries its principal ([nexus.PrincipalFrom]), and a principal whose
// role is below its route's least role ([RouteRole]: read to look, write
// to change, admin for /v1/admin/*) is refused with 403 forbidden naming
// the role needed. Without principals every request is
// [nexus.Anonymous]. Credentials cross the network in the clear unless
// the server is behind TLS, so serve over TLS or on loopback only.
package httpapi
