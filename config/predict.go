package config

import "time"

// Predict sets the predictions of /health and /metrics (docs/RECOVERY.md):
// trends of the free disk space, the memory in use and each agent's
// failures, that warn before the failure comes. The flags of `nexus serve`
// (--predict-interval, --predict-window, --disk-horizon,
// --memory-horizon) win over it, field by field; a field left out takes
// the node's default.
type Predict struct {
	// Interval is how often the trends are sampled in the background
	// (they also sample at each health check), and the span their
	// samples must cover before they predict anything (default 10s).
	Interval time.Duration `yaml:"interval"`
	// Window is how far back the samples of a trend go (default 10m).
	Window time.Duration `yaml:"window"`
	// DiskHorizon: warn when the data directory's file system is
	// predicted full sooner than this (default 1h; negative: never).
	DiskHorizon time.Duration `yaml:"disk_horizon"`
	// MemoryHorizon: warn when the memory budget is predicted reached
	// sooner than this (default 10m; negative: never).
	MemoryHorizon time.Duration `yaml:"memory_horizon"`
}

func (d *decoder) validatePredict(p *Predict) {
	if p.Interval < 0 {
		d.errorf("predict.interval", "%s: must be positive (or left out for the default)", p.Interval)
	}
	if p.Window < 0 {
		d.errorf("predict.window", "%s: must be positive (or left out for the default)", p.Window)
	}
	if p.Interval > 0 && p.Window > 0 && p.Window <= p.Interval {
		d.errorf("predict.window", "%s: must be longer than predict.interval (%s): a trend predicts once its samples span an interval", p.Window, p.Interval)
	}
}
