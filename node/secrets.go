package node

import "github.com/nexus-mem/nexus"

// Redactor is the node's one redactor, through which every error text
// leaving the node passes: error bodies and MCP tool errors, /health,
// GET /v1/agents, the agent, task and process events and the server log.
// It knows the node's token, the keys of its agents and the credentials
// its processes are passed; a part that holds more secrets (the principals'
// tokens) registers them with Add.
func (n *Node) Redactor() *nexus.Redactor { return n.redact }
