package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/recovery"
)

// The node's incidents (recovery.Incident): records of the memory itself,
// in the incidents namespace, read through the server's store — so a
// principal that may not read that namespace is refused the listing (403)
// and finds no incident by id (404), like any other context.

// IncidentAnswer is the answer of GET /v1/incidents/{id}: the incident
// and its post-mortem.
type IncidentAnswer struct {
	Incident   *recovery.Incident  `json:"incident"`
	PostMortem recovery.PostMortem `json:"post_mortem"`
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r, "component", "since", "limit", "cursor")
	if err != nil {
		return err
	}
	iq := recovery.IncidentQuery{Component: q["component"], Cursor: q["cursor"]}
	if iq.Since, err = q.time("since"); err != nil {
		return err
	}
	if iq.Limit, err = q.int("limit"); err != nil {
		return err
	}
	page, err := recovery.ListIncidents(r.Context(), s.store, iq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	inc, err := recovery.GetIncident(r.Context(), s.store, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, IncidentAnswer{Incident: inc, PostMortem: inc.PostMortem()})
}

// Incidents lists the server's incidents, newest first (GET
// /v1/incidents); a page may be short, even empty, with a NextCursor to
// go on.
func (c *Client) Incidents(ctx context.Context, q recovery.IncidentQuery) (*recovery.IncidentPage, error) {
	v := url.Values{}
	if q.Component != "" {
		v.Set("component", q.Component)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	var out recovery.IncidentPage
	if err := c.do(ctx, http.MethodGet, "/v1/incidents", v, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Incident reads one incident and its post-mortem (GET
// /v1/incidents/{id}).
func (c *Client) Incident(ctx context.Context, id nexus.ID) (*IncidentAnswer, error) {
	var out IncidentAnswer
	if err := c.do(ctx, http.MethodGet, "/v1/incidents/"+id.String(), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
