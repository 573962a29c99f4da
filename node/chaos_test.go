package node_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A node injects nothing unless its configuration file opts in, and says
// which setting to change.
func TestNode_Chaos_refusedWithoutOptIn(t *testing.T) {
	ctx := context.Background()
	for name, file := range map[string]string{"no file": "", "chaos off": "chaos:\n  enabled: false\n"} {
		cfg := nodetest.Config(t)
		if file != "" {
			withFile(t, &cfg, file)
		}
		n := nodetest.Open(t, cfg)
		_, err := n.Client.ChaosScenarios(ctx)
		if nexus.ErrorCode(err) != nexus.EConflict || !strings.Contains(nexus.ErrorMessage(err), "set chaos.enabled: true") {
			t.Errorf("%s: GET /v1/admin/chaos: %v", name, err)
		}
		_, err = n.Client.Chaos(ctx, "index_damage", nil)
		if nexus.ErrorCode(err) != nexus.EConflict || !strings.Contains(nexus.ErrorMessage(err), "set chaos.enabled: true") {
			t.Errorf("%s: POST /v1/admin/chaos: %v", name, err)
		}
	}
}

// The scenarios a node cannot run say why; bad requests get a clear
// error with a code, and nothing is injected.
func TestNode_Chaos_availabilityAndBadInput(t *testing.T) {
	ctx := context.Background()
	cfg := nodetest.Config(t) // no memory budget, no supervised process
	withFile(t, &cfg, "chaos:\n  enabled: true\n")
	n := nodetest.Open(t, cfg)
	st, err := n.Client.ChaosScenarios(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range st.Scenarios {
		got[s.Name] = s.Component + " " + s.Reason
		if s.Available != (s.Reason == "") {
			t.Errorf("%+v: available and a reason", s)
		}
	}
	want := map[string]string{
		"corrupt_object":  "git_repository ",
		"index_damage":    "semantic_index ",
		"memory_pressure": "memory_cache the node has no memory budget (--memory-budget, or a cgroup memory limit): no governor to put under pressure",
		"kill_process":    "agents the node supervises no running process (supervisor.processes in its configuration file)",
		"disk_fill":       "git_repository ",
		"leader_isolate":  "cluster not a node of a cluster",
		"raft_latency":    "cluster not a node of a cluster",
	}
	if len(got) != len(want) || st.Cluster || !st.Enabled {
		t.Fatalf("status %+v", st)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for _, c := range []struct {
		scenario string
		params   map[string]string
		code     nexus.Code
		msg      string
	}{
		{"", nil, nexus.EInvalid, `field "scenario" is required`},
		{"meteor", nil, nexus.EInvalid, `unknown chaos scenario "meteor"`},
		{"kill_process", nil, nexus.EConflict, "not available on this node: the node supervises no running process"},
		{"index_damage", map[string]string{"mode": "shred"}, nexus.EInvalid, `mode "shred": want delete or damage`},
		{"disk_fill", map[string]string{"hold": "forever"}, nexus.EInvalid, `hold "forever"`},
		{"disk_fill", map[string]string{"hold": "1h"}, nexus.EInvalid, `hold "1h"`},
		{"disk_fill", map[string]string{"floor": "-1"}, nexus.EInvalid, `floor "-1"`},
		// A floor above the free space: nothing to fill, refused.
		{"disk_fill", map[string]string{"floor": "9000000000000000000"}, nexus.EConflict, "already at or below the floor"},
	} {
		_, err := n.Client.Chaos(ctx, c.scenario, c.params)
		if nexus.ErrorCode(err) != c.code || !strings.Contains(nexus.ErrorMessage(err), c.msg) {
			t.Errorf("%s %v: %v, want %s %q", c.scenario, c.params, err, c.code, c.msg)
		}
	}
}
