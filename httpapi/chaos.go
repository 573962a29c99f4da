package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/nexus-mem/nexus"
)

// ChaosInjector is an optional capability of an [Admin]: fault injection
// for `nexus chaos` (GET and POST /v1/admin/chaos). A node refuses it
// unless its configuration file sets chaos.enabled.
type ChaosInjector interface {
	// ChaosScenarios lists the scenarios and whether each can be injected
	// on this node.
	ChaosScenarios(ctx context.Context) (*ChaosStatus, error)
	// Chaos injects one scenario for real and says what it did.
	Chaos(ctx context.Context, scenario string, params map[string]string) (*ChaosInjection, error)
}

// ChaosStatus is the answer of GET /v1/admin/chaos.
type ChaosStatus struct {
	Enabled   bool            `json:"enabled"`
	Cluster   bool            `json:"cluster"`
	Scenarios []ChaosScenario `json:"scenarios"`
}

// ChaosScenario is one fault a node can have injected.
type ChaosScenario struct {
	Name string `json:"name"`
	// Component is the /health component the fault is expected to change.
	Component   string `json:"component"`
	Description string `json:"description"`
	Available   bool   `json:"available"`
	// Reason says why the scenario is not available on this node.
	Reason string `json:"reason,omitempty"`
}

// ChaosInjection is the answer of POST /v1/admin/chaos: what was done.
type ChaosInjection struct {
	Scenario   string    `json:"scenario"`
	Component  string    `json:"component"`
	InjectedAt time.Time `json:"injected_at"`
	// What says what was done, in words.
	What string `json:"what"`
	// Details are the figures of the injection (file, bytes, pid…).
	Details map[string]any `json:"details,omitempty"`
	// Until is when the node undoes a held fault by itself (a ballast
	// file removed, memory released); zero when nothing is held.
	Until time.Time `json:"until,omitzero"`
	// FoundBy is how the node finds the fault: "health" (its own checks)
	// or "deep_check" (the scrub's deep check, which the caller may
	// request now with POST /v1/admin/fsck?deep=true).
	FoundBy string `json:"found_by"`
}

// chaosRequest is the body of POST /v1/admin/chaos.
type chaosRequest struct {
	Scenario string            `json:"scenario"`
	Params   map[string]string `json:"params"`
}

var chaosFields = jsonFields[chaosRequest]()

var errNoChaos = nexus.Errorf(nexus.ENotFound, "this server does not inject faults")

func (s *Server) adminChaosStatus(w http.ResponseWriter, r *http.Request) error {
	ci, ok := s.admin.(ChaosInjector)
	if !ok {
		return errNoChaos
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	st, err := ci.ChaosScenarios(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) adminChaos(w http.ResponseWriter, r *http.Request) error {
	ci, ok := s.admin.(ChaosInjector)
	if !ok {
		return errNoChaos
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	var req chaosRequest
	if err := decodeObject(body, &req, chaosFields); err != nil {
		return err
	}
	if req.Scenario == "" {
		return nexus.Errorf(nexus.EInvalid, "field \"scenario\" is required (GET /v1/admin/chaos lists them)")
	}
	inj, err := ci.Chaos(r.Context(), req.Scenario, req.Params)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, inj)
}

// ChaosScenarios asks the node which fault scenarios it can have
// injected (GET /v1/admin/chaos).
func (c *Client) ChaosScenarios(ctx context.Context) (*ChaosStatus, error) {
	var out ChaosStatus
	if err := c.do(ctx, http.MethodGet, "/v1/admin/chaos", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Chaos injects one fault scenario into the node (POST /v1/admin/chaos).
func (c *Client) Chaos(ctx context.Context, scenario string, params map[string]string) (*ChaosInjection, error) {
	var out ChaosInjection
	if err := c.do(ctx, http.MethodPost, "/v1/admin/chaos", nil, chaosRequest{Scenario: scenario, Params: params}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Health asks the node for its health (GET /health): answered with 200,
// or 503 when a component is unhealthy; both carry the components.
func (c *Client) Health(ctx context.Context) (nexus.Health, error) {
	var h nexus.Health
	req, err := c.newRequest(ctx, http.MethodGet, "/health", nil, nil)
	if err != nil {
		return h, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return h, nexus.WrapError(nexus.EUnavailable, err, "GET /health: request failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		return h, responseError(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, nexus.WrapError(nexus.EUnavailable, err, "GET /health: malformed response")
	}
	return h, nil
}
