package main

import (
	"flag"
	"time"

	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/node"
)

// servedPredict is what serve needs to merge the predictions' flags with
// the configuration file's predict section: the flags given.
type servedPredict struct {
	given map[string]bool
}

// predictFlags are serve's settings of the predictions of /health.
func predictFlags(fs *flag.FlagSet, p *node.PredictConfig, sp *servedPredict) {
	fs.DurationVar(&p.Interval, "predict-interval", node.DefaultPredictInterval, "how often the trends of /health's predictions are sampled (they also sample at each health check); default: the config's predict.interval, else 10s")
	fs.DurationVar(&p.Window, "predict-window", node.DefaultPredictWindow, "how far back the samples of a trend go; default: the config's predict.window, else 10m")
	fs.DurationVar(&p.DiskHorizon, "disk-horizon", node.DefaultDiskHorizon, "warn in /health when the data directory's file system is predicted full sooner (negative: never); default: the config's predict.disk_horizon, else 1h")
	fs.DurationVar(&p.MemoryHorizon, "memory-horizon", node.DefaultMemoryHorizon, "warn in /health when the memory budget is predicted reached sooner (negative: never); default: the config's predict.memory_horizon, else 10m")
	afterParse(fs, func() error {
		sp.given = map[string]bool{}
		fs.Visit(func(f *flag.Flag) { sp.given[f.Name] = true })
		return nil
	})
}

// fromFile sets the predictions the file's predict section (f, nil for
// none) gives and no flag did.
func (sp *servedPredict) fromFile(p *node.PredictConfig, f *config.Config) {
	if f == nil {
		return
	}
	fp := f.Predict
	set := func(flag string, dst *time.Duration, v time.Duration) {
		if v != 0 && !sp.given[flag] {
			*dst = v
		}
	}
	set("predict-interval", &p.Interval, fp.Interval)
	set("predict-window", &p.Window, fp.Window)
	set("disk-horizon", &p.DiskHorizon, fp.DiskHorizon)
	set("memory-horizon", &p.MemoryHorizon, fp.MemoryHorizon)
}
