package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/node"
)

// The configuration file's predict section sets what no flag does; a
// flag wins over it, field by field; a field left out keeps the default.
func TestServe_predictFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "nexus.yaml")
	if err := os.WriteFile(file, []byte("predict:\n  interval: 2s\n  window: 1m\n  disk_horizon: 2h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want node.PredictConfig
	}{
		{nil, node.PredictConfig{Interval: node.DefaultPredictInterval, Window: node.DefaultPredictWindow, DiskHorizon: node.DefaultDiskHorizon, MemoryHorizon: node.DefaultMemoryHorizon}},
		{[]string{"--config", file}, node.PredictConfig{Interval: 2 * time.Second, Window: time.Minute, DiskHorizon: 2 * time.Hour, MemoryHorizon: node.DefaultMemoryHorizon}},
		{[]string{"--config", file, "--disk-horizon", "-1s", "--predict-window", "5m"}, node.PredictConfig{Interval: 2 * time.Second, Window: 5 * time.Minute, DiskHorizon: -time.Second, MemoryHorizon: node.DefaultMemoryHorizon}},
	} {
		t.Setenv("NEXUS_TOKEN", "")
		t.Setenv("NEXUS_TOKEN_FILE", "")
		sc, err := serveFlags(append([]string{"--data", t.TempDir(), "--no-search"}, c.args...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		nc, done, err := sc.nodeConfig(t.Context(), io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		done()
		if nc.Predict != c.want {
			t.Errorf("%v: predictions %+v, want %+v", c.args, nc.Predict, c.want)
		}
	}
}
