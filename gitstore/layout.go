package gitstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/nexus-mem/nexus"
)

// Shard layout: the n-th context of a namespace goes to leaf n/leafSize,
// whose index is written in hex with at least leafDigits digits. The last
// four digits are one directory level each; whatever precedes them is the
// top level. Every tree below the namespace therefore holds at most 16
// entries, except the top level, which gains one entry per 2^20 contexts.
//
//	default/0/0/3/0/d/01JDQ8X7ZK1M5C7V4PQ3R2S9TA.json
const (
	leafSize   = 16
	leafDigits = 5
)

// shardDirs returns the directory names under the namespace for leaf.
func shardDirs(leaf uint64) []string {
	h := strconv.FormatUint(leaf, 16)
	if len(h) < leafDigits {
		h = strings.Repeat("0", leafDigits-len(h)) + h
	}
	top := len(h) - (leafDigits - 1)
	dirs := []string{h[:top]}
	for i := top; i < len(h); i++ {
		dirs = append(dirs, h[i:i+1])
	}
	return dirs
}

// parseShardDirs is the inverse of shardDirs.
func parseShardDirs(dirs []string) (uint64, error) {
	if len(dirs) != leafDigits {
		return 0, fmt.Errorf("shard path has %d levels, want %d", len(dirs), leafDigits)
	}
	for _, d := range dirs[1:] {
		if len(d) != 1 {
			return 0, fmt.Errorf("shard directory %q is not one hex digit", d)
		}
	}
	h := strings.Join(dirs, "")
	v, err := strconv.ParseUint(h, 16, 64)
	if err != nil || strconv.FormatUint(v, 16) != strings.TrimLeft(h, "0") && v != 0 {
		return 0, fmt.Errorf("shard path %q is not lowercase hex", h)
	}
	return v, nil
}

const fileExt = ".json"

// encodeContext returns the blob of a context: its API JSON, compact, keys
// in struct order, no HTML escaping, one trailing newline. The same context
// always encodes to the same bytes.
func encodeContext(c *nexus.Context) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	cc := *c
	cc.Timestamp = c.Timestamp.UTC()
	if err := enc.Encode(&cc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// decodeContext parses a context blob and checks it is well formed.
func decodeContext(b []byte) (*nexus.Context, error) {
	var c nexus.Context
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("context file is not valid: %w", err)
	}
	return &c, nil
}

// committer of every commit; the author is the agent.
var committer = signature{name: "Nexus", email: "nexus@localhost"}

// commitMessage is the journal line of a context plus its trailers.
// An encrypted store's message gives no summary and no semantic hash
// (a hash of the plaintext would let anyone confirm a guess of it).
func commitMessage(c *nexus.Context, sealed bool) string {
	var b strings.Builder
	// One allocation: the summary's 72 runes take at most 4 bytes each.
	b.Grow(2*len(c.Type) + 72*4 + 2*nexus.IDLen + len(c.Namespace) + len(c.SemanticHash) + len(c.Principal) + 96)
	b.WriteString(string(c.Type))
	b.WriteString(": ")
	if sealed {
		b.WriteString(sealedSummary)
	} else if s := c.Summary(72); s != "" {
		b.WriteString(s)
	} else {
		b.WriteString("(no summary)")
	}
	b.WriteString("\n\nContext-Id: ")
	b.WriteString(c.ID.String())
	b.WriteString("\nType: ")
	b.WriteString(string(c.Type))
	b.WriteString("\nNamespace: ")
	b.WriteString(c.Namespace)
	if !c.ParentID.IsZero() {
		b.WriteString("\nParent: ")
		b.WriteString(c.ParentID.String())
	}
	if !sealed {
		b.WriteString("\nSemantic-Hash: ")
		b.WriteString(c.SemanticHash)
	}
	if c.Principal != "" {
		b.WriteString("\nPrincipal: ")
		b.WriteString(c.Principal)
	}
	b.WriteString("\n")
	return b.String()
}

// sealedSummary stands for the summary in an encrypted store's commits.
const sealedSummary = "(encrypted)"

// newCommit builds the commit object of a context on top of parent.
func newCommit(c *nexus.Context, tree, parent Hash, sealed bool) *commit {
	cm := &commit{
		tree:      tree,
		author:    signature{name: c.AgentID, email: c.AgentID + "@agents.nexus", when: c.Timestamp},
		committer: signature{name: committer.name, email: committer.email, when: c.Timestamp},
		message:   commitMessage(c, sealed),
	}
	if !parent.IsZero() {
		cm.parents = []Hash{parent}
	}
	return cm
}

// logEntry turns a commit into a journal entry.
func logEntry(h Hash, cm *commit) nexus.LogEntry {
	e := nexus.LogEntry{Commit: h.String(), AgentID: cm.author.name, Time: cm.author.when, Summary: subject(cm.message)}
	tr := trailers(cm.message)
	if id, err := nexus.ParseID(tr["Context-Id"]); err == nil {
		e.ContextID = id
	}
	if id, err := nexus.ParseID(tr["Parent"]); err == nil {
		e.ParentID = id
	}
	e.Namespace, e.Type, e.Principal = tr["Namespace"], nexus.Type(tr["Type"]), tr["Principal"]
	return e
}

// entryOf builds the catalog entry of a context stored at leaf.
func entryOf(c *nexus.Context, blob Hash, leaf uint64, size int) *entry {
	return &entry{
		id: c.ID, parent: c.ParentID, ts: c.Timestamp.UnixNano(), ns: c.Namespace, typ: c.Type,
		agent: c.AgentID, blob: blob, leaf: leaf, size: uint32(size),
	}
}
