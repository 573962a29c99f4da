package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/nexus-mem/nexus"
)

// searchFields are the JSON names of a search request's fields.
var searchFields = jsonFields[nexus.SearchRequest]()

func (s *Server) searchContexts(w http.ResponseWriter, r *http.Request) error {
	if s.searcher == nil {
		return errNoSearch
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	var req nexus.SearchRequest
	if err := decodeObject(body, &req, searchFields); err != nil {
		return err
	}
	if refused, err := s.exactRefused(w, r, req); refused || err != nil {
		return err
	}
	res, err := s.searcher.Search(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

var errNoSearch = nexus.Errorf(nexus.EUnavailable, "search is not enabled on this server")

func (s *Server) related(w http.ResponseWriter, r *http.Request) error {
	if s.searcher == nil {
		return errNoSearch
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	q, err := parseQuery(r, "limit", "min_score", "namespace", "type", "agent")
	if err != nil {
		return err
	}
	req := nexus.SearchRequest{Namespace: q["namespace"], Type: nexus.Type(q["type"]), AgentID: q["agent"]}
	if req.Limit, err = q.int("limit"); err != nil {
		return err
	}
	if v, ok := q["min_score"]; ok {
		if req.MinScore, err = strconv.ParseFloat(v, 64); err != nil {
			return nexus.Errorf(nexus.EInvalid, "min_score %q is not a number", clip(v, 40))
		}
	}
	res, err := s.searcher.Related(r.Context(), id, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

var _ nexus.Searcher = (*Client)(nil)

// Search runs a query on the server.
func (c *Client) Search(ctx context.Context, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	var out nexus.SearchResult
	if err := c.do(ctx, http.MethodPost, "/v1/search", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Related returns the contexts nearest to id by meaning. Of req, only
// Limit, MinScore, Namespace, Type and AgentID are sent.
func (c *Client) Related(ctx context.Context, id nexus.ID, req nexus.SearchRequest) (*nexus.SearchResult, error) {
	q := filterQuery(nexus.Filter{Namespace: req.Namespace, Type: req.Type, AgentID: req.AgentID, Limit: req.Limit})
	if req.MinScore != 0 {
		q.Set("min_score", strconv.FormatFloat(req.MinScore, 'g', -1, 64))
	}
	var out nexus.SearchResult
	if err := c.do(ctx, http.MethodGet, "/v1/contexts/"+url.PathEscape(id.String())+"/related", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
