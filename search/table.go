package search

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"math"
	"slices"
	"strconv"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/vector"
)

// doc is what a search needs to filter one context without reading it.
// Ordinals are dense: the i-th indexed context is doc i, key i in both
// indexes.
type doc struct {
	id     nexus.ID
	ts     int64
	ns     uint32 // interned strings
	typ    uint32
	agent  uint32
	parent int32    // ordinal of the parent, -1 for none
	root   uint32   // ordinal of the first context of the thread
	meta   []uint64 // hashes of key=value for scalar top-level metadata
}

// table holds the docs and the strings they intern. It is appended to by
// the indexer only; readers work on a snapshot (see view).
type table struct {
	docs  []doc
	byID  map[nexus.ID]uint32
	strs  []string
	strID map[string]uint32
	post  postings
}

func newTable() *table {
	return &table{byID: map[nexus.ID]uint32{}, strID: map[string]uint32{}}
}

func (t *table) intern(s string) uint32 {
	if id, ok := t.strID[s]; ok {
		return id
	}
	id := uint32(len(t.strs))
	t.strs = append(t.strs, s)
	t.strID[s] = id
	return id
}

// add appends c and returns its ordinal.
func (t *table) add(c *nexus.Context) uint32 {
	ord := uint32(len(t.docs))
	d := doc{
		id: c.ID, ts: c.Timestamp.UnixNano(), ns: t.intern(c.Namespace), typ: t.intern(string(c.Type)),
		agent: t.intern(c.AgentID), parent: -1, root: ord, meta: metaHashes(c.Metadata),
	}
	if p, ok := t.byID[c.ParentID]; ok && !c.ParentID.IsZero() {
		d.parent = int32(p)
		d.root = t.docs[p].root
	}
	t.docs = append(t.docs, d)
	t.byID[c.ID] = ord
	t.post.add(ord, &t.docs[ord])
	return ord
}

// metaHashes hashes each top-level key with a scalar value.
func metaHashes(raw json.RawMessage) []uint64 {
	var m map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []uint64
	for k, v := range m {
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] == '{' || v[0] == '[' {
			continue
		}
		var x any
		d := json.NewDecoder(bytes.NewReader(v))
		d.UseNumber()
		if d.Decode(&x) != nil {
			continue
		}
		if h, ok := pairHash(k, x); ok {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out
}

// pairHash hashes key and a scalar value in a canonical form, so that a
// filter value and a stored value hash alike when they are equal JSON
// values (1 and 1.0 are equal numbers).
func pairHash(key string, v any) (uint64, bool) {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	switch x := v.(type) {
	case string:
		h.Write([]byte{'s'})
		h.Write([]byte(x))
	case bool:
		if x {
			h.Write([]byte("bt"))
		} else {
			h.Write([]byte("bf"))
		}
	case nil:
		h.Write([]byte{'n'})
	case float64:
		h.Write([]byte(canonFloat(x)))
	case json.Number:
		c, ok := canonNumber(string(x))
		if !ok {
			return 0, false
		}
		h.Write([]byte(c))
	default:
		return 0, false
	}
	return h.Sum64(), true
}

// canonNumber gives equal JSON numbers one spelling: integers exactly
// (also beyond 2^53, which a float64 would round), others as the shortest
// float64.
func canonNumber(s string) (string, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return "i" + strconv.FormatInt(i, 10), true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	return canonFloat(f), true
}

func canonFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		return "i" + strconv.FormatInt(int64(f), 10)
	}
	return "f" + strconv.FormatFloat(f, 'g', -1, 64)
}

// view is a snapshot of the docs for one query: ordinals at or past len
// were added after it began and are skipped.
type view struct {
	docs     []doc
	filtered bool // the request has filters
	vec      *vector.Index
	kw       *keyword.Index
	// freshOrds and freshVecs are the fresh segment when the view was
	// taken: searchable docs whose vectors are not in vec yet.
	freshOrds []uint32
	freshVecs [][]float32
	self      uint32 // for Related: the ordinal of its context
	selfFound bool
	// kept is the exact set of ordinals the filter keeps, ascending, when
	// narrowed: an equality filter listed few enough docs (see narrow).
	// The indexes then rank just those.
	kept     []uint32
	narrowed bool
}

// filter compiles the request's filters into a predicate over ordinals,
// or nil when nothing is filtered. Without a type filter, agent_state
// checkpoints are left out: they are an agent's serialized state, not
// memory to show a model. ok is false when the filter can match
// nothing (e.g. an unknown namespace).
func (t *table) filter(v view, r *nexus.SearchRequest) (pred func(uint32) bool, ok bool) {
	var checks []func(*doc) bool
	str := func(s string) (uint32, bool) { id, ok := t.strID[s]; return id, ok }
	if r.Namespace != "" {
		id, ok := str(r.Namespace)
		if !ok {
			return nil, false
		}
		checks = append(checks, func(d *doc) bool { return d.ns == id })
	}
	if r.AllowNamespace != nil {
		keep := make([]bool, len(t.strs)) // by string id: strings interned later are namespaces of docs past the view
		for id, s := range t.strs {
			keep[id] = r.AllowNamespace(s)
		}
		checks = append(checks, func(d *doc) bool { return int(d.ns) < len(keep) && keep[d.ns] })
	}
	if r.Type != "" {
		id, ok := str(string(r.Type))
		if !ok {
			return nil, false
		}
		checks = append(checks, func(d *doc) bool { return d.typ == id })
	} else if id, ok := str(string(nexus.TypeAgentState)); ok {
		// Agents' checkpoints are found only when asked for by type.
		checks = append(checks, func(d *doc) bool { return d.typ != id })
	}
	if r.AgentID != "" {
		id, ok := str(r.AgentID)
		if !ok {
			return nil, false
		}
		checks = append(checks, func(d *doc) bool { return d.agent == id })
	}
	if !r.ParentID.IsZero() {
		p, ok := t.byID[r.ParentID]
		if !ok {
			return nil, false
		}
		checks = append(checks, func(d *doc) bool { return d.parent == int32(p) })
	}
	if !r.ThreadID.IsZero() {
		o, ok := t.byID[r.ThreadID]
		if !ok {
			return nil, false
		}
		root := t.docs[o].root
		checks = append(checks, func(d *doc) bool { return d.root == root })
	}
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if !r.Since.IsZero() {
		lo = r.Since.UnixNano()
	}
	if !r.Until.IsZero() {
		hi = r.Until.UnixNano() - 1
	}
	if !r.AsOf.IsZero() {
		hi = min(hi, r.AsOf.UnixNano())
	}
	if lo != -1<<63 || hi != 1<<63-1 {
		checks = append(checks, func(d *doc) bool { return d.ts >= lo && d.ts <= hi })
	}
	if len(r.Metadata) > 0 {
		var want []uint64
		for k, val := range r.Metadata {
			h, ok := pairHash(k, val)
			if !ok {
				return nil, false
			}
			want = append(want, h)
		}
		checks = append(checks, func(d *doc) bool {
			for _, h := range want {
				if _, found := slices.BinarySearch(d.meta, h); !found {
					return false
				}
			}
			return true
		})
	}
	if len(checks) == 0 {
		return nil, true
	}
	docs := v.docs
	return func(o uint32) bool {
		if int(o) >= len(docs) {
			return false
		}
		d := &docs[o]
		for _, c := range checks {
			if !c(d) {
				return false
			}
		}
		return true
	}, true
}
