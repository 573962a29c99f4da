package nexus

import (
	"context"
	"time"
)

// Store is the memory: contexts are put, read back, walked as chains and
// listed. Implementations: gitstore.Store (on disk) and httpapi.Client (a
// remote server). Every method returns *Error values for expected failures.
type Store interface {
	// Put validates d, assigns id and timestamp, and returns the stored
	// context once it is durable.
	Put(ctx context.Context, d Draft) (*Context, error)
	// Get returns one context, or ENotFound.
	Get(ctx context.Context, id ID) (*Context, error)
	// Chain returns the context followed by its ancestors up to the root,
	// at most limit of them (0: no limit). A cycle is reported as EInternal.
	Chain(ctx context.Context, id ID, limit int) ([]*Context, error)
	// Children returns the direct children of id, oldest first.
	Children(ctx context.Context, id ID) ([]*Context, error)
	// List returns contexts matching f, one page at a time.
	List(ctx context.Context, f Filter) (*Page, error)
	// Log returns the commit journal, newest first.
	Log(ctx context.Context, f LogFilter) (*LogPage, error)
}

// Order of a listing.
type Order string

// Orders.
const (
	Newest Order = "desc" // newest first (the default)
	Oldest Order = "asc"  // oldest first
)

// Listing limits.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Filter selects contexts for [Store.List]. Zero fields match everything.
type Filter struct {
	Namespace string
	Type      Type
	AgentID   string
	ParentID  ID
	Since     time.Time // inclusive
	Until     time.Time // exclusive
	Limit     int       // 0: DefaultLimit
	Cursor    string    // NextCursor of the previous page
	Order     Order
}

// Validate checks the filter's fields and fills defaults.
func (f *Filter) Validate() error {
	if f.Namespace != "" {
		if err := ValidateNamespace(f.Namespace); err != nil {
			return err
		}
	}
	if f.Type != "" && !f.Type.Valid() {
		return Errorf(EInvalid, "unknown type %q: want one of %s", clip(string(f.Type), 40), typeList())
	}
	if f.AgentID != "" {
		if err := ValidateAgentID(f.AgentID); err != nil {
			return err
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return Errorf(EInvalid, "until (%s) must be after since (%s)", f.Until.Format(time.RFC3339Nano), f.Since.Format(time.RFC3339Nano))
	}
	if err := validateLimit(&f.Limit); err != nil {
		return err
	}
	if f.Cursor != "" {
		if _, err := ParseID(f.Cursor); err != nil {
			return Errorf(EInvalid, "invalid cursor %q", clip(f.Cursor, 40))
		}
	}
	switch f.Order {
	case "":
		f.Order = Newest
	case Newest, Oldest:
	default:
		return Errorf(EInvalid, "invalid order %q: want asc or desc", clip(string(f.Order), 20))
	}
	return nil
}

func validateLimit(l *int) error {
	if *l == 0 {
		*l = DefaultLimit
	}
	if *l < 0 || *l > MaxLimit {
		return Errorf(EInvalid, "limit %d out of range 1-%d", *l, MaxLimit)
	}
	return nil
}

// Page is one page of a listing. NextCursor is empty on the last page.
type Page struct {
	Contexts   []*Context `json:"contexts"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

// LogFilter pages through the journal.
type LogFilter struct {
	Limit  int    // 0: DefaultLimit
	Cursor string // NextCursor of the previous page (a commit hash)
}

// Validate checks the filter and fills defaults.
func (f *LogFilter) Validate() error {
	if err := validateLimit(&f.Limit); err != nil {
		return err
	}
	if f.Cursor != "" && !isHex(f.Cursor, 40) {
		return Errorf(EInvalid, "invalid cursor %q: want a 40-digit commit hash", clip(f.Cursor, 50))
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// LogEntry is one commit of the journal.
type LogEntry struct {
	Commit    string `json:"commit"`
	ContextID ID     `json:"context_id,omitzero"`
	Namespace string `json:"namespace,omitempty"`
	Type      Type   `json:"type,omitempty"`
	AgentID   string `json:"agent_id"`
	// Principal is the authenticated caller that wrote the commit, from
	// its Principal trailer; empty for the node's own commits.
	Principal string    `json:"principal,omitempty"`
	ParentID  ID        `json:"parent_id,omitzero"`
	Time      time.Time `json:"time"`
	Summary   string    `json:"summary"`
}

// LogPage is one page of the journal.
type LogPage struct {
	Entries    []LogEntry `json:"entries"`
	NextCursor string     `json:"next_cursor,omitempty"`
}
