package config_test

import (
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/config"
)

func TestParse_chaos(t *testing.T) {
	for _, c := range []struct {
		text    string
		enabled bool
		floor   config.Size
		err     string
	}{
		{"server:\n  max_chain_depth: 3\n", false, config.DefaultDiskFloor, ""},
		{"chaos:\n  enabled: true\n", true, config.DefaultDiskFloor, ""},
		{"chaos:\n  enabled: true\n  disk_floor: 10MiB\n", true, 10 << 20, ""},
		{"chaos:\n  enabled: true\n  disk_floor: 0\n", true, 0, ""},
		{"chaos:\n  disk_floor: -1\n", false, 0, "chaos.disk_floor: -1: must be 0 or more"},
		{"chaos:\n  enable: true\n", false, 0, "chaos.enable"},
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
		if f.Chaos.Enabled != c.enabled || f.Chaos.DiskFloor != c.floor {
			t.Errorf("%q: %+v, want enabled %v floor %d", c.text, f.Chaos, c.enabled, c.floor)
		}
	}
}
