package storetest

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

func (s *suite) testChain(t *testing.T) {
	st := s.open(t)
	put := func(content string, parent nexus.ID) *nexus.Context {
		return mustPut(t, st, nexus.Draft{Namespace: "thread", Type: nexus.TypeConversation, Content: content, ParentID: parent})
	}
	root := put("question", nexus.ZeroID)
	child := put("answer", root.ID)
	grand := put("follow-up", child.ID)
	put("other answer", root.ID)

	for _, tc := range []struct {
		id    nexus.ID
		limit int
		want  []*nexus.Context
	}{
		{grand.ID, 0, []*nexus.Context{grand, child, root}},
		{grand.ID, 10, []*nexus.Context{grand, child, root}},
		{grand.ID, 3, []*nexus.Context{grand, child, root}},
		{grand.ID, 2, []*nexus.Context{grand, child}},
		{grand.ID, 1, []*nexus.Context{grand}},
		{child.ID, 0, []*nexus.Context{child, root}},
		{root.ID, 0, []*nexus.Context{root}},
	} {
		got, err := st.Chain(t.Context(), tc.id, tc.limit)
		if err != nil {
			t.Errorf("Chain(%s, %d): %v", tc.id, tc.limit, err)
			continue
		}
		sameContexts(t, got, tc.want)
	}
	_, err := st.Chain(t.Context(), grand.ID, -1)
	wantCode(t, err, nexus.EInvalid)
}

func (s *suite) testChildren(t *testing.T) {
	st := s.open(t)
	put := func(content string, parent nexus.ID) *nexus.Context {
		return mustPut(t, st, nexus.Draft{Namespace: "tree", Type: nexus.Types[len(content)%len(nexus.Types)], Content: content, ParentID: parent})
	}
	root := put("root", nexus.ZeroID)
	k1 := put("first", root.ID)
	other := put("unrelated", nexus.ZeroID)
	k2 := put("second", root.ID)
	g1 := put("grandchild", k1.ID)
	put("unrelated child", other.ID)
	k3 := put("third", root.ID)

	for _, tc := range []struct {
		id   nexus.ID
		want []*nexus.Context
	}{
		{root.ID, []*nexus.Context{k1, k2, k3}},
		{k1.ID, []*nexus.Context{g1}},
		{k3.ID, nil},
	} {
		got, err := st.Children(t.Context(), tc.id)
		if err != nil {
			t.Errorf("Children(%s): %v", tc.id, err)
			continue
		}
		sameContexts(t, got, tc.want)
	}
}

// listFixture stores 24 contexts over two namespaces, three types, four
// agents and a few parents, and returns them oldest first.
func listFixture(t *testing.T, st nexus.Store) []*nexus.Context {
	namespaces := []string{"alpha", "beta"}
	types := []nexus.Type{nexus.TypeCode, nexus.TypeAnalysis, nexus.TypeSummary}
	agents := []string{"ann", "bob", "cy", "dee"}
	var all []*nexus.Context
	for i := range 24 {
		d := nexus.Draft{
			Namespace: namespaces[i%2],
			Type:      types[i%3],
			AgentID:   agents[i%4],
			Content:   "item " + strconv.Itoa(i),
		}
		if i >= 4 && i%5 == 0 {
			d.ParentID = all[i-4].ID // same parity, so same namespace
		}
		all = append(all, mustPut(t, st, d))
	}
	return all
}

