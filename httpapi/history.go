package httpapi

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/nexus-mem/nexus"
)

// HistorySource is an optional capability of an [Admin]: the history of
// the memory's main as a git bundle, for GET /v1/admin/history (a
// cluster's members repair damaged objects from their peers' histories).
type HistorySource interface {
	// History writes the bundle into a temporary file and returns its
	// path; the caller removes it.
	History(ctx context.Context) (string, error)
}

func (s *Server) adminHistory(w http.ResponseWriter, r *http.Request) error {
	src, ok := s.admin.(HistorySource)
	if !ok {
		return nexus.Errorf(nexus.ENotFound, "this server does not serve its history")
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	path, err := src.History(r.Context())
	if err != nil {
		return err
	}
	defer os.Remove(path)
	f, err := os.Open(path)
	if err != nil {
		return nexus.WrapError(nexus.EInternal, err, "open the history bundle")
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-git-bundle")
	http.ServeContent(w, r, "history.bundle", time.Time{}, f)
	return nil
}
