package httpapi

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/recovery"
)

// Admin is the maintenance of a running node that the /v1/admin routes
// reach: an integrity check, a point-in-time restore and the cascading
// recovery.
type Admin interface {
	// Fsck checks the store's integrity: fast (refs, head, catalog) or
	// deep (every object and commit).
	Fsck(ctx context.Context, deep bool) (*gitstore.FsckReport, error)
	// Restore moves the memory back to the last context written at or
	// before at, or only says what it would do.
	Restore(ctx context.Context, at time.Time, dryRun bool) (*gitstore.RestorePlan, error)
	// Recover runs the cascading recovery now.
	Recover(ctx context.Context) (RecoverResult, error)
}

// RecoverResult is the answer of POST /v1/admin/recover.
type RecoverResult struct {
	// Steps holds one step per component, in recovery order.
	Steps []recovery.Step `json:"steps"`
	// Stopping is set when a critical component could not be recovered:
	// the node stops.
	Stopping bool `json:"stopping"`
}

// restoreRequest is the body of POST /v1/admin/restore.
type restoreRequest struct {
	At     time.Time `json:"at"`
	DryRun bool      `json:"dry_run"`
}

var restoreFields = jsonFields[restoreRequest]()

var errNoAdmin = nexus.Errorf(nexus.ENotFound, "the admin routes are not enabled on this server")

func (s *Server) adminFsck(w http.ResponseWriter, r *http.Request) error {
	if s.admin == nil {
		return errNoAdmin
	}
	q, err := parseQuery(r, "deep")
	if err != nil {
		return err
	}
	deep := false
	switch q["deep"] {
	case "", "false", "0":
	case "true", "1":
		deep = true
	default:
		return nexus.Errorf(nexus.EInvalid, "deep %q: want true or false", clip(q["deep"], 20))
	}
	rep, err := s.admin.Fsck(r.Context(), deep)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) adminRestore(w http.ResponseWriter, r *http.Request) error {
	if s.admin == nil {
		return errNoAdmin
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return err
	}
	var req restoreRequest
	if err := decodeObject(body, &req, restoreFields); err != nil {
		return err
	}
	if req.At.IsZero() {
		return nexus.Errorf(nexus.EInvalid, "field \"at\" is required: an RFC 3339 time")
	}
	plan, err := s.admin.Restore(r.Context(), req.At, req.DryRun)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, plan)
}

func (s *Server) adminRecover(w http.ResponseWriter, r *http.Request) error {
	if s.admin == nil {
		return errNoAdmin
	}
	q, err := parseQuery(r, "scope")
	if err != nil {
		return err
	}
	switch q["scope"] {
	case "", "node":
	case "cluster":
		ca, ok := s.admin.(ClusterAdmin)
		if !ok || s.cluster == nil {
			return errNoCluster
		}
		rep, err := ca.RecoverCluster(r.Context())
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, rep)
	default:
		return nexus.Errorf(nexus.EInvalid, "scope %q: want node or cluster", clip(q["scope"], 20))
	}
	res, err := s.admin.Recover(r.Context())
	if err != nil {
		return err
	}
	if res.Steps == nil {
		res.Steps = []recovery.Step{}
	}
	return writeJSON(w, http.StatusOK, res)
}

// ClusterAdmin is an optional capability of an [Admin] on a cluster's
// node: a recovery of every member that the leader coordinates, for
// POST /v1/admin/recover?scope=cluster.
type ClusterAdmin interface {
	RecoverCluster(ctx context.Context) (*cluster.RecoveryReport, error)
}

// AuditSource is an optional capability of an [Admin]: its audit log, for
// GET /v1/admin/audit.
type AuditSource interface {
	// AuditLog returns the records appended so far, as JSON lines,
	// verbatim (the client verifies their chain).
	AuditLog(ctx context.Context) (io.ReadCloser, error)
}

func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request) error {
	src, ok := s.admin.(AuditSource)
	if !ok {
		return nexus.Errorf(nexus.ENotFound, "this server keeps no audit log")
	}
	if _, err := parseQuery(r); err != nil {
		return err
	}
	rc, err := src.AuditLog(r.Context())
	if err != nil {
		return nexus.WrapError(nexus.EUnavailable, err, "the audit log cannot be read")
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		s.log.Warn("sending the audit log failed", "err", err)
	}
	return nil
}
