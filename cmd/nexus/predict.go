package main

import (
	"flag"

	"github.com/nexus-mem/nexus/node"
)

// predictFlags are serve's settings of the predictions of /health.
func predictFlags(fs *flag.FlagSet, p *node.PredictConfig) {
	fs.DurationVar(&p.Interval, "predict-interval", node.DefaultPredictInterval, "how often the trends of /health's predictions are sampled (they also sample at each health check)")
	fs.DurationVar(&p.Window, "predict-window", node.DefaultPredictWindow, "how far back the samples of a trend go")
	fs.DurationVar(&p.DiskHorizon, "disk-horizon", node.DefaultDiskHorizon, "warn in /health when the data directory's file system is predicted full sooner (negative: never)")
	fs.DurationVar(&p.MemoryHorizon, "memory-horizon", node.DefaultMemoryHorizon, "warn in /health when the memory budget is predicted reached sooner (negative: never)")
}
