package authz

import (
	"context"

	"github.com/nexus-mem/nexus"
)

// Searcher is a [nexus.Searcher] that finds only what the caller may
// read: the search itself is restricted to those namespaces (so a page
// of hits is full when there are enough), and every hit is checked again.
type Searcher struct {
	inner nexus.Searcher
	store nexus.Store // for the context Related starts from
}

var _ nexus.Searcher = (*Searcher)(nil)

// NewSearcher returns searcher behind the access checks, or nil if
// searcher is nil (a node without search). store is the memory searched,
// behind its access checks.
func NewSearcher(searcher nexus.Searcher, store *Store) nexus.Searcher {
	if searcher == nil {
		return nil
	}
	return &Searcher{inner: searcher, store: store}
}

// Search runs a query over the namespaces the caller may read.
func (s *Searcher) Search(ctx context.Context, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	if err := restrict(ctx, &req); err != nil {
		return nil, err
	}
	res, err := s.inner.Search(ctx, req)
	return filterHits(ctx, res), err
}

// Related returns the contexts nearest to a context the caller may read
// (any other is not_found), among those it may read.
func (s *Searcher) Related(ctx context.Context, id nexus.ID, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	if principal(ctx) != nil {
		if _, err := s.store.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	if err := restrict(ctx, &req); err != nil {
		return nil, err
	}
	res, err := s.inner.Related(ctx, id, req)
	return filterHits(ctx, res), err
}

// restrict refuses a namespace filter the caller may not read and limits
// the request to what it may.
func restrict(ctx context.Context, req *nexus.SearchRequest) error {
	p := principal(ctx)
	if p == nil {
		return nil
	}
	if err := checkReadFilter(ctx, req.Namespace); err != nil {
		return err
	}
	if !readsAll(p) {
		allow := req.AllowNamespace
		req.AllowNamespace = func(ns string) bool { return p.CanRead(ns) && (allow == nil || allow(ns)) }
	}
	return nil
}

// filterHits drops the hits the caller may not read.
func filterHits(ctx context.Context, res *nexus.SearchResult) *nexus.SearchResult {
	if res == nil || principal(ctx) == nil {
		return res
	}
	hits := res.Hits[:0]
	for _, h := range res.Hits {
		if h.Context != nil && CanRead(ctx, h.Context.Namespace) {
			hits = append(hits, h)
		}
	}
	res.Hits = hits
	return res
}
