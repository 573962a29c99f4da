package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

func (s *suite) testPutGet(t *testing.T) {
	st := s.open(t)
	root := mustPut(t, st, nexus.Draft{Namespace: "team-a", Type: nexus.TypeObservation, Content: "root", AgentID: "watcher"})
	d := nexus.Draft{
		Namespace: "team-a",
		Type:      nexus.TypeDecision,
		Content:   "use <git> & \"json\"\nsecond line ✓\x00 end",
		Metadata:  json.RawMessage(` {"b":1, "a":"x<&>", "n": {"z": [1, 2.50], "y": null}} `),
		AgentID:   "planner@team/1+x",
		ParentID:  root.ID,
	}
	before := time.Now()
	c := mustPut(t, st, d)
	after := time.Now()

	const wantMeta = `{"a":"x<&>","b":1,"n":{"y":null,"z":[1,2.50]}}`
	switch {
	case c.ID.IsZero() || c.ID.Compare(root.ID) <= 0:
		t.Errorf("id %s is not after the previous id %s", c.ID, root.ID)
	case c.Namespace != d.Namespace || c.Type != d.Type || c.AgentID != d.AgentID || c.ParentID != d.ParentID || c.Content != d.Content:
		t.Errorf("stored %s, want the fields of %s", show(c), show(d))
	case string(c.Metadata) != wantMeta:
		t.Errorf("metadata %s, want canonical %s", c.Metadata, wantMeta)
	case c.SemanticHash != nexus.SemanticHash(d.Type, d.Content, []byte(wantMeta)):
		t.Errorf("semantic hash %s, want nexus.SemanticHash of the canonical form", c.SemanticHash)
	case c.Timestamp.Before(before.Add(-time.Minute)) || c.Timestamp.After(after.Add(time.Minute)):
		t.Errorf("timestamp %s is not near the time of the Put (%s)", c.Timestamp, before)
	case !c.Timestamp.After(root.Timestamp):
		t.Errorf("timestamp %s is not after the previous one %s", c.Timestamp, root.Timestamp)
	}

	got, err := st.Get(t.Context(), c.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameContext(t, got, c)

	// What a caller does with a returned context does not reach the store.
	want := *c
	want.Metadata = bytes.Clone(c.Metadata)
	got.Content, got.Metadata[0] = "changed", '['
	c.Metadata[0] = '['
	again, err := st.Get(t.Context(), c.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	sameContext(t, again, &want)
}

func (s *suite) testDefaults(t *testing.T) {
	st := s.open(t)
	for _, meta := range []string{"", "null", ` { "k" : "v" } `} {
		c := mustPut(t, st, nexus.Draft{Type: nexus.TypeMemory, Content: "remember", Metadata: json.RawMessage(meta)})
		want := map[string]string{"": "{}", "null": "{}"}[meta]
		if want == "" {
			want = `{"k":"v"}`
		}
		if c.Namespace != nexus.DefaultNamespace || c.AgentID != nexus.DefaultAgent || string(c.Metadata) != want || !c.ParentID.IsZero() {
			t.Errorf("metadata %q: stored %s, want namespace %q, agent %q, metadata %s, no parent",
				meta, show(c), nexus.DefaultNamespace, nexus.DefaultAgent, want)
		}
	}
}

func (s *suite) testContentLimit(t *testing.T) {
	st := s.open(t)
	c := mustPut(t, st, nexus.Draft{Type: nexus.TypeDocument, Content: big(s.maxContent)})
	if len(c.Content) != s.maxContent {
		t.Errorf("content of %d bytes stored as %d bytes", s.maxContent, len(c.Content))
	}
	_, err := st.Put(t.Context(), nexus.Draft{Type: nexus.TypeDocument, Content: big(s.maxContent + 1)})
	wantCode(t, err, nexus.ETooLarge)
}

// invalidDraft is a Put that must fail with code.
type invalidDraft struct {
	name string
	d    nexus.Draft
	code nexus.Code
	msg  string // the message contains it, if set
}

func invalidDrafts(other nexus.ID) []invalidDraft {
	x := func(mod func(*nexus.Draft)) nexus.Draft {
		d := nexus.Draft{Type: nexus.TypeMemory, Content: "text"}
		mod(&d)
		return d
	}
	missing := unknownID()
	return []invalidDraft{
		{"no type", x(func(d *nexus.Draft) { d.Type = "" }), nexus.EInvalid, "type"},
		{"unknown type", x(func(d *nexus.Draft) { d.Type = "bogus" }), nexus.EInvalid, "bogus"},
		{"empty content", x(func(d *nexus.Draft) { d.Content = "" }), nexus.EInvalid, "content"},
		{"content not UTF-8", x(func(d *nexus.Draft) { d.Content = "ok \xff\xfe" }), nexus.EInvalid, "UTF-8"},
		{"namespace ../x", x(func(d *nexus.Draft) { d.Namespace = "../x" }), nexus.EInvalid, "namespace"},
		{"namespace with space", x(func(d *nexus.Draft) { d.Namespace = "A b" }), nexus.EInvalid, "namespace"},
		{"namespace upper case", x(func(d *nexus.Draft) { d.Namespace = "Team" }), nexus.EInvalid, "namespace"},
		{"namespace too long", x(func(d *nexus.Draft) { d.Namespace = strings.Repeat("n", 65) }), nexus.EInvalid, "namespace"},
		{"agent with space", x(func(d *nexus.Draft) { d.AgentID = "bad agent" }), nexus.EInvalid, "agent_id"},
		{"agent ../x", x(func(d *nexus.Draft) { d.AgentID = "../x" }), nexus.EInvalid, "agent_id"},
		{"metadata array", x(func(d *nexus.Draft) { d.Metadata = json.RawMessage(`[1,2]`) }), nexus.EInvalid, "metadata"},
		{"metadata string", x(func(d *nexus.Draft) { d.Metadata = json.RawMessage(`"tags"`) }), nexus.EInvalid, "metadata"},
		{"metadata number", x(func(d *nexus.Draft) { d.Metadata = json.RawMessage(`42`) }), nexus.EInvalid, "metadata"},
		{"metadata invalid JSON", x(func(d *nexus.Draft) { d.Metadata = json.RawMessage(`{bad`) }), nexus.EInvalid, "metadata"},
		{"metadata two objects", x(func(d *nexus.Draft) { d.Metadata = json.RawMessage(`{"a":1} {"b":2}`) }), nexus.EInvalid, "metadata"},
		{"metadata too large", x(func(d *nexus.Draft) { d.Metadata = json.RawMessage(`{"k":"` + big(nexus.MaxMetadata) + `"}`) }), nexus.ETooLarge, "metadata"},
		{"parent missing", x(func(d *nexus.Draft) { d.ParentID = missing }), nexus.EInvalid, missing.String()},
		{"parent in another namespace", x(func(d *nexus.Draft) { d.ParentID = other }), nexus.EInvalid, other.String()},
	}
}

func (s *suite) testValidation(t *testing.T) {
	st := s.open(t)
	other := mustPut(t, st, nexus.Draft{Namespace: "elsewhere", Type: nexus.TypeMemory, Content: "parent"})
	before := count(t, st)
	for _, tc := range invalidDrafts(other.ID) {
		t.Run(tc.name, func(t *testing.T) {
			c, err := st.Put(t.Context(), tc.d)
			wantCode(t, err, tc.code)
			if c != nil {
				t.Errorf("Put returned a context with the error: %s", show(c))
			}
			if err != nil && !strings.Contains(nexus.ErrorMessage(err), tc.msg) {
				t.Errorf("message %q does not name %q", nexus.ErrorMessage(err), tc.msg)
			}
		})
	}
	if after := count(t, st); after != before {
		t.Errorf("invalid puts changed the store: %d contexts before, %d after", before, after)
	}
}

func (s *suite) testNotFound(t *testing.T) {
	st := s.open(t)
	mustPut(t, st, nexus.Draft{Type: nexus.TypeMemory, Content: "present"})
	id := unknownID()
	_, err := st.Get(t.Context(), id)
	wantCode(t, err, nexus.ENotFound)
	_, err = st.Chain(t.Context(), id, 0)
	wantCode(t, err, nexus.ENotFound)
	_, err = st.Children(t.Context(), id)
	wantCode(t, err, nexus.ENotFound)
}

func (s *suite) testSequentialOrder(t *testing.T) {
	st := s.open(t)
	var prev *nexus.Context
	for i := range 200 {
		c := mustPut(t, st, nexus.Draft{Type: nexus.TypeObservation, Content: "tick " + strconv.Itoa(i)})
		if prev != nil && (c.ID.Compare(prev.ID) <= 0 || !c.Timestamp.After(prev.Timestamp)) {
			t.Fatalf("put %d: id %s at %s does not follow id %s at %s",
				i, c.ID, c.Timestamp.Format(time.RFC3339Nano), prev.ID, prev.Timestamp.Format(time.RFC3339Nano))
		}
		prev = c
	}
	if n := count(t, st); n != 200 {
		t.Errorf("store holds %d contexts after 200 puts", n)
	}
}

func (s *suite) testConcurrentPuts(t *testing.T) {
	const writers, each = 8, 50
	st := s.open(t)
	results := make([][]*nexus.Context, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				c, err := st.Put(t.Context(), nexus.Draft{Type: nexus.TypeResult, Content: "w" + strconv.Itoa(w) + " #" + strconv.Itoa(i), AgentID: "w" + strconv.Itoa(w)})
				if err != nil {
					t.Errorf("writer %d put %d: %v", w, i, err)
					return
				}
				results[w] = append(results[w], c)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	all := checkUniqueAndOrdered(t, results)
	if n := count(t, st); n != writers*each || len(all) != writers*each {
		t.Errorf("store holds %d contexts, %d distinct acknowledged, want %d", n, len(all), writers*each)
	}
}

// checkUniqueAndOrdered checks that no id was handed out twice, that each
// writer saw increasing ids, and that ordering by id orders by timestamp.
func checkUniqueAndOrdered(t *testing.T, results [][]*nexus.Context) []*nexus.Context {
	seen := make(map[nexus.ID]bool)
	var all []*nexus.Context
	for w, cs := range results {
		for i, c := range cs {
			if seen[c.ID] {
				t.Errorf("id %s handed out twice", c.ID)
			}
			seen[c.ID] = true
			if i > 0 && c.ID.Compare(cs[i-1].ID) <= 0 {
				t.Errorf("writer %d: id %s after %s", w, c.ID, cs[i-1].ID)
			}
		}
		all = append(all, cs...)
	}
	slices.SortFunc(all, func(a, b *nexus.Context) int { return a.ID.Compare(b.ID) })
	for i := 1; i < len(all); i++ {
		if !all[i].Timestamp.After(all[i-1].Timestamp) {
			t.Errorf("id %s (%s) sorts after %s (%s) but its timestamp is not later",
				all[i].ID, all[i].Timestamp.Format(time.RFC3339Nano), all[i-1].ID, all[i-1].Timestamp.Format(time.RFC3339Nano))
		}
	}
	return all
}

func (s *suite) testCancelled(t *testing.T) {
	st := s.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c, err := st.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: "never"})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v, %v; want an error wrapping context.Canceled", show(c), err)
	}
	if n := count(t, st); n != 0 {
		t.Errorf("Put with a cancelled context stored %d contexts", n)
	}
}
