package httpapi

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
)

// ClusterStatus returns the cluster as the server sees it (GET
// /v1/cluster): with local, only what the server itself knows; else each
// member's applied index and head, asked of the member. A server that is
// not part of a cluster answers not_found.
func (c *Client) ClusterStatus(ctx context.Context, local bool) (*cluster.Status, error) {
	var q url.Values
	if local {
		q = url.Values{"local": {"true"}}
	}
	var out cluster.Status
	if err := c.do(ctx, http.MethodGet, "/v1/cluster", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ClusterJoin asks the cluster to add m as a voter (POST
// /v1/cluster/join, admin): the node that runs as m, started without
// --bootstrap or --join, then gets the log from the leader. It returns
// the status of the node that added it.
func (c *Client) ClusterJoin(ctx context.Context, m cluster.Member) (*cluster.Status, error) {
	return c.clusterChange(ctx, http.MethodPost, "/v1/cluster/join", m)
}

// ClusterRemove takes the member id out of the cluster (DELETE
// /v1/cluster/members/{id}, admin); it need not be running.
func (c *Client) ClusterRemove(ctx context.Context, id string) (*cluster.Status, error) {
	return c.clusterChange(ctx, http.MethodDelete, "/v1/cluster/members/"+url.PathEscape(id), nil)
}

// ClusterTransfer hands the leadership to the member to, or with to ""
// to the most up-to-date voter (POST /v1/cluster/transfer-leadership,
// admin). It returns the status of the node that led.
func (c *Client) ClusterTransfer(ctx context.Context, to string) (*cluster.Status, error) {
	body := struct {
		To string `json:"to,omitempty"`
	}{to}
	return c.clusterChange(ctx, http.MethodPost, "/v1/cluster/transfer-leadership", body)
}

func (c *Client) clusterChange(ctx context.Context, method, path string, in any) (*cluster.Status, error) {
	var out cluster.Status
	if err := c.do(ctx, method, path, nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AtConsistency returns a client like c whose reads ask for level (see
// [cluster.Consistency]): every GET request and every search it sends
// carries consistency=level, which a cluster's node honours on each read
// route (and every other route ignores). A single node ignores it. An
// unknown level shows up as an invalid error on the first request. c
// itself is left as it is.
//
// The level travels in the query string, so this works whatever
// transport the client's options gave it: the new client sends its
// requests through that transport.
func (c *Client) AtConsistency(level cluster.Consistency) *Client {
	cc := *c
	switch level {
	case cluster.None, cluster.Leader, cluster.Linearizable:
	default:
		cc.err = nexus.Errorf(nexus.EInvalid, "invalid consistency %q: want none, leader or linearizable", level)
		return &cc
	}
	hc := *c.hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = consistencyTransport{level: level, base: base}
	cc.hc = &hc
	return &cc
}

// consistencyTransport adds consistency=level to the reads it sends.
type consistencyTransport struct {
	level cluster.Consistency
	base  http.RoundTripper
}

func (t consistencyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isRead(req) {
		return t.base.RoundTrip(req)
	}
	// A RoundTripper must not change the request it was given.
	r := req.Clone(req.Context())
	q := r.URL.Query()
	q.Set("consistency", string(t.level))
	r.URL.RawQuery = q.Encode()
	return t.base.RoundTrip(r)
}

// isRead reports whether req is a read a cluster serves at a consistency
// level: a GET, or a search (a POST that only reads).
func isRead(req *http.Request) bool {
	return req.Method == http.MethodGet || (req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/v1/search"))
}
