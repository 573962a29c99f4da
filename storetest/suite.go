package storetest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// Option adjusts [Run] to the store under test.
type Option func(*suite)

// MaxContent tells the suite the store's content limit in bytes (default
// nexus.DefaultMaxContent), so that it can test both sides of it.
func MaxContent(n int) Option {
	return func(s *suite) { s.maxContent = n }
}

// suite holds what every subtest needs.
type suite struct {
	open       func(t *testing.T) nexus.Store
	maxContent int
}

// Run checks that the stores returned by open follow the [nexus.Store]
// contract. Every subtest calls open once and expects an empty store; open
// registers any cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) nexus.Store, opts ...Option) {
	s := &suite{open: open, maxContent: nexus.DefaultMaxContent}
	for _, o := range opts {
		o(s)
	}
	t.Run("PutGet", s.testPutGet)
	t.Run("Defaults", s.testDefaults)
	t.Run("ContentLimit", s.testContentLimit)
	t.Run("Validation", s.testValidation)
	t.Run("NotFound", s.testNotFound)
	t.Run("SequentialOrder", s.testSequentialOrder)
	t.Run("ConcurrentPuts", s.testConcurrentPuts)
	t.Run("Chain", s.testChain)
	t.Run("Children", s.testChildren)
	t.Run("List", s.testList)
	t.Run("ListInvalid", s.testListInvalid)
	t.Run("ListFromAbsentCursor", s.testListFromAbsentCursor)
	t.Run("Log", s.testLog)
	t.Run("LogInvalid", s.testLogInvalid)
	t.Run("Cancelled", s.testCancelled)
}

// mustPut stores d and checks the invariants every stored context has.
func mustPut(t testing.TB, st nexus.Store, d nexus.Draft) *nexus.Context {
	t.Helper()
	c, err := st.Put(t.Context(), d)
	if err != nil {
		t.Fatalf("Put(%s): %v", show(d), err)
	}
	if err := c.Verify(); err != nil {
		t.Fatalf("Put returned an invalid context: %v", err)
	}
	return c
}

// wantCode fails t unless err is a nexus error with the given code and a
// message for the client.
func wantCode(t testing.TB, err error, code nexus.Code) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("got no error, want code %q", code)
	case nexus.ErrorCode(err) != code:
		t.Errorf("got error %v (code %q), want code %q", err, nexus.ErrorCode(err), code)
	case nexus.ErrorMessage(err) == "":
		t.Errorf("error %v has an empty message", err)
	}
}

// listAll pages through every context matching f.
func listAll(t testing.TB, st nexus.Store, f nexus.Filter) []*nexus.Context {
	t.Helper()
	var all []*nexus.Context
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("List(%+v): paging does not end", f)
		}
		p, err := st.List(t.Context(), f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if limit := cmp.Or(f.Limit, nexus.DefaultLimit); len(p.Contexts) > limit {
			t.Fatalf("List(%+v): %d contexts on a page, over the limit of %d", f, len(p.Contexts), limit)
		}
		all = append(all, p.Contexts...)
		if p.NextCursor == "" {
			return all
		}
		f.Cursor = p.NextCursor
	}
}

// count returns the number of contexts in st.
func count(t testing.TB, st nexus.Store) int {
	t.Helper()
	return len(listAll(t, st, nexus.Filter{Limit: nexus.MaxLimit}))
}

// sameContext fails t unless got and want are the same context.
func sameContext(t testing.TB, got, want *nexus.Context) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("got context %v, want %v", got, want)
	}
	if got.ID != want.ID || got.Namespace != want.Namespace || got.Type != want.Type ||
		got.AgentID != want.AgentID || got.ParentID != want.ParentID ||
		!got.Timestamp.Equal(want.Timestamp) || got.SemanticHash != want.SemanticHash ||
		!bytes.Equal(got.Metadata, want.Metadata) || got.Content != want.Content {
		t.Errorf("context differs:\n got  %s\n want %s", show(got), show(want))
	}
}

// sameContexts fails t unless got and want hold the same contexts in the
// same order.
func sameContexts(t testing.TB, got, want []*nexus.Context) {
	t.Helper()
	if !slices.Equal(idsOf(got), idsOf(want)) {
		t.Errorf("got contexts %v, want %v", idsOf(got), idsOf(want))
		return
	}
	for i := range got {
		sameContext(t, got[i], want[i])
	}
}

func idsOf(cs []*nexus.Context) []nexus.ID {
	ids := make([]nexus.ID, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// reversed returns a reversed copy of cs.
func reversed(cs []*nexus.Context) []*nexus.Context {
	r := slices.Clone(cs)
	slices.Reverse(r)
	return r
}

// unknownID returns a valid id that no store has assigned.
func unknownID() nexus.ID {
	var g nexus.IDGenerator
	return g.New(time.Now().Add(-time.Hour))
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	const max = 400
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// big returns a string of n bytes.
func big(n int) string { return strings.Repeat("x", n) }
