package storetest

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"iter"
	"slices"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// MemConfig configures a [MemStore]. The zero value gives the defaults.
type MemConfig struct {
	// MaxContent bounds a context's content in bytes; 0 means
	// nexus.DefaultMaxContent.
	MaxContent int
	// Now is the clock; nil means time.Now. Timestamps stay strictly
	// increasing even if it stands still or steps back.
	Now func() time.Time
}

// MemStore is an in-memory [nexus.Store] that follows the contract exactly.
// It is safe for concurrent use. Contexts handed out are copies: changing
// them does not change the store.
type MemStore struct {
	maxContent int
	now        func() time.Time
	ids        nexus.IDGenerator

	mu       sync.RWMutex
	byID     map[nexus.ID]*nexus.Context
	ordered  []*nexus.Context // oldest first, so by id and by timestamp
	children map[nexus.ID][]*nexus.Context
	journal  []nexus.LogEntry // oldest first
	last     time.Time        // timestamp of the newest context
}

var _ nexus.Store = (*MemStore)(nil)

// NewMemStore returns an empty store with the default configuration.
func NewMemStore() *MemStore { return NewMemStoreWith(MemConfig{}) }

// NewMemStoreWith returns an empty store configured by cfg.
func NewMemStoreWith(cfg MemConfig) *MemStore {
	if cfg.MaxContent <= 0 {
		cfg.MaxContent = nexus.DefaultMaxContent
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemStore{
		maxContent: cfg.MaxContent,
		now:        cfg.Now,
		byID:       make(map[nexus.ID]*nexus.Context),
		children:   make(map[nexus.ID][]*nexus.Context),
	}
}

// Len returns the number of contexts in the store.
func (s *MemStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ordered)
}

// Put validates d, assigns an id and a timestamp and stores the context.
func (s *MemStore) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	if err := live(ctx); err != nil {
		return nil, err
	}
	if err := d.Normalize(s.maxContent); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkParentLocked(d); err != nil {
		return nil, err
	}
	c := &nexus.Context{
		Namespace:    d.Namespace,
		Type:         d.Type,
		AgentID:      d.AgentID,
		ParentID:     d.ParentID,
		Timestamp:    s.nextTimeLocked(),
		SemanticHash: nexus.SemanticHash(d.Type, d.Content, d.Metadata),
		Metadata:     d.Metadata, // a fresh buffer from Normalize
		Content:      d.Content,
	}
	c.ID = s.ids.New(c.Timestamp)
	s.addLocked(c)
	return clone(c), nil
}

// checkParentLocked requires d's parent, if any, to exist in d's namespace.
func (s *MemStore) checkParentLocked(d nexus.Draft) error {
	if d.ParentID.IsZero() {
		return nil
	}
	p, ok := s.byID[d.ParentID]
	if !ok {
		return nexus.Errorf(nexus.EInvalid, "parent %s does not exist", d.ParentID)
	}
	if p.Namespace != d.Namespace {
		return nexus.Errorf(nexus.EInvalid, "parent %s is in namespace %q, not %q", d.ParentID, p.Namespace, d.Namespace)
	}
	return nil
}

// nextTimeLocked returns the clock's time, moved just past the newest
// timestamp if the clock has not advanced beyond it.
func (s *MemStore) nextTimeLocked() time.Time {
	t := s.now().UTC()
	if !t.After(s.last) {
		t = s.last.Add(time.Nanosecond)
	}
	s.last = t
	return t
}

func (s *MemStore) addLocked(c *nexus.Context) {
	s.byID[c.ID] = c
	s.ordered = append(s.ordered, c)
	if !c.ParentID.IsZero() {
		s.children[c.ParentID] = append(s.children[c.ParentID], c)
	}
	sum := sha1.Sum([]byte(c.ID.String()))
	s.journal = append(s.journal, nexus.LogEntry{
		Commit:    hex.EncodeToString(sum[:]),
		ContextID: c.ID,
		Namespace: c.Namespace,
		Type:      c.Type,
		AgentID:   c.AgentID,
		ParentID:  c.ParentID,
		Time:      c.Timestamp,
		Summary:   c.Summary(72),
	})
}

// Get returns the context with the given id, or a not_found error.
func (s *MemStore) Get(ctx context.Context, id nexus.ID) (*nexus.Context, error) {
	if err := live(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byID[id]
	if !ok {
		return nil, notFound(id)
	}
	return clone(c), nil
}

// Chain returns the context followed by its ancestors, at most limit of
// them (0: all). Parents always exist before their children, so a chain
// cannot have a cycle or a gap.
func (s *MemStore) Chain(ctx context.Context, id nexus.ID, limit int) ([]*nexus.Context, error) {
	if err := live(ctx); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "limit %d is negative", limit)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.byID[id]
	if !ok {
		return nil, notFound(id)
	}
	var out []*nexus.Context
	for ; c != nil && (limit == 0 || len(out) < limit); c = s.byID[c.ParentID] {
		out = append(out, clone(c))
	}
	return out, nil
}

