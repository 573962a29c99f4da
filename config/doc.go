// Package config reads the YAML configuration file of `nexus serve
// --config FILE`: the agents a node can call, the pools that spread work
// over them, the local processes it supervises, and the node's limits for
// agent work.
//
// # Basics
//
// [Load] reads a file and returns a [Config] that is complete and valid:
// every field the file leaves out holds its default (see [Defaults] and the
// comments on each field), and every rule below has been checked. A file
// that breaks any rule is refused whole; the error is an [Errors] list, one
// line per problem, each naming the file, the line and the field:
//
//	nexus.yaml:12: agents[1].timeout: "5" is not a duration (e.g. 30s)
//
// Decoding is strict: an unknown field, a value of the wrong kind, a second
// document or a duplicate key is an error, never silently dropped. The one
// exception is top-level keys starting with "x-", which are ignored so that
// a file can hold anchors for values it repeats:
//
//	x-patient: &patient {timeout: 2m, retries: {max: 5}}
//	agents:
//	  - {id: writer, provider: anthropic, model: claude-sonnet-4-5, <<: *patient}
//
// Relative paths in the file (command, the program of probe, dir,
// log_dir, run_dir, secrets_file, the files of server.tls) are relative to the directory holding
// the file, and are returned absolute. A command without a slash is looked
// up in PATH when it is started, not here.
//
// # Caveats
//
// API keys are never written in the file: an agent names the variable
// that holds its key (api_key_env), in the environment or in a secrets
// file (secrets_file) that the agent reads when it is built. Refused, with
// a message that says where the key goes instead: a field named like a
// credential (api_key, token, password, ...), a value shaped like a known
// provider key (sk-..., sk-ant-..., ghp_..., ...), a credential, query or
// fragment in a base_url, and a literal value for an environment variable
// named like a credential (*_API_KEY, *_TOKEN, *_SECRET, *_PASSWORD). A
// supervised or command process gets only PATH, HOME, LANG, LC_* and TZ
// of the server's environment plus the variables its env lists; an env
// value written ${NAME} is the server's variable NAME, which is how a key
// the process needs reaches it.
//
// The package only reads and checks: it starts nothing and opens no
// connection. The run and log directories of supervised processes may be
// left empty, in which case the server chooses them (under its data
// directory).
package config
