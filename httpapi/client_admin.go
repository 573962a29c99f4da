package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/gitstore"
)

// Fsck checks the integrity of the server's store (POST
// /v1/admin/fsck): deep re-reads every object and walks all history. The
// server's recovery repairs what the check finds.
func (c *Client) Fsck(ctx context.Context, deep bool) (*gitstore.FsckReport, error) {
	q := url.Values{"deep": {strconv.FormatBool(deep)}}
	var out gitstore.FsckReport
	if err := c.do(ctx, http.MethodPost, "/v1/admin/fsck", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Restore moves the server's memory back to the last context written at
// or before at (POST /v1/admin/restore); with dryRun it only says what it
// would roll back.
func (c *Client) Restore(ctx context.Context, at time.Time, dryRun bool) (*gitstore.RestorePlan, error) {
	var out gitstore.RestorePlan
	if err := c.do(ctx, http.MethodPost, "/v1/admin/restore", nil, restoreRequest{At: at, DryRun: dryRun}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Recover runs the server's cascading recovery now (POST
// /v1/admin/recover) and returns its steps.
func (c *Client) Recover(ctx context.Context) (RecoverResult, error) {
	var out RecoverResult
	err := c.do(ctx, http.MethodPost, "/v1/admin/recover", nil, nil, &out)
	return out, err
}

// RecoverCluster has the cluster's leader run a recovery of every member,
// phase by phase (POST /v1/admin/recover?scope=cluster).
func (c *Client) RecoverCluster(ctx context.Context) (*cluster.RecoveryReport, error) {
	var out cluster.RecoveryReport
	err := c.do(ctx, http.MethodPost, "/v1/admin/recover", url.Values{"scope": {"cluster"}}, nil, &out)
	return &out, err
}

var (
	_ Admin        = (*Client)(nil)
	_ ClusterAdmin = (*Client)(nil)
)

// AuditLog returns the server's audit log as JSON lines, verbatim (GET
// /v1/admin/audit); audit.Verify checks and reads it. The caller closes it.
func (c *Client) AuditLog(ctx context.Context) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/admin/audit", nil, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nexus.WrapError(nexus.EUnavailable, err, "GET /v1/admin/audit: request failed")
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp.Body, nil
}
