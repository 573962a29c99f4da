package gitstore

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// The shard directories are those of the leaf's index in hex, at least
// five digits, the last four one level each.
func TestShardDirs(t *testing.T) {
	for _, c := range []struct {
		leaf uint64
		want string
	}{
		{0, "0/0/0/0/0"},
		{1, "0/0/0/0/1"},
		{0x30d, "0/0/3/0/d"},
		{0xfffff, "f/f/f/f/f"},
		{0x100000, "10/0/0/0/0"},
		{0xabc12345, "abc1/2/3/4/5"},
		{1<<64 - 1, "ffffffffffff/f/f/f/f"},
	} {
		got := strings.Join(shardDirs(c.leaf), "/")
		if got != c.want {
			t.Errorf("shardDirs(%#x) = %s, want %s", c.leaf, got, c.want)
		}
		if back, err := parseShardDirs(shardDirs(c.leaf)); err != nil || back != c.leaf {
			t.Errorf("parseShardDirs(shardDirs(%#x)) = %#x, %v", c.leaf, back, err)
		}
	}
}

// checkEncodeContext fails unless encodeContext gives what encoding/json
// gives for c, bytes and error alike.
func checkEncodeContext(t *testing.T, c *nexus.Context) {
	t.Helper()
	want, werr := encodeContextReflect(c)
	got, gerr := encodeContext(c)
	if (werr != nil) != (gerr != nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("error %v, encoding/json's %v", gerr, werr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n%q\nencoding/json:\n%q", got, want)
	}
}

func TestEncodeContext_likeEncodingJSON(t *testing.T) {
	gen := nexus.IDGenerator{}
	base := func() *nexus.Context {
		ts := time.Date(2026, 12, 7, 19, 50, 1, 123456000, time.UTC)
		return &nexus.Context{
			ID: gen.New(ts), Namespace: "bench", Type: nexus.TypeObservation, AgentID: "bench-7",
			Timestamp: ts, SemanticHash: strings.Repeat("ab", 32), Content: "agent memory context ",
		}
	}
	cases := map[string]func(c *nexus.Context){
		"plain":            func(c *nexus.Context) {},
		"parent":           func(c *nexus.Context) { c.ParentID = gen.New(c.Timestamp) },
		"principal":        func(c *nexus.Context) { c.Principal = "alice" },
		"metadata":         func(c *nexus.Context) { c.Metadata = json.RawMessage(`{"a":[1,2,{"b":"<&>"}],"c":"\u2028"}`) },
		"metadata spaced":  func(c *nexus.Context) { c.Metadata = json.RawMessage(" { \"a\" : [ 1 , 2 ] }\n") },
		"metadata empty":   func(c *nexus.Context) { c.Metadata = json.RawMessage{} },
		"metadata invalid": func(c *nexus.Context) { c.Metadata = json.RawMessage(`{"a":`) },
		"escapes": func(c *nexus.Context) {
			c.Content = "q\"b\\s/<>&\b\f\n\r\t\x00\x01\x1f\x7f é 日本 \u2028\u2029 😀"
		},
		"invalid utf-8":     func(c *nexus.Context) { c.Content, c.AgentID = "a\xffb\xc3(\xed\xa0\x80z", "\xe2\x28\xa1" },
		"local timestamp":   func(c *nexus.Context) { c.Timestamp = c.Timestamp.In(time.FixedZone("x", 5*3600+1800)) },
		"zero time nanos":   func(c *nexus.Context) { c.Timestamp = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		"year 10000":        func(c *nexus.Context) { c.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"year -1":           func(c *nexus.Context) { c.Timestamp = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) },
		"zero context":      func(c *nexus.Context) { *c = nexus.Context{} },
		"long content":      func(c *nexus.Context) { c.Content = strings.Repeat("x\"y\n", 10000) },
		"type with escapes": func(c *nexus.Context) { c.Type = "a\"b"; c.Namespace = "n\\s" },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			c := base()
			mod(c)
			checkEncodeContext(t, c)
		})
	}
}

