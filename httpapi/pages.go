package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"math"

	"github.com/nexus-mem/nexus"
)

// Pages of contexts are read from the store a few at a time and encoded
// as they come, so that a request holds at most its page's byte budget
// and one batch of contexts, never the whole listing.
const (
	firstBatch = 4   // contexts read before their size is known
	maxBatch   = 256 // contexts read at once
)

// page is the JSON encoding of a page of contexts being built within a
// byte budget.
type page struct {
	buf    bytes.Buffer
	n      int
	budget int64
	one    bytes.Buffer // the encoding of one context
}

func newPage(budget int64) *page {
	p := &page{budget: budget}
	p.buf.WriteString(`{"contexts":[`)
	return p
}

// add appends c, unless the page holds a context already and c would take
// it over its budget: then it reports false.
func (p *page) add(c *nexus.Context) (bool, error) {
	p.one.Reset()
	enc := json.NewEncoder(&p.one)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return false, nexus.WrapError(nexus.EInternal, err, "encoding context %s", c.ID)
	}
	b := bytes.TrimSuffix(p.one.Bytes(), []byte("\n"))
	if p.n > 0 && int64(p.buf.Len()+1+len(b)) > p.budget {
		return false, nil
	}
	if p.n > 0 {
		p.buf.WriteByte(',')
	}
	p.buf.Write(b)
	p.n++
	return true, nil
}

// batch is how many contexts to read next: as many as the budget left
// would hold at the average size so far, within the bounds.
func (p *page) batch(remaining int) int {
	n := firstBatch
	if p.n > 0 {
		avg := p.buf.Len() / p.n
		n = int((p.budget-int64(p.buf.Len()))/int64(max(avg, 1))) + 1
	}
	return max(1, min(n, maxBatch, remaining))
}

// bytes ends the page with its cursor, "" for the last page.
func (p *page) bytes(next string) []byte {
	p.buf.WriteByte(']')
	if next != "" {
		p.buf.WriteString(`,"next_cursor":"` + next + `"`)
	}
	p.buf.WriteString("}\n")
	return p.buf.Bytes()
}

// listPage reads the page of f, a validated filter, within the budget;
// the cursor is the id of the last context sent, as the store's own.
func (s *Server) listPage(ctx context.Context, f nexus.Filter, p *page) (string, error) {
	remaining := f.Limit
	for {
		f.Limit = p.batch(remaining)
		got, err := s.store.List(ctx, f)
		if err != nil {
			return "", err
		}
		for _, c := range got.Contexts {
			ok, err := p.add(c)
			if err != nil {
				return "", err
			}
			if !ok {
				s.limits.count(limitPage)
				return f.Cursor, nil
			}
			f.Cursor = c.ID.String()
			remaining--
		}
		if got.NextCursor == "" || remaining == 0 || len(got.Contexts) == 0 {
			return got.NextCursor, nil
		}
		f.Cursor = got.NextCursor
	}
}

// chainPage reads the chain of id, at most limit contexts (0: up to the
// root), within the budget; the cursor is the id of the first context
// not sent, whose chain continues this one.
func (s *Server) chainPage(ctx context.Context, id nexus.ID, limit int, p *page) (string, error) {
	remaining := limit
	if remaining == 0 {
		remaining = math.MaxInt
	}
	seen := map[nexus.ID]bool{}
	for cur := id; ; {
		n := p.batch(remaining)
		cs, err := s.store.Chain(ctx, cur, n)
		if err != nil {
			return "", err
		}
		for _, c := range cs {
			if seen[c.ID] {
				return "", nexus.Errorf(nexus.EInternal, "chain of %s has a cycle at %s (run `nexus fsck`)", id, c.ID)
			}
			seen[c.ID] = true
			ok, err := p.add(c)
			if err != nil {
				return "", err
			}
			if !ok {
				s.limits.count(limitPage)
				return c.ID.String(), nil
			}
			remaining--
		}
		if len(cs) < n || remaining == 0 || cs[len(cs)-1].ParentID.IsZero() {
			return "", nil
		}
		cur = cs[len(cs)-1].ParentID
	}
}

// childrenPage reads the children of id after the cursor, oldest first,
// within the budget; the cursor is the id of the last child sent.
func (s *Server) childrenPage(ctx context.Context, id nexus.ID, cursor string, p *page) (string, error) {
	// Children have no count limit, only the byte budget.
	f := nexus.Filter{ParentID: id, Order: nexus.Oldest, Cursor: cursor, Limit: math.MaxInt}
	next, err := s.listPage(ctx, f, p)
	if err != nil || p.n > 0 || cursor != "" {
		return next, err
	}
	// No children: the store says whether id exists.
	_, err = s.store.Children(ctx, id)
	return "", err
}