// Children returns the direct children of id, oldest first.
func (s *MemStore) Children(ctx context.Context, id nexus.ID) ([]*nexus.Context, error) {
	if err := live(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.byID[id]; !ok {
		return nil, notFound(id)
	}
	return cloneAll(s.children[id]), nil
}

// List returns one page of the contexts matching f. The cursor is the id of
// the last context of the previous page; the next page starts strictly
// after it in f.Order.
func (s *MemStore) List(ctx context.Context, f nexus.Filter) (*nexus.Page, error) {
	if err := live(ctx); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var cursor nexus.ID
	if f.Cursor != "" {
		cursor, _ = nexus.ParseID(f.Cursor) // checked by Validate
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Collect one more than the limit to learn whether a next page exists.
	var found []*nexus.Context
	for c := range s.scanLocked(f.Order) {
		if !afterCursor(c.ID, cursor, f.Order) || !matches(c, &f) {
			continue
		}
		if found = append(found, c); len(found) > f.Limit {
			break
		}
	}
	page := &nexus.Page{Contexts: cloneAll(found)}
	if len(found) > f.Limit {
		page.Contexts = page.Contexts[:f.Limit]
		page.NextCursor = page.Contexts[f.Limit-1].ID.String()
	}
	return page, nil
}

// scanLocked yields every context in the given order.
func (s *MemStore) scanLocked(o nexus.Order) iter.Seq[*nexus.Context] {
	if o == nexus.Oldest {
		return slices.Values(s.ordered)
	}
	return func(yield func(*nexus.Context) bool) {
		for _, c := range slices.Backward(s.ordered) {
			if !yield(c) {
				return
			}
		}
	}
}

// afterCursor reports whether id comes strictly after cursor in order o.
// The zero cursor is before everything.
func afterCursor(id, cursor nexus.ID, o nexus.Order) bool {
	if cursor.IsZero() {
		return true
	}
	if o == nexus.Oldest {
		return id.Compare(cursor) > 0
	}
	return id.Compare(cursor) < 0
}

func matches(c *nexus.Context, f *nexus.Filter) bool {
	switch {
	case f.Namespace != "" && c.Namespace != f.Namespace,
		f.Type != "" && c.Type != f.Type,
		f.AgentID != "" && c.AgentID != f.AgentID,
		!f.ParentID.IsZero() && c.ParentID != f.ParentID,
		!f.Since.IsZero() && c.Timestamp.Before(f.Since),
		!f.Until.IsZero() && !c.Timestamp.Before(f.Until):
		return false
	}
	return true
}

// Log returns the journal newest first. The cursor is the commit of the
// last entry of the previous page.
func (s *MemStore) Log(ctx context.Context, f nexus.LogFilter) (*nexus.LogPage, error) {
	if err := live(ctx); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	end := len(s.journal) // entries before end are still to be returned
	if f.Cursor != "" {
		i := slices.IndexFunc(s.journal, func(e nexus.LogEntry) bool { return e.Commit == f.Cursor })
		if i < 0 {
			return nil, nexus.Errorf(nexus.EInvalid, "cursor %s is not a commit of the log", f.Cursor)
		}
		end = i
	}
	start := max(end-f.Limit, 0)
	page := &nexus.LogPage{Entries: slices.Clone(s.journal[start:end])}
	slices.Reverse(page.Entries)
	if start > 0 {
		page.NextCursor = s.journal[start].Commit
	}
	if page.Entries == nil {
		page.Entries = []nexus.LogEntry{}
	}
	return page, nil
}

// live returns an unavailable error wrapping ctx's error once ctx is done,
// so that errors.Is(err, context.Canceled) holds for the caller.
func live(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "request abandoned")
	}
	return nil
}

func notFound(id nexus.ID) error {
	return nexus.Errorf(nexus.ENotFound, "context %s not found", id)
}

func clone(c *nexus.Context) *nexus.Context {
	cp := *c
	cp.Metadata = bytes.Clone(c.Metadata)
	return &cp
}

func cloneAll(cs []*nexus.Context) []*nexus.Context {
	out := make([]*nexus.Context, len(cs))
	for i, c := range cs {
		out[i] = clone(c)
	}
	return out
}