// FuzzEncodeContext compares encodeContext with encoding/json on
// arbitrary field values.
func FuzzEncodeContext(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), "ns", "observation", "agent", "", int64(1765137000123456789), "content", []byte(`{"k":"v"}`), "p", false)
	f.Add([]byte{}, "\u2028", "\x00", "\xff", "\"\\", int64(-62135596800), "a\nb\tc\x7f", []byte(" [1, 2] "), "", true)
	f.Fuzz(func(t *testing.T, ids []byte, ns, typ, agent, hash string, nanos int64, content string, meta []byte, principal string, nilMeta bool) {
		c := &nexus.Context{
			Namespace: ns, Type: nexus.Type(typ), AgentID: agent, SemanticHash: hash,
			Timestamp: time.Unix(0, nanos), Content: content, Principal: principal, Metadata: meta,
		}
		copy(c.ID[:], ids)
		if len(ids) > 16 {
			copy(c.ParentID[:], ids[16:])
		}
		if nilMeta {
			c.Metadata = nil
		}
		checkEncodeContext(t, c)
		// Timestamps far outside int64 nanoseconds, through seconds.
		c.Timestamp = time.Unix(nanos, 0)
		checkEncodeContext(t, c)
		c.Timestamp = time.Unix(nanos>>1, nanos&999999999).In(time.FixedZone("z", int(nanos%86400)))
		checkEncodeContext(t, c)
	})
}

// BenchmarkEncodeContext is the blob of the write of `nexus bench` (512
// bytes of content) through encodeContext and through encoding/json.
func BenchmarkEncodeContext(b *testing.B) {
	var gen nexus.IDGenerator
	ts := time.Date(2026, 12, 7, 19, 50, 1, 123456789, time.UTC)
	c := &nexus.Context{
		ID: gen.New(ts), Namespace: "bench", Type: nexus.TypeObservation, AgentID: "bench-7", Timestamp: ts,
		Content: strings.Repeat("agent memory context durable ", 18)[:512], Principal: "alice",
	}
	c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
	for _, e := range []struct {
		name   string
		encode func(*nexus.Context) ([]byte, error)
	}{{"fields", encodeContext}, {"encoding-json", encodeContextReflect}} {
		b.Run(e.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.encode(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// checkContextCommit fails unless appendContextCommit gives the bytes of
// the commit built and encoded, Log-Index trailer included.
func checkContextCommit(t *testing.T, c *nexus.Context, tree, parent Hash, sealed bool, index uint64) {
	t.Helper()
	cm := newCommit(c, tree, parent, sealed)
	if index > 0 {
		cm.message += logIndexTrailer + ": " + strconv.FormatUint(index, 10) + "\n"
	}
	want := encodeCommit(nil, cm)
	got := appendContextCommit([]byte("x"), c, tree, parent, sealed, index)
	if !bytes.Equal(got[1:], want) || got[0] != 'x' {
		t.Fatalf("appended\n%q\nbuilt and encoded:\n%q", got, want)
	}
}

// FuzzAppendContextCommit compares the commit the writer appends with the
// commit built and encoded.
func FuzzAppendContextCommit(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), "ns", "observation", "agent", "content\nsecond line", "hash", "alice", int64(1765137000123456789), byte(3), uint64(0))
	f.Add([]byte("0123456789abcdef0123456789abcdef"), "", "", "", "", "", "", int64(-1), byte(0), uint64(42))
	f.Fuzz(func(t *testing.T, ids []byte, ns, typ, agent, content, hash, principal string, nanos int64, flags byte, index uint64) {
		c := &nexus.Context{
			Namespace: ns, Type: nexus.Type(typ), AgentID: agent, Content: content, SemanticHash: hash,
			Principal: principal, Timestamp: time.Unix(0, nanos),
		}
		copy(c.ID[:], ids)
		if len(ids) > 16 {
			copy(c.ParentID[:], ids[16:])
		}
		var tree, parent Hash
		copy(tree[:], ids)
		if flags&1 != 0 {
			copy(parent[:], content)
			parent[0] |= 1
		}
		checkContextCommit(t, c, tree, parent, flags&2 != 0, index)
	})
}
