package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// scheduledBackup is one round of the backup schedule: a verified bundle
// into the backup directory, keeping the newest BackupKeep. An idle node
// writes none: the newest bundle already holds every ref as it is, and
// identical bundles would evict distinct ones.
func (n *Node) scheduledBackup(ctx context.Context) error {
	if n.store.Len() == 0 {
		return nil
	}
	start := time.Now()
	info, written, err := n.store.BackupIfChanged(ctx, n.cfg.backupDir())
	if err != nil {
		n.log.Error("scheduled backup failed", "err", err)
		return fmt.Errorf("backup into %s: %s", n.cfg.backupDir(), nexus.Describe(err))
	}
	if !written {
		return nil
	}
	n.log.Info("backup written", "path", info.Path, "bytes", info.Bytes, "took", time.Since(start))
	if _, err := gitstore.PruneBackups(n.cfg.backupDir(), n.cfg.BackupKeep); err != nil {
		n.log.Warn("pruning old backups failed", "err", err)
	}
	return nil
}

// pushMirror is one round of the mirror schedule.
func (n *Node) pushMirror(ctx context.Context) error {
	if n.store.Len() == 0 {
		return nil
	}
	m, err := n.store.PushMirror(ctx, n.cfg.Mirror)
	if err != nil {
		n.log.Error("mirror push failed", "mirror", n.cfg.Mirror, "err", err)
		return fmt.Errorf("push to the mirror %s: %s", n.cfg.Mirror, nexus.Describe(err))
	}
	n.log.Info("mirror pushed", "mirror", m.Path, "head", m.Head, "took", m.Took)
	return nil
}

// backupHealth is the backups component of /health: disabled without a
// schedule, degraded while the last round of a schedule failed, with the
// age of the newest backup (which keeps counting while backups fail).
func (n *Node) backupHealth(context.Context) nexus.ComponentHealth {
	var scheds []*service
	for _, s := range n.services {
		if s.name == "backup" || s.name == "mirror" {
			scheds = append(scheds, s)
		}
	}
	if len(scheds) == 0 {
		return nexus.ComponentHealth{Status: nexus.StatusDisabled}
	}
	h := nexus.ComponentHealth{Status: nexus.StatusHealthy, Details: map[string]any{}}
	if at, bytes, ok := n.lastBackup(); ok {
		h.Details["newest_backup"] = at
		h.Details["age_seconds"] = int64(time.Since(at).Seconds())
		h.Details["bytes"] = bytes
	}
	var errs []error
	for _, s := range scheds {
		st := s.Stats()
		h.Details[s.name] = st
		if st.LastError != "" {
			errs = append(errs, errors.New(st.LastError))
		}
	}
	if err := errors.Join(errs...); err != nil {
		h.Status = nexus.StatusDegraded
		h.Error = err.Error()
	}
	return h
}

// lastBackup is the newest backup for /metrics and /health. While a
// schedule runs and no backup can be listed, the age counts from the
// node's start: it never disappears while the node has no backup.
func (n *Node) lastBackup() (time.Time, int64, bool) {
	list, err := gitstore.ListBackups(n.cfg.backupDir())
	if err == nil && len(list) > 0 {
		return list[0].Time, list[0].Bytes, true
	}
	if n.backups != nil {
		return n.opened, 0, true
	}
	return time.Time{}, 0, false
}
