package gitstore

import (
	"context"
	"errors"
	"sort"

	"github.com/nexus-mem/nexus"
)

// Get returns the context with the given id.
func (s *Store) Get(ctx context.Context, id nexus.ID) (*nexus.Context, error) {
	b, err := s.GetRaw(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err := decodeContext(b)
	if err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "context %s is unreadable (run `nexus fsck`)", id)
	}
	return c, nil
}

// GetRaw returns the stored JSON encoding of a context: the L1 cache if it
// holds a verified copy, else the blob from git (whose hash is verified).
func (s *Store) GetRaw(ctx context.Context, id nexus.ID) ([]byte, error) {
	e, ok := s.cat.get(id)
	if !ok {
		return nil, nexus.Errorf(nexus.ENotFound, "context %s not found", id)
	}
	return s.blobOf(e)
}

func (s *Store) blobOf(e *entry) ([]byte, error) {
	if b := s.cache.get(e.id); b != nil {
		return b, nil
	}
	b, err := s.repo.readTyped(e.blob, objBlob)
	if err == nil {
		b, err = s.unseal(b)
	}
	if err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "context %s is unreadable (run `nexus fsck`)", e.id)
	}
	s.cache.put(e.id, b)
	return b, nil
}

func (s *Store) contextOf(e *entry) (*nexus.Context, error) {
	b, err := s.blobOf(e)
	if err != nil {
		return nil, err
	}
	c, err := decodeContext(b)
	if err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "context %s is unreadable (run `nexus fsck`)", e.id)
	}
	return c, nil
}

func (s *Store) contexts(ctx context.Context, ents []*entry) ([]*nexus.Context, error) {
	out := make([]*nexus.Context, 0, len(ents))
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := s.contextOf(e)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// maxChain bounds a chain walk when no limit is given.
const maxChain = 100000

// Chain returns the context and its ancestors up to the root. A cycle,
// impossible through Put but possible in a damaged repository, is an error.
func (s *Store) Chain(ctx context.Context, id nexus.ID, limit int) ([]*nexus.Context, error) {
	if limit < 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "limit %d is negative", limit)
	}
	if limit == 0 || limit > maxChain {
		limit = maxChain
	}
	var ents []*entry
	seen := map[nexus.ID]bool{}
	s.cat.mu.RLock()
	for cur := id; !cur.IsZero() && len(ents) < limit; {
		e, ok := s.cat.byID[cur]
		if !ok {
			s.cat.mu.RUnlock()
			if cur == id {
				return nil, nexus.Errorf(nexus.ENotFound, "context %s not found", id)
			}
			return nil, nexus.Errorf(nexus.EInternal, "chain of %s is broken: ancestor %s is missing (run `nexus fsck`)", id, cur)
		}
		if seen[cur] {
			s.cat.mu.RUnlock()
			return nil, nexus.Errorf(nexus.EInternal, "chain of %s has a cycle at %s (run `nexus fsck`)", id, cur)
		}
		seen[cur] = true
		ents = append(ents, e)
		cur = e.parent
	}
	s.cat.mu.RUnlock()
	return s.contexts(ctx, ents)
}

// maxChildren bounds Children; List with a parent filter pages past it.
const maxChildren = 10000

// Children returns the direct children of id, oldest first.
func (s *Store) Children(ctx context.Context, id nexus.ID) ([]*nexus.Context, error) {
	s.cat.mu.RLock()
	if _, ok := s.cat.byID[id]; !ok {
		s.cat.mu.RUnlock()
		return nil, nexus.Errorf(nexus.ENotFound, "context %s not found", id)
	}
	kids := s.cat.children[id]
	if len(kids) > maxChildren {
		kids = kids[:maxChildren]
	}
	kids = append([]*entry(nil), kids...)
	s.cat.mu.RUnlock()
	return s.contexts(ctx, kids)
}

// List returns one page of contexts matching f.
func (s *Store) List(ctx context.Context, f nexus.Filter) (*nexus.Page, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var cursor nexus.ID
	if f.Cursor != "" {
		cursor, _ = nexus.ParseID(f.Cursor) // validated above
	}
	s.cat.mu.RLock()
	src := s.cat.ordered
	switch {
	case !f.ParentID.IsZero():
		src = s.cat.children[f.ParentID]
	case f.Namespace != "":
		src = s.cat.byNS[f.Namespace]
	}
	ents, more := scan(src, &f, cursor)
	s.cat.mu.RUnlock()
	out, err := s.contexts(ctx, ents)
	if err != nil {
		return nil, err
	}
	p := &nexus.Page{Contexts: out}
	if more && len(ents) > 0 {
		p.NextCursor = ents[len(ents)-1].id.String()
	}
	return p, nil
}

