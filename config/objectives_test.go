package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/config"
)

func TestParse_objectives(t *testing.T) {
	f, err := config.Parse("nexus.yaml", []byte("server:\n  max_chain_depth: 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	def := config.DefaultObjectives()
	if len(def) != len(config.ObjectiveNames) {
		t.Fatalf("%d defaults for %d scenarios", len(def), len(config.ObjectiveNames))
	}
	for _, name := range config.ObjectiveNames {
		if f.Objectives[name] != def[name] || def[name] <= 0 {
			t.Errorf("%s: %v without a section, want the default %v (positive)", name, f.Objectives[name], def[name])
		}
	}

	f, err = config.Parse("nexus.yaml", []byte("objectives:\n  index_rebuild: 2m\n  leader_failover: 1500ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := config.DefaultObjectives()
	want[config.ObjectiveIndexRebuild] = 2 * time.Minute
	want[config.ObjectiveLeaderFailover] = 1500 * time.Millisecond
	for _, name := range config.ObjectiveNames {
		if f.Objectives[name] != want[name] {
			t.Errorf("%s: %v, want %v", name, f.Objectives[name], want[name])
		}
	}
	if len(f.Objectives) != len(config.ObjectiveNames) {
		t.Errorf("%d objectives, want %d: %v", len(f.Objectives), len(config.ObjectiveNames), f.Objectives)
	}

	known := "(known: agent_failover, disk_full_resume, index_files_deleted, index_rebuild, leader_failover, object_repair, pack_truncated, process_restart, restore_from_backup)"
	for _, c := range []struct{ text, err string }{
		{"objectives:\n  index_rebuild: 1m\n  leader_fail: 2s\n", "nexus.yaml:3: objectives.leader_fail: unknown scenario " + known},
		{"objectives:\n  process_restart: 0s\n", "nexus.yaml:2: objectives.process_restart: must be positive, not 0s"},
		{"objectives:\n  disk_full_resume: -5s\n", "nexus.yaml:2: objectives.disk_full_resume: must be positive, not -5s"},
		{"objectives:\n  agent_failover: 5\n", `nexus.yaml:2: objectives.agent_failover: "5" is not a duration (e.g. 30s)`},
		{"objectives: [index_rebuild]\n", "objectives: a list is not a mapping"},
	} {
		_, err := config.Parse("nexus.yaml", []byte(c.text))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: %v, want an error with %q", c.text, err, c.err)
		}
	}
}
