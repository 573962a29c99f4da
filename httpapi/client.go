package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
)

// Client is a [nexus.Store] backed by a server over HTTP. Errors from the
// server come back as [*nexus.Error] values with the server's code and
// message; a server that cannot be reached gives code unavailable. It is
// safe for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
	idle  time.Duration // of an event stream; 0: DefaultStreamIdleTimeout
	tls   *clientTLS    // nil: the transport of hc as it is
	err   error         // of an option, returned by every request
}

var _ nexus.Store = (*Client)(nil)

// ClientOption configures a [Client].
type ClientOption func(*Client)

// WithToken makes the client send "Authorization: Bearer <token>".
func WithToken(token string) ClientOption {
	return func(c *Client) { c.token = token }
}

// WithHTTPClient makes the client send its requests through hc instead of
// http.DefaultClient.
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) { c.hc = hc }
}

// NewClient returns a client of the server at baseURL, such as
// "http://127.0.0.1:7411". A malformed URL shows up as an invalid error on
// the first request.
func NewClient(baseURL string, opts ...ClientOption) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	c.applyTLS()
	return c
}

// Put stores a draft and returns the stored context.
func (c *Client) Put(ctx context.Context, d nexus.Draft) (*nexus.Context, error) {
	if err := checkEncodable(d); err != nil {
		return nil, err
	}
	var out nexus.Context
	if err := c.do(ctx, http.MethodPost, "/v1/contexts", nil, d, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// checkEncodable rejects what JSON encoding would silently alter or fail
// on, so that the server judges the draft the caller wrote.
func checkEncodable(d nexus.Draft) error {
	for _, f := range [...]struct{ name, value string }{
		{"namespace", d.Namespace}, {"type", string(d.Type)}, {"content", d.Content}, {"agent_id", d.AgentID},
	} {
		if !utf8.ValidString(f.value) {
			return nexus.Errorf(nexus.EInvalid, "%s is not valid UTF-8", f.name)
		}
	}
	if len(d.Metadata) > 0 && !json.Valid(d.Metadata) {
		return nexus.Errorf(nexus.EInvalid, "metadata is not valid JSON")
	}
	return nil
}

// Get returns one context.
func (c *Client) Get(ctx context.Context, id nexus.ID) (*nexus.Context, error) {
	var out nexus.Context
	if err := c.do(ctx, http.MethodGet, "/v1/contexts/"+id.String(), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Chain returns the context followed by its ancestors, at most limit of
// them (0: all), following the server's pages.
func (c *Client) Chain(ctx context.Context, id nexus.ID, limit int) ([]*nexus.Context, error) {
	var all []*nexus.Context
	for next := id.String(); next != ""; {
		q := url.Values{}
		if limit != 0 {
			q.Set("limit", strconv.Itoa(limit-len(all)))
		}
		var out contextList
		if err := c.do(ctx, http.MethodGet, "/v1/contexts/"+url.PathEscape(next)+"/chain", q, nil, &out); err != nil {
			return nil, err
		}
		if len(out.Contexts) == 0 && out.NextCursor != "" {
			return nil, nexus.Errorf(nexus.EInternal, "chain of %s: the server sent an empty page with a cursor", id)
		}
		all = append(all, out.Contexts...)
		next = out.NextCursor
	}
	return all, nil
}

// Children returns the direct children of id, oldest first, following
// the server's pages.
func (c *Client) Children(ctx context.Context, id nexus.ID) ([]*nexus.Context, error) {
	all := []*nexus.Context{}
	q := url.Values{}
	for {
		var out contextList
		if err := c.do(ctx, http.MethodGet, "/v1/contexts/"+id.String()+"/children", q, nil, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Contexts...)
		if out.NextCursor == "" || len(out.Contexts) == 0 {
			return all, nil
		}
		q.Set("cursor", out.NextCursor)
	}
}

// List returns one page of the contexts matching f.
func (c *Client) List(ctx context.Context, f nexus.Filter) (*nexus.Page, error) {
	var out nexus.Page
	if err := c.do(ctx, http.MethodGet, "/v1/contexts", filterQuery(f), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// filterQuery encodes the set fields of f as query parameters.
func filterQuery(f nexus.Filter) url.Values {
	q := url.Values{}
	set := func(name, v string) {
		if v != "" {
			q.Set(name, v)
		}
	}
	set("namespace", f.Namespace)
	set("type", string(f.Type))
	set("agent", f.AgentID)
	set("cursor", f.Cursor)
	set("order", string(f.Order))
	if !f.ParentID.IsZero() {
		q.Set("parent", f.ParentID.String())
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// Log returns one page of the journal, newest first.
func (c *Client) Log(ctx context.Context, f nexus.LogFilter) (*nexus.LogPage, error) {
	q := url.Values{}
	if f.Limit != 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Cursor != "" {
		q.Set("cursor", f.Cursor)
	}
	var out nexus.LogPage
	if err := c.do(ctx, http.MethodGet, "/v1/log", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Livez returns nil if the server process is up.
func (c *Client) Livez(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/livez", nil, nil, nil)
}

// do sends a request with in, if not nil, as its JSON body, and decodes a
// successful response into out, if not nil.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	req, err := c.newRequest(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "%s %s: request failed", method, path)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return responseError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	// Reading the whole body first tells a transfer cut short (unavailable)
	// from a server sending malformed JSON (internal).
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "%s %s: reading the response failed", method, path)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return nexus.WrapError(nexus.EInternal, err, "%s %s: malformed response", method, path)
	}
	return nil
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, in any) (*http.Request, error) {
	if c.err != nil {
		return nil, c.err
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in); err != nil {
			return nil, nexus.WrapError(nexus.EInvalid, err, "encoding the request")
		}
		body = &buf
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nexus.WrapError(nexus.EInvalid, err, "invalid server URL %q", c.base)
	}
	if in != nil || !safeMethod(method) {
		// A state-changing request without a body says JSON too: the
		// server refuses any other, as a web form could send it.
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// responseError turns an error response into a *nexus.Error, keeping the
// server's code and message when the body has them.
func responseError(resp *http.Response) error {
	var body nexus.ErrorBody
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		return &nexus.Error{Code: body.Error.Code, Message: body.Error.Message}
	}
	if resp.StatusCode == http.StatusBadRequest && bytes.HasPrefix(raw, plainToTLS) {
		return nexus.Errorf(nexus.EInvalid, "the server speaks HTTPS: use an https:// server URL")
	}
	return nexus.Errorf(codeOf(resp.StatusCode), "server answered %s", resp.Status)
}
