// Package agent calls LLM workers reliably: the providers that speak to
// them and the resilience around each call.
//
// # Basics
//
// An [Agent] answers a context with its ancestor chain ([Agent.Process]),
// or a prompt alone ([Agent.Generate]), and serializes its state for an
// agent_state checkpoint ([Agent.State], [Agent.Restore]). Every answer
// carries its [Provenance]: the agent asked and the one that answered, the
// model, tokens in and out, latency, the requests sent and every agent
// tried.
//
// A [Provider] speaks one wire format, one request per call:
//
//   - [OpenAI]: OpenAI-compatible chat completions, POST {base}/chat/completions
//     with a Bearer key — OpenAI, Ollama, vLLM, llama.cpp server, LM Studio,
//     OpenRouter;
//   - [Anthropic]: the Messages API, POST {base}/v1/messages with x-api-key
//     and anthropic-version 2023-06-01;
//   - [Command]: a local program that reads one JSON request on stdin and
//     writes one JSON response on stdout.
//
// Their heartbeats cost no tokens: GET {base}/models, GET {base}/v1/models,
// and a probe command (default: the program with --version).
//
// A [Runner] puts one provider behind a per-attempt timeout, retries with
// exponential backoff and full jitter that honour Retry-After (seconds or
// an HTTP date) up to a cap, a circuit breaker, request and token rate
// limits, and a health record. Failures are [*Error] values whose [Class]
// decides what happens: a rejected key (auth) is never retried and marks
// the agent auth_failed until [Runner.Reset]; rate limits, overloads, 5xx,
// timeouts, dropped connections and malformed answers are retried; bad
// requests are not.
//
//	r, err := agent.New(agent.Config{ID: "writer", Provider: agent.Anthropic, Model: "claude-sonnet-4-5"})
//	resp, err := r.Process(ctx, chain) // chain from nexus.Store.Chain
//
// A [Pool] spreads calls over runners by weighted round robin and fails
// over to the others, then to its backups, when one fails or its breaker
// is open. A [Monitor] sends the heartbeats, marks an agent unhealthy after
// a number of failed ones (its breaker forced open, so traffic fails over),
// lets the half-open probe bring it back, and reports the agents component
// of /health ([Monitor.CheckHealth]) and per-agent [Status] snapshots.
//
// # Command agents
//
// A command gets on stdin
//
//	{"agent":"id","model":"m","system":"...","messages":[{"role":"user","content":"..."}],
//	 "max_tokens":N,"state":<the state it last returned, if any>}
//
// and answers on stdout with
//
//	{"content":"...","model":"m","usage":{"input_tokens":1,"output_tokens":2},"state":<any JSON>}
//
// or {"error":{"type":"rate_limit","message":"..."}}, where type is a
// [Class] (or an Anthropic or OpenAI error type). It runs in a process
// group of its own, killed with everything it started when the attempt
// times out or the call is canceled; its stderr is quoted in the error
// when it exits with a status other than 0. The state it returns is sent
// back with the next request and saved by [Runner.State], so a program
// that runs once per request can still carry memory across requests and
// restarts.
//
// # Caveats
//
// Keys come from the environment or a secrets file ([KeySource]) and are
// held in a [Secret]: they are sent only in the request headers (or a
// command's environment), and never appear in an error, a log line, or
// the printed form of a [Config]; a provider that quotes the key back has
// it replaced by "[redacted]", and so does every secret a
// [Config.Redactor] knows (the node's token, the other agents' keys). A
// secrets file that another user may read or write, or that the user
// running Nexus does not own, is refused. A command gets a minimal
// environment: PATH, HOME, LANG, LC_* and TZ of the server's, its Env and
// its own key; never the server's token or other keys.
//
// A request whose answer was cut short (a reset connection, malformed
// JSON) is sent again: the provider may have done the work twice. An
// answered request never is, and a pool stops at the first answer. A
// Retry-After longer than the retry cap is not waited for: the call fails
// (and a pool fails over) rather than sleeping. The breaker counts failed
// attempts, retries included, but not bad requests, rejected keys or the
// caller's cancellations.
package agent
