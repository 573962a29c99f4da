package gitstore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	var buf [1 + leafDigits]string
	return appendShardDirs(buf[:0], leaf)
}

// hexDigits are the one-digit directory names, shared by every path.
var hexDigits = [16]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"}

// appendShardDirs appends the directory names of leaf to dirs. Only a top
// level of more than one digit (past 2^20 contexts in a namespace) is
// allocated.
func appendShardDirs(dirs []string, leaf uint64) []string {
	low := leafDigits - 1
	top := leaf >> (4 * low)
	if top < 16 {
		dirs = append(dirs, hexDigits[top])
	} else {
		dirs = append(dirs, strconv.FormatUint(top, 16))
	}
	for i := low - 1; i >= 0; i-- {
		dirs = append(dirs, hexDigits[(leaf>>(4*i))&15])
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
// always encodes to the same bytes: those of encoding/json's Encoder with
// SetEscapeHTML(false) (FuzzEncodeContext compares the two), written here
// field by field into one buffer instead of through reflection.
func encodeContext(c *nexus.Context) ([]byte, error) {
	ts := c.Timestamp.UTC()
	if y := ts.Year(); y < 0 || y > 9999 {
		return encodeContextReflect(c) // encoding/json's error for it
	}
	n := 200 + len(c.Namespace) + len(c.Type) + len(c.AgentID) + len(c.Metadata) + len(c.Content) + len(c.Principal)
	b := make([]byte, 0, n+n/8)
	b = append(b, `{"id":"`...)
	b, _ = c.ID.AppendText(b)
	b = append(b, `","namespace":`...)
	b = appendJSONString(b, c.Namespace)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, string(c.Type))
	b = append(b, `,"agent_id":`...)
	b = appendJSONString(b, c.AgentID)
	if !c.ParentID.IsZero() {
		b = append(b, `,"parent_id":"`...)
		b, _ = c.ParentID.AppendText(b)
		b = append(b, '"')
	}
	b = append(b, `,"timestamp":"`...)
	b = ts.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","semantic_hash":`...)
	b = appendJSONString(b, c.SemanticHash)
	b = append(b, `,"metadata":`...)
	if c.Metadata == nil {
		b = append(b, "null"...)
	} else {
		buf := bytes.NewBuffer(b)
		if err := json.Compact(buf, c.Metadata); err != nil {
			return encodeContextReflect(c) // encoding/json's error for it
		}
		b = buf.Bytes()
	}
	b = append(b, `,"content":`...)
	b = appendJSONString(b, c.Content)
	if c.Principal != "" {
		b = append(b, `,"principal":`...)
		b = appendJSONString(b, c.Principal)
	}
	return append(b, "}\n"...), nil
}

// encodeContextReflect is encodeContext through encoding/json.
func encodeContextReflect(c *nexus.Context) ([]byte, error) {
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

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it without HTML escaping: quote, backslash and control
// characters; invalid UTF-8 as U+FFFD; U+2028 and U+2029 as \u escapes.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
	return string(appendCommitMessage(nil, c, sealed))
}

// appendCommitMessage appends the commit message of c to dst.
func appendCommitMessage(dst []byte, c *nexus.Context, sealed bool) []byte {
	dst = append(dst, c.Type...)
	dst = append(dst, ": "...)
	if sealed {
		dst = append(dst, sealedSummary...)
	} else if s := c.Summary(72); s != "" {
		dst = append(dst, s...)
	} else {
		dst = append(dst, "(no summary)"...)
	}
	dst = append(dst, "\n\nContext-Id: "...)
	dst, _ = c.ID.AppendText(dst)
	dst = append(dst, "\nType: "...)
	dst = append(dst, c.Type...)
	dst = append(dst, "\nNamespace: "...)
	dst = append(dst, c.Namespace...)
	if !c.ParentID.IsZero() {
		dst = append(dst, "\nParent: "...)
		dst, _ = c.ParentID.AppendText(dst)
	}
	if !sealed {
		dst = append(dst, "\nSemantic-Hash: "...)
		dst = append(dst, c.SemanticHash...)
	}
	if c.Principal != "" {
		dst = append(dst, "\nPrincipal: "...)
		dst = append(dst, c.Principal...)
	}
	return append(dst, '\n')
}

// appendContextCommit appends the commit object of context c on top of
// parent (zero: none) with the given tree, with a Log-Index trailer if
// index > 0: the bytes of encodeCommit(newCommit(c, tree, parent, sealed))
// with that trailer, written into dst without building the commit.
func appendContextCommit(dst []byte, c *nexus.Context, tree, parent Hash, sealed bool, index uint64) []byte {
	dst = append(dst, "tree "...)
	dst = hex.AppendEncode(dst, tree[:])
	if !parent.IsZero() {
		dst = append(dst, "\nparent "...)
		dst = hex.AppendEncode(dst, parent[:])
	}
	when := c.Timestamp.Unix()
	dst = append(dst, "\nauthor "...)
	dst = appendIdent(dst, c.AgentID, c.AgentID, "@agents.nexus", when)
	dst = append(dst, "\ncommitter "...)
	dst = appendIdent(dst, committer.name, committer.email, "", when)
	dst = append(dst, "\n\n"...)
	dst = appendCommitMessage(dst, c, sealed)
	if index > 0 {
		dst = append(dst, logIndexTrailer+": "...)
		dst = strconv.AppendUint(dst, index, 10)
		dst = append(dst, '\n')
	}
	return dst
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
