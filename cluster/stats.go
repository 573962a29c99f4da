package cluster

import "time"

// SnapshotStats are this node's figures of snapshots since it opened:
// how many it took, how many bundles of its history it made to send
// (one per snapshot, kept for later sends), how many it installed, and
// the size and time of the last bundle made and of the last install.
type SnapshotStats struct {
	Taken, Sent, Installed int
	// BundleBytes and BundleTime: the last bundle made for a follower
	// (git bundle of main's history, written and fsynced).
	BundleBytes int64
	BundleTime  time.Duration
	// InstallBytes and InstallTime: the last snapshot installed here,
	// once received whole: its bundle copied out, indexed, main moved,
	// derived state rebuilt (the transfer itself is not counted).
	InstallBytes int64
	InstallTime  time.Duration
}

// SnapshotStats reports the snapshots this node took, sent and
// installed since it opened.
func (n *Node) SnapshotStats() SnapshotStats {
	s := n.snaps.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	return SnapshotStats{
		Taken: s.taken, Sent: s.sent, Installed: s.installed,
		BundleBytes: s.bundleBytes, BundleTime: s.bundleTime,
		InstallBytes: s.installBytes, InstallTime: s.installTime,
	}
}
