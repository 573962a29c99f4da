package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/config"
)

func TestParse_predict(t *testing.T) {
	for _, c := range []struct {
		text string
		want config.Predict
		err  string
	}{
		{"server:\n  max_chain_depth: 3\n", config.Predict{}, ""},
		{"predict:\n  interval: 5s\n  window: 2m\n  disk_horizon: 3h\n  memory_horizon: 20m\n",
			config.Predict{Interval: 5 * time.Second, Window: 2 * time.Minute, DiskHorizon: 3 * time.Hour, MemoryHorizon: 20 * time.Minute}, ""},
		{"predict:\n  disk_horizon: -1s\n  memory_horizon: -1s\n", config.Predict{DiskHorizon: -time.Second, MemoryHorizon: -time.Second}, ""},
		{"predict:\n  interval: -5s\n", config.Predict{}, "predict.interval: -5s: must be positive"},
		{"predict:\n  window: -1m\n", config.Predict{}, "predict.window: -1m0s: must be positive"},
		{"predict:\n  interval: 1m\n  window: 30s\n", config.Predict{}, "predict.window: 30s: must be longer than predict.interval (1m0s)"},
		{"predict:\n  interval: ten\n", config.Predict{}, "predict.interval"},
		{"predict:\n  horizon: 1h\n", config.Predict{}, "predict.horizon"},
	} {
		f, err := config.Parse("nexus.yaml", []byte(c.text))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.text, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.text, err)
			continue
		}
		if f.Predict != c.want {
			t.Errorf("%q: %+v, want %+v", c.text, f.Predict, c.want)
		}
	}
}
