package authz

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/nexus-mem/nexus"
)

// scanPages bounds the pages of the underlying store that one listing or
// journal page of a principal reads while it skips what the principal
// may not see. A page may so come back short, or empty, with a cursor to
// go on from.
const scanPages = 8

// Store is a [nexus.Store] that applies the principal's access to every
// call. It also serves GetRaw when the store it wraps does.
type Store struct {
	inner nexus.Store
	raw   rawGetter
}

// rawGetter is the store's fast path for single reads (gitstore has it).
type rawGetter interface {
	GetRaw(ctx context.Context, id nexus.ID) ([]byte, error)
}

var _ nexus.Store = (*Store)(nil)

// NewStore returns store behind the access checks.
func NewStore(store nexus.Store) *Store {
	s := &Store{inner: store}
	s.raw, _ = store.(rawGetter)
	return s
}

// Put checks that the caller may write d and records the caller as the
// context's principal.
func (s *Store) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	if err := checkPut(ctx, &d); err != nil {
		return nil, err
	}
	return s.inner.Put(ctx, d)
}

// rawPutter is the store's write that also returns the new context's
// stored JSON (gitstore has it).
type rawPutter interface {
	PutRaw(ctx context.Context, d nexus.Draft) (*nexus.Context, []byte, error)
}

// PutRaw is [Store.Put] that also returns the stored JSON of the new
// context, when the store it wraps gives it (nil otherwise).
func (s *Store) PutRaw(ctx context.Context, d nexus.Draft) (*nexus.Context, []byte, error) {
	if err := checkPut(ctx, &d); err != nil {
		return nil, nil, err
	}
	if rp, ok := s.inner.(rawPutter); ok {
		return rp.PutRaw(ctx, d)
	}
	c, err := s.inner.Put(ctx, d)
	return c, nil, err
}

// checkPut checks that the caller may write d and records the caller as
// its principal.
func checkPut(ctx context.Context, d *nexus.Draft) error {
	d.Principal = ""
	if p := principal(ctx); p != nil {
		ns := d.Namespace
		if ns == "" {
			ns = nexus.DefaultNamespace
		}
		if err := CheckWrite(ctx, ns, d.Type); err != nil {
			return err
		}
		d.Principal = p.Name
	}
	return nil
}

// CheckWrite is [CheckWrite], for the writers that hold the store (the
// orchestrator asks it before an agent answers).
func (s *Store) CheckWrite(ctx context.Context, ns string, t nexus.Type) error {
	return CheckWrite(ctx, ns, t)
}

// Get returns a context the caller may read; any other is not_found.
func (s *Store) Get(ctx context.Context, id nexus.ID) (*nexus.Context, error) {
	c, err := s.inner.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !CanRead(ctx, c.Namespace) {
		return nil, notFound(id)
	}
	return c, nil
}

// GetRaw is Get as the stored JSON encoding.
func (s *Store) GetRaw(ctx context.Context, id nexus.ID) ([]byte, error) {
	if p := principal(ctx); s.raw != nil && (p == nil || readsAll(p)) {
		return s.raw.GetRaw(ctx, id)
	}
	c, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "encoding context %s", id)
	}
	return buf.Bytes(), nil
}

// Chain returns the chain of a context the caller may read, up to the
// first ancestor it may not (a thread stays in one namespace, so that is
// only ever the root's end).
func (s *Store) Chain(ctx context.Context, id nexus.ID, limit int) ([]*nexus.Context, error) {
	cs, err := s.inner.Chain(ctx, id, limit)
	if err != nil {
		return nil, err
	}
	for i, c := range cs {
		if !CanRead(ctx, c.Namespace) {
			if i == 0 {
				return nil, notFound(id)
			}
			return cs[:i], nil
		}
	}
	return cs, nil
}

// Children returns the children of a context the caller may read, those
// it may read.
func (s *Store) Children(ctx context.Context, id nexus.ID) ([]*nexus.Context, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	cs, err := s.inner.Children(ctx, id)
	if err != nil {
		return nil, err
	}
	return readable(ctx, cs), nil
}

// readable keeps the contexts the caller may read.
func readable(ctx context.Context, cs []*nexus.Context) []*nexus.Context {
	out := cs[:0:0]
	for _, c := range cs {
		if CanRead(ctx, c.Namespace) {
			out = append(out, c)
		}
	}
	return out
}

// List lists the contexts the caller may read. A filter naming a
// namespace it may not read is forbidden. Without a namespace, pages of
// the store are read until the page is full, for at most scanPages of
// them: the page may then be short, with a cursor to go on.
func (s *Store) List(ctx context.Context, f nexus.Filter) (*nexus.Page, error) {
	p := principal(ctx)
	if p == nil || readsAll(p) {
		return s.inner.List(ctx, f)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if err := checkReadFilter(ctx, f.Namespace); err != nil {
		return nil, err
	}
	if !p.Can(nexus.RoleRead) || len(p.Read)+len(p.Write) == 0 {
		return &nexus.Page{Contexts: []*nexus.Context{}}, nil // it reads nothing
	}
	if f.Namespace == "" {
		f.Namespace = only(p)
	}
	if f.Namespace != "" {
		return s.inner.List(ctx, f)
	}
	return s.scan(ctx, f)
}

// scan fills a page from the store's pages, skipping what the caller may
// not read.
func (s *Store) scan(ctx context.Context, f nexus.Filter) (*nexus.Page, error) {
	want := f.Limit
	out := &nexus.Page{Contexts: []*nexus.Context{}}
	for range scanPages {
		page, err := s.inner.List(ctx, f)
		if err != nil {
			return nil, err
		}
		for i, c := range page.Contexts {
			if !CanRead(ctx, c.Namespace) {
				continue
			}
			out.Contexts = append(out.Contexts, c)
			if len(out.Contexts) == want {
				if i < len(page.Contexts)-1 || page.NextCursor != "" {
					out.NextCursor = c.ID.String()
				}
				return out, nil
			}
		}
		if page.NextCursor == "" {
			return out, nil
		}
		f.Cursor = page.NextCursor
	}
	out.NextCursor = f.Cursor
	return out, nil
}

// Log returns the journal entries of the namespaces the caller may read;
// entries of no namespace (not about a context) are shown to every
// reader. Like List, it reads at most scanPages pages of the journal.
func (s *Store) Log(ctx context.Context, f nexus.LogFilter) (*nexus.LogPage, error) {
	p := principal(ctx)
	if p == nil || readsAll(p) {
		return s.inner.Log(ctx, f)
	}
	if !p.Can(nexus.RoleRead) {
		return nil, nexus.Errorf(nexus.EForbidden, "principal %q has role %q: reading needs role read", p.Name, p.Role)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	want := f.Limit
	out := &nexus.LogPage{Entries: []nexus.LogEntry{}}
	for range scanPages {
		page, err := s.inner.Log(ctx, f)
		if err != nil {
			return nil, err
		}
		for i, e := range page.Entries {
			if e.Namespace != "" && !p.CanRead(e.Namespace) {
				continue
			}
			out.Entries = append(out.Entries, e)
			if len(out.Entries) == want {
				switch {
				case i < len(page.Entries)-1:
					out.NextCursor = page.Entries[i+1].Commit
				default:
					out.NextCursor = page.NextCursor
				}
				return out, nil
			}
		}
		if page.NextCursor == "" {
			return out, nil
		}
		f.Cursor = page.NextCursor
	}
	out.NextCursor = f.Cursor
	return out, nil
}
