package node

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
)

// The admin actions of a node. Each is recorded in the audit log before
// it runs (and refused, with an unavailable error, if that record cannot
// be written) and after, whoever calls it: the API, MCP or this process.

var _ httpapi.Admin = (*Node)(nil)

// Fsck checks the store; deep re-reads every object and walks history.
// The cascading recovery then repairs what the check found.
func (n *Node) Fsck(ctx context.Context, deep bool) (rep *gitstore.FsckReport, err error) {
	err = n.audit.Do(ctx, "fsck", audit.Fields{"deep": strconv.FormatBool(deep)}, func() (audit.Fields, error) {
		if rep, err = n.store.Fsck(ctx, deep); err != nil {
			return nil, err
		}
		n.mets.RecordFsck(fsckMode(deep), len(rep.Problems), rep.Took)
		n.mgr.TriggerFor(operator(ctx, "an integrity check") + " (" + fsckMode(deep) + " fsck)")
		return audit.Fields{"problems": strconv.Itoa(len(rep.Problems)), "head": rep.Head}, nil
	})
	return rep, err
}

// Restore moves main back to the last commit at or before at (the old
// head is kept under refs/recovery/); dryRun only plans it. The search
// index sees its last context gone and rebuilds.
func (n *Node) Restore(ctx context.Context, at time.Time, dryRun bool) (plan *gitstore.RestorePlan, err error) {
	params := audit.Fields{"at": at.UTC().Format(time.RFC3339Nano), "dry_run": strconv.FormatBool(dryRun)}
	err = n.audit.Do(ctx, "restore", params, func() (audit.Fields, error) {
		if plan, err = n.incidents.restoring(ctx, n.store, at, dryRun, func() (*gitstore.RestorePlan, error) { return n.restore(ctx, at, dryRun) }); err != nil {
			return nil, err
		}
		if !dryRun && plan.RolledBack > 0 && n.engine != nil && n.engine.learn != nil {
			n.engine.learn.Notify() // its model may have learned from what was rolled back
		}
		return audit.Fields{"from": plan.From, "to": plan.To, "rolled_back": strconv.Itoa(plan.RolledBack),
			"kept": strconv.Itoa(plan.Kept), "recovery_ref": plan.RecoveryRef}, nil
	})
	return plan, err
}

// restore rewinds the store, or in a cluster every node through the log
// (the plan is this node's preview of it).
func (n *Node) restore(ctx context.Context, at time.Time, dryRun bool) (*gitstore.RestorePlan, error) {
	if n.cluster == nil {
		return n.store.RestoreTo(ctx, at, dryRun)
	}
	plan, err := n.store.RestoreTo(ctx, at, true)
	if err != nil || dryRun || plan.RolledBack == 0 {
		return plan, err
	}
	if err := n.cluster.Restore(ctx, at); err != nil {
		return nil, err
	}
	plan.DryRun = false
	return plan, nil
}

// Recover runs the cascading recovery now: the steps, and whether the
// node stops (a critical component could not be recovered).
func (n *Node) Recover(ctx context.Context) (res httpapi.RecoverResult, err error) {
	err = n.audit.Do(ctx, "recover", nil, func() (audit.Fields, error) {
		res = httpapi.RecoverResult{Steps: n.mgr.Run(recovery.WithTrigger(ctx, operator(ctx, "a recovery"))), Stopping: n.mgr.Fatal()}
		out := audit.Fields{"stopping": strconv.FormatBool(res.Stopping)}
		for _, s := range res.Steps {
			out[s.Component] = string(s.Status)
		}
		return out, nil
	})
	return res, err
}

// Backup writes a verified bundle into the node's backup directory now.
func (n *Node) Backup(ctx context.Context) (info *gitstore.BackupInfo, err error) {
	err = n.audit.Do(ctx, "backup", audit.Fields{"dir": n.cfg.backupDir()}, func() (audit.Fields, error) {
		if info, err = n.store.Backup(ctx, n.cfg.backupDir()); err != nil {
			return nil, err
		}
		return audit.Fields{"path": info.Path, "head": info.Head, "bytes": strconv.FormatInt(info.Bytes, 10)}, nil
	})
	return info, err
}

// Audit is the node's audit log, for other admin actions (such as a
// configuration reload: wrap it in Audit().Do) and for the server's
// authentication failures (Audit().AuthFailure).
func (n *Node) Audit() *audit.Log { return n.audit }

// AuditLog returns the records of the audit log so far, for GET
// /v1/admin/audit.
func (n *Node) AuditLog(context.Context) (io.ReadCloser, error) { return n.audit.Snapshot() }

// HoldMerges runs f while the store merges, repacks and repairs no packs:
// a stock git reading the running node's repository meanwhile (git fsck)
// finds every pack it listed.
func (n *Node) HoldMerges(f func() error) error { return n.store.HoldMerges(f) }
