package config

// DefaultDiskFloor is the default safety floor of the disk_fill chaos
// scenario: the free space a ballast file never goes below.
const DefaultDiskFloor Size = 256 << 20

// Chaos lets `nexus chaos` inject faults into the node (docs/CHAOS.md).
// Off unless the file says so: a node refuses every injection otherwise.
type Chaos struct {
	// Enabled opts the node in to fault injection through
	// POST /v1/admin/chaos (admin role, audited).
	Enabled bool `yaml:"enabled"`
	// DiskFloor is the safety floor of the disk_fill scenario: the free
	// space of the data directory's filesystem that a ballast file never
	// goes below, whatever the request asks (default 256MiB). 0 lets a
	// ballast fill the filesystem: only for a data directory on a
	// filesystem of its own.
	DiskFloor Size `yaml:"disk_floor"`
}

func (d *decoder) validateChaos(c *Chaos) {
	if c.DiskFloor < 0 {
		d.errorf("chaos.disk_floor", "%d: must be 0 or more", c.DiskFloor)
	}
}
