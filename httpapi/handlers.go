package httpapi

import (
	"net/http"

	"github.com/nexus-mem/nexus"
)

// contextList is the response of the chain and children routes: a page,
// continued from NextCursor (for a chain, the id whose chain continues
// it; for children, the cursor parameter of the next page).
type contextList struct {
	Contexts   []*nexus.Context `json:"contexts"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

func (s *Server) putContext(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	d, err := decodeDraft(body)
	if err != nil {
		return err
	}
	var c *nexus.Context
	var raw []byte
	if rp, ok := s.store.(rawPutter); ok {
		c, raw, err = rp.PutRaw(r.Context(), d)
	} else {
		c, err = s.store.Put(r.Context(), d)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/contexts/"+c.ID.String())
	if raw != nil {
		writeRaw(w, http.StatusCreated, raw) // the stored JSON is the answer
		return nil
	}
	return writeJSON(w, http.StatusCreated, c)
}

func (s *Server) getContext(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	if s.raw != nil {
		b, err := s.raw.GetRaw(r.Context(), id)
		if err != nil {
			return err
		}
		writeRaw(w, http.StatusOK, b)
		return nil
	}
	c, err := s.store.Get(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (s *Server) chain(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	q, err := parseQuery(r, "limit")
	if err != nil {
		return err
	}
	limit, err := q.int("limit")
	if err != nil {
		return err
	}
	if limit < 0 {
		return nexus.Errorf(nexus.EInvalid, "limit %d is negative (0 means no limit)", limit)
	}
	p := newPage(s.limits.cfg.PageBytes)
	next, err := s.chainPage(r.Context(), id, limit, p)
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, p.bytes(next))
	return nil
}

func (s *Server) children(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	q, err := parseQuery(r, "cursor")
	if err != nil {
		return err
	}
	if f := (nexus.Filter{Cursor: q["cursor"]}); f.Validate() != nil {
		return nexus.Errorf(nexus.EInvalid, "invalid cursor %q: want the next_cursor of the previous page", clip(q["cursor"], 40))
	}
	p := newPage(s.limits.cfg.PageBytes)
	next, err := s.childrenPage(r.Context(), id, q["cursor"], p)
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, p.bytes(next))
	return nil
}

func (s *Server) listContexts(w http.ResponseWriter, r *http.Request) error {
	f, err := listFilter(r)
	if err != nil {
		return err
	}
	p := newPage(s.limits.cfg.PageBytes)
	next, err := s.listPage(r.Context(), f, p)
	if err != nil {
		return err
	}
	writeRaw(w, http.StatusOK, p.bytes(next))
	return nil
}

// listFilter builds and validates the filter of a list request.
func listFilter(r *http.Request) (nexus.Filter, error) {
	q, err := parseQuery(r, "namespace", "type", "agent", "parent", "since", "until", "limit", "cursor", "order")
	if err != nil {
		return nexus.Filter{}, err
	}
	f := nexus.Filter{
		Namespace: q["namespace"],
		Type:      nexus.Type(q["type"]),
		AgentID:   q["agent"],
		Cursor:    q["cursor"],
		Order:     nexus.Order(q["order"]),
	}
	if f.ParentID, err = q.id("parent"); err != nil {
		return f, err
	}
	if f.Since, err = q.time("since"); err != nil {
		return f, err
	}
	if f.Until, err = q.time("until"); err != nil {
		return f, err
	}
	if f.Limit, err = q.int("limit"); err != nil {
		return f, err
	}
	return f, f.Validate()
}

func (s *Server) journal(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, "limit", "cursor")
	if err != nil {
		return err
	}
	f := nexus.LogFilter{Cursor: q["cursor"]}
	if f.Limit, err = q.int("limit"); err != nil {
		return err
	}
	if err := f.Validate(); err != nil {
		return err
	}
	p, err := s.store.Log(r.Context(), f)
	if err != nil {
		return err
	}
	if p.Entries == nil {
		p.Entries = []nexus.LogEntry{}
	}
	return writeJSON(w, http.StatusOK, p)
}

type status struct {
	Status string `json:"status"`
}

func (s *Server) livez(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, status{"ok"})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	h := nexus.CheckHealth(r.Context(), nil)
	if s.health != nil {
		h = s.health(r.Context())
	}
	code := http.StatusOK
	if h.Status == nexus.StatusUnhealthy {
		code = http.StatusServiceUnavailable
	}
	return s.writeStatus(w, code, h)
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.metrics == nil {
		return nexus.Errorf(nexus.ENotFound, "metrics are not enabled on this server")
	}
	s.metrics.ServeHTTP(w, r)
	return nil
}

// readyz answers 200 while the store can serve, else 503 with code
// unavailable. The message is the store's own when it is written for
// clients; any other cause is only logged.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	var err error
	if s.ready != nil {
		err = s.ready()
	}
	if err == nil {
		return writeJSON(w, http.StatusOK, status{"ready"})
	}
	msg := "not ready"
	if d := nexus.DetailOf(err); d.Code != nexus.EInternal {
		msg += ": " + d.Message
	}
	return nexus.WrapError(nexus.EUnavailable, err, "%s", msg)
}