// scan walks src (sorted by id) from the cursor in f's order and returns up
// to f.Limit matching entries, and whether more may follow.
func scan(src []*entry, f *nexus.Filter, cursor nexus.ID) ([]*entry, bool) {
	since, until := int64(0), int64(0)
	if !f.Since.IsZero() {
		since = f.Since.UnixNano()
	}
	if !f.Until.IsZero() {
		until = f.Until.UnixNano()
	}
	match := func(e *entry) bool {
		return (f.Namespace == "" || e.ns == f.Namespace) && (f.Type == "" || e.typ == f.Type) &&
			(f.AgentID == "" || e.agent == f.AgentID) && (since == 0 || e.ts >= since) && (until == 0 || e.ts < until)
	}
	var out []*entry
	if f.Order == nexus.Oldest {
		i := 0
		if !cursor.IsZero() {
			i = sort.Search(len(src), func(i int) bool { return src[i].id.Compare(cursor) > 0 })
		} else if since != 0 {
			i = sort.Search(len(src), func(i int) bool { return src[i].ts >= since })
		}
		for ; i < len(src); i++ {
			if until != 0 && src[i].ts >= until {
				return out, false
			}
			if match(src[i]) {
				if len(out) == f.Limit {
					return out, true
				}
				out = append(out, src[i])
			}
		}
		return out, false
	}
	i := len(src) - 1
	if !cursor.IsZero() {
		i = sort.Search(len(src), func(i int) bool { return src[i].id.Compare(cursor) >= 0 }) - 1
	} else if until != 0 {
		i = sort.Search(len(src), func(i int) bool { return src[i].ts >= until }) - 1
	}
	for ; i >= 0; i-- {
		if since != 0 && src[i].ts < since {
			return out, false
		}
		if match(src[i]) {
			if len(out) == f.Limit {
				return out, true
			}
			out = append(out, src[i])
		}
	}
	return out, false
}

// Log returns the commit journal from head (or the cursor) backwards.
func (s *Store) Log(ctx context.Context, f nexus.LogFilter) (*nexus.LogPage, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	cur := s.Head()
	if f.Cursor != "" {
		h, _ := ParseHash(f.Cursor)
		if !s.repo.hasObject(h) {
			return nil, nexus.Errorf(nexus.EInvalid, "cursor %s is not a commit of this store", f.Cursor)
		}
		cur = h
	}
	page := &nexus.LogPage{Entries: []nexus.LogEntry{}}
	for !cur.IsZero() && len(page.Entries) < f.Limit {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cm, err := s.readCommit(cur)
		if err != nil {
			return nil, err
		}
		page.Entries = append(page.Entries, s.sealedSummary(logEntry(cur, cm)))
		cur = zeroHash
		if len(cm.parents) > 0 {
			cur = cm.parents[0]
		}
	}
	if !cur.IsZero() {
		page.NextCursor = cur.String()
	}
	return page, nil
}

// sealedSummary gives the entry of an encrypted store's commit, whose
// message holds no summary, the summary of its context while it is live.
func (s *Store) sealedSummary(e nexus.LogEntry) nexus.LogEntry {
	if !s.Encrypted() || e.ContextID.IsZero() {
		return e
	}
	if ent, ok := s.cat.get(e.ContextID); ok {
		if c, err := s.contextOf(ent); err == nil {
			if sum := c.Summary(72); sum != "" {
				e.Summary = string(c.Type) + ": " + sum
			} else {
				e.Summary = string(c.Type) + ": (no summary)"
			}
		}
	}
	return e
}

func (s *Store) readCommit(h Hash) (*commit, error) {
	data, err := s.repo.readTyped(h, objCommit)
	if err != nil {
		var me *MissingError
		if errors.As(err, &me) {
			return nil, nexus.WrapError(nexus.EInvalid, err, "%s is not a commit of this store", h)
		}
		return nil, nexus.WrapError(nexus.EInternal, err, "commit %s is unreadable (run `nexus fsck`)", h)
	}
	cm, err := decodeCommit(data)
	if err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "commit %s is unreadable (run `nexus fsck`)", h)
	}
	return cm, nil
}