func (s *suite) testList(t *testing.T) {
	st := s.open(t)
	all := listFixture(t, st)
	where := func(keep func(c *nexus.Context) bool) []*nexus.Context {
		var out []*nexus.Context
		for _, c := range all {
			if keep(c) {
				out = append(out, c)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    nexus.Filter
		want []*nexus.Context // oldest first
	}{
		{"everything", nexus.Filter{}, all},
		{"namespace", nexus.Filter{Namespace: "beta"}, where(func(c *nexus.Context) bool { return c.Namespace == "beta" })},
		{"type", nexus.Filter{Type: nexus.TypeAnalysis}, where(func(c *nexus.Context) bool { return c.Type == nexus.TypeAnalysis })},
		{"agent", nexus.Filter{AgentID: "cy"}, where(func(c *nexus.Context) bool { return c.AgentID == "cy" })},
		{"parent", nexus.Filter{ParentID: all[6].ID}, []*nexus.Context{all[10]}},
		{"namespace and type", nexus.Filter{Namespace: "alpha", Type: nexus.TypeCode}, where(func(c *nexus.Context) bool {
			return c.Namespace == "alpha" && c.Type == nexus.TypeCode
		})},
		{"since is inclusive", nexus.Filter{Since: all[10].Timestamp}, all[10:]},
		{"until is exclusive", nexus.Filter{Until: all[10].Timestamp}, all[:10]},
		{"since and until", nexus.Filter{Since: all[5].Timestamp, Until: all[15].Timestamp}, all[5:15]},
		{"since in another zone", nexus.Filter{Since: all[20].Timestamp.In(time.FixedZone("X", -7*3600))}, all[20:]},
		{"no match", nexus.Filter{Namespace: "gamma"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { checkListing(t, st, tc.f, tc.want) })
	}
}

// checkListing lists f in both orders, in one page and in pages of several
// sizes, and compares with want (oldest first).
func checkListing(t *testing.T, st nexus.Store, f nexus.Filter, want []*nexus.Context) {
	for _, order := range []nexus.Order{"", nexus.Newest, nexus.Oldest} {
		w := want
		if order != nexus.Oldest {
			w = reversed(want)
		}
		f.Order = order
		p, err := st.List(t.Context(), f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if len(p.Contexts) != len(w) || p.NextCursor != "" {
			t.Errorf("List(%+v): %d contexts and cursor %q, want %d and no cursor", f, len(p.Contexts), p.NextCursor, len(w))
		}
		sameContexts(t, p.Contexts, w)
		for _, limit := range []int{1, 5, 7, len(w)} {
			if limit == 0 {
				continue
			}
			f.Limit = limit
			sameContexts(t, listAll(t, st, f), w)
			f.Limit = 0
		}
	}
}

func (s *suite) testListInvalid(t *testing.T) {
	st := s.open(t)
	now := time.Now()
	for name, f := range map[string]nexus.Filter{
		"negative limit":     {Limit: -1},
		"limit over maximum": {Limit: nexus.MaxLimit + 1},
		"cursor":             {Cursor: "not-an-id"},
		"order":              {Order: "sideways"},
		"until before since": {Since: now, Until: now.Add(-time.Second)},
		"until equals since": {Since: now, Until: now},
		"namespace":          {Namespace: "A b"},
		"type":               {Type: "bogus"},
		"agent":              {AgentID: "bad agent"},
	} {
		_, err := st.List(t.Context(), f)
		if nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("%s: List(%+v) = %v, want code invalid", name, f, err)
		}
	}
}

// A cursor is a position, not a reference: an id that names no context
// (one from another store, or removed since) pages from where it would
// sort. Resuming the event stream from a context a restore rolled back
// relies on it.
func (s *suite) testListFromAbsentCursor(t *testing.T) {
	st := s.open(t)
	var all []*nexus.Context
	for i := range 6 {
		all = append(all, mustPut(t, st, nexus.Draft{Namespace: []string{"a", "b"}[i%2], Type: nexus.TypeMemory, Content: "item " + strconv.Itoa(i)}))
		if i == 2 {
			time.Sleep(2 * time.Millisecond) // the next id starts a later millisecond
		}
	}
	// An id of another store, between the third and the fourth context.
	var g nexus.IDGenerator
	g.Observe(all[2].ID)
	between := g.New(all[2].ID.Time())
	if between.Compare(all[3].ID) >= 0 {
		t.Skipf("the store gave %s and %s in one millisecond: no id sorts between them", all[2].ID, all[3].ID)
	}
	for _, tc := range []struct {
		f    nexus.Filter
		want []*nexus.Context
	}{
		{nexus.Filter{Order: nexus.Oldest}, all[3:]},
		{nexus.Filter{Order: nexus.Newest}, reversed(all[:3])},
		{nexus.Filter{Order: nexus.Oldest, Namespace: "a"}, []*nexus.Context{all[4]}},
		{nexus.Filter{Order: nexus.Oldest, Limit: 2}, all[3:5]},
	} {
		tc.f.Cursor = between.String()
		p, err := st.List(t.Context(), tc.f)
		if err != nil {
			t.Fatalf("List(%+v): %v", tc.f, err)
		}
		sameContexts(t, p.Contexts, tc.want)
	}
}

func (s *suite) testLog(t *testing.T) {
	st := s.open(t)
	var puts []*nexus.Context
	for i := range 7 {
		d := nexus.Draft{Namespace: "journal", Type: nexus.TypeResult, AgentID: "agent-" + strconv.Itoa(i%2), Content: "entry " + strconv.Itoa(i) + "\ndetails"}
		if i > 0 {
			d.ParentID = puts[i-1].ID
		}
		puts = append(puts, mustPut(t, st, d))
	}
	full, err := st.Log(t.Context(), nexus.LogFilter{Limit: nexus.MaxLimit})
	if err != nil {
		t.Fatalf("Log: %v", err)
	}
	if full.NextCursor != "" {
		t.Errorf("Log of everything has a next cursor %q", full.NextCursor)
	}
	checkLogEntries(t, full.Entries, reversed(puts))

	for _, limit := range []int{1, 2, 3} {
		paged := logAll(t, st, limit)
		if !slices.EqualFunc(paged, full.Entries, sameEntry) {
			t.Errorf("Log in pages of %d: got %v, want %v", limit, paged, full.Entries)
		}
	}
}

// checkLogEntries checks that the entries naming contexts describe want,
// newest first, and that every commit is a distinct 40-digit hash.
func checkLogEntries(t *testing.T, entries []nexus.LogEntry, want []*nexus.Context) {
	commits := make(map[string]bool)
	var named []nexus.LogEntry
	for _, e := range entries {
		if len(e.Commit) != 40 || commits[e.Commit] || (&nexus.LogFilter{Cursor: e.Commit}).Validate() != nil {
			t.Errorf("entry %+v: commit is not a distinct 40-digit hash", e)
		}
		commits[e.Commit] = true
		if !e.ContextID.IsZero() {
			named = append(named, e)
		}
	}
	if len(named) != len(want) {
		t.Fatalf("log names %d contexts, want %d", len(named), len(want))
	}
	for i, e := range named {
		c := want[i]
		if e.ContextID != c.ID || e.Namespace != c.Namespace || e.Type != c.Type || e.AgentID != c.AgentID ||
			e.ParentID != c.ParentID || e.Summary == "" || e.Time.Sub(c.Timestamp).Abs() > 2*time.Second {
			t.Errorf("log entry %d is %+v, want one describing %s", i, e, show(c))
		}
	}
}

// logAll pages through the whole journal limit entries at a time.
func logAll(t *testing.T, st nexus.Store, limit int) []nexus.LogEntry {
	var all []nexus.LogEntry
	f := nexus.LogFilter{Limit: limit}
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatalf("Log: paging does not end")
		}
		p, err := st.Log(t.Context(), f)
		if err != nil {
			t.Fatalf("Log(%+v): %v", f, err)
		}
		if len(p.Entries) > limit {
			t.Fatalf("Log(%+v): %d entries, over the limit", f, len(p.Entries))
		}
		all = append(all, p.Entries...)
		if p.NextCursor == "" {
			return all
		}
		f.Cursor = p.NextCursor
	}
}

func sameEntry(a, b nexus.LogEntry) bool {
	return a.Commit == b.Commit && a.ContextID == b.ContextID && a.Namespace == b.Namespace &&
		a.Type == b.Type && a.AgentID == b.AgentID && a.ParentID == b.ParentID &&
		a.Time.Equal(b.Time) && a.Summary == b.Summary
}

func (s *suite) testLogInvalid(t *testing.T) {
	st := s.open(t)
	mustPut(t, st, nexus.Draft{Type: nexus.TypeMemory, Content: "one"})
	for name, f := range map[string]nexus.LogFilter{
		"negative limit":      {Limit: -1},
		"limit over maximum":  {Limit: nexus.MaxLimit + 1},
		"cursor not hex":      {Cursor: "HEAD"},
		"cursor too short":    {Cursor: "abc123"},
		"cursor of no commit": {Cursor: "0123456789abcdef0123456789abcdef01234567"},
	} {
		_, err := st.Log(t.Context(), f)
		if nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("%s: Log(%+v) = %v, want code invalid", name, f, err)
		}
	}
}
