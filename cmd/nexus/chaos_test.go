package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/chaos"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/crashfs"
)

// chaosDuration is how long TestChaos_RealBinary injects: 90 s under CI,
// 60 s otherwise (enough for every scenario once), NEXUS_CHAOS_DURATION
// for a longer run (e.g. 30m).
func chaosDuration(t *testing.T) time.Duration {
	if v := os.Getenv("NEXUS_CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("NEXUS_CHAOS_DURATION=%q: %v", v, err)
		}
		return d
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		return 90 * time.Second
	}
	return 60 * time.Second
}

// TestChaos_RealBinary runs `nexus chaos --seed 1` over every single-node
// scenario against a real `nexus serve` whose data directory is a tmpfs
// of its own (so that disk_fill can fill it to 0 bytes free), with a
// memory budget, a supervised process and an agent whose provider is a
// fake LLM server, and checks the report: every
// scenario injected, each detected and recovered, every acknowledged
// write read back, fsck clean after each, the injections audited.
func TestChaos_RealBinary(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	d := chaosDuration(t)
	// 64 MiB holds the writes of a few minutes (a write every 50 ms,
	// backups of corrupt_object); a longer run gets 1 GiB, and a memory
	// budget of 512 MiB instead of 128.
	size, budget := "64m", "128"
	if d > 3*time.Minute {
		size, budget = "1g", "512" // and room for the index of tens of thousands of writes
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", data).CombinedOutput(); err != nil {
		crashfs.Unavailable(t, "cannot mount a tmpfs for the data directory (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", data, err, out)
		}
	})
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	// An agent whose provider is a fake speaking the OpenAI wire format,
	// with heartbeats and a short timeout, for the provider scenarios.
	llm := agenttest.NewProvider(t, "llm")
	cfg := filepath.Join(t.TempDir(), "nexus.yaml")
	conf := `chaos:
  enabled: true
  disk_floor: 0
agents:
  - id: writer
    provider: openai
    base_url: ` + llm.URL + `
    model: ` + agenttest.Model + `
    timeout: 1s
    retries: {max: 0}
    breaker: {failures: 1, open_timeout: 1s}
    heartbeat: {interval: 500ms, failure_threshold: 2}
supervisor:
  processes:
    - name: sleeper
      command: ` + sleep + `
      args: ["100000"]
      restart:
        policy: always
        initial_backoff: 500ms
        max_backoff: 1s
        max_restarts: 1000
`
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	token := "chaos-test-token-0123456789abcdefXYZ"
	srv := startServe(t, data, "--config="+cfg, "--memory-budget-mib="+budget, "--recover-interval=1s", "NEXUS_TOKEN="+token)
	defer stopServe(srv)

	dir := t.TempDir()
	jsonFile, mdFile := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.md")
	if out := os.Getenv("NEXUS_CHAOS_REPORT"); out != "" {
		jsonFile, mdFile = out+".json", out+".md" // kept: the report of a long run
	}
	cmd := exec.Command(binary, "chaos", "--server", srv.url, "--duration", d.String(), "--seed", "1",
		"--interval-min", "1s", "--interval-max", "3s", "--json", jsonFile, "--md", mdFile)
	cmd.Env = append(os.Environ(), "NEXUS_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	md, _ := os.ReadFile(mdFile)
	t.Logf("nexus chaos --duration %s --seed 1:\n%s", d, md)
	if err != nil {
		t.Fatalf("nexus chaos: %v\n%s\nserver: %s", err, lastOf(string(out)), lastOf(srv.stderr.String()))
	}
	var rep chaos.Report
	if b, err := os.ReadFile(jsonFile); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := []string{"corrupt_object", "index_damage", "memory_pressure", "kill_process", "disk_fill", "provider_fail", "provider_latency", "leader_isolate", "raft_latency", "kill_leader"}
	if len(rep.Scenarios) != len(want) {
		t.Fatalf("scenarios %+v, want %v", rep.Scenarios, want)
	}
	for i, s := range rep.Scenarios {
		if i >= 7 { // the cluster scenarios
			if s.Name != want[i] || s.Skipped != "not a node of a cluster" || s.Injected != 0 {
				t.Errorf("scenario %+v: want %s skipped on a single node", s, want[i])
			}
			continue
		}
		if s.Name != want[i] || s.Skipped != "" || s.Injected < 1 {
			t.Errorf("scenario %+v: want %s injected at least once, not skipped", s, want[i])
		}
	}
	for _, inj := range rep.Injections {
		switch {
		case inj.Error != "":
			t.Errorf("%s at %s: %s", inj.Scenario, inj.Planned, inj.Error)
		case inj.DetectedAt.Before(inj.InjectedAt) || inj.RecoveredAt.Before(inj.DetectedAt) || inj.Detection == "":
			t.Errorf("%s: injected %s, detected %s (%q), recovered %s: out of order", inj.Scenario, inj.InjectedAt, inj.DetectedAt, inj.Detection, inj.RecoveredAt)
		case len(inj.Check.Lost) > 0 || !inj.Check.FsckClean || inj.Check.ReadBack == 0:
			t.Errorf("%s: data check %+v", inj.Scenario, inj.Check)
		case strings.HasPrefix(inj.Scenario, "provider_") && !strings.Contains(inj.Detection, "agent writer is"):
			t.Errorf("%s: detected by %q, want the agent's health", inj.Scenario, inj.Detection)
		}
	}
	if !rep.Passed || rep.Writes.Lost != 0 || rep.Writes.Acknowledged == 0 || len(rep.Problems) > 0 {
		t.Errorf("report: passed %v, writes %+v, problems %v", rep.Passed, rep.Writes, rep.Problems)
	}
	audit, err := os.ReadFile(filepath.Join(data, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(audit), `"action":"chaos"`); n != 2*len(rep.Injections) {
		t.Errorf("audit log: %d chaos records, want an intent and an outcome for each of %d injections", n, len(rep.Injections))
	}
}

// A node that did not opt in refuses, naming the setting; nexus chaos
// exits 1 with the node's message.
func TestChaos_RefusedWithoutOptIn(t *testing.T) {
	token := "chaos-test-token-0123456789abcdefXYZ"
	srv := startServe(t, t.TempDir(), "NEXUS_TOKEN="+token)
	defer stopServe(srv)
	cmd := exec.Command(binary, "chaos", "--server", srv.url, "--duration", "5s", "--seed", "1")
	cmd.Env = append(os.Environ(), "NEXUS_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "set chaos.enabled: true") {
		t.Fatalf("nexus chaos against a node without chaos.enabled: %v\n%s", err, out)
	}
}

func lastOf(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// TestChaos_Cluster runs the cluster scenarios of `nexus chaos --seed 1`
// against three real `nexus serve` in a cluster, the target a follower
// at the start (leadership moves during the run):
// the leader's raft is cut off its peers (a new leader is elected, the
// old one steps down and catches up) and delayed; each is measured, and
// after each every acknowledged write reads back and the members reach
// one head.
func TestChaos_Cluster(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "nexus.yaml")
	if err := os.WriteFile(cfg, []byte("chaos:\n  enabled: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nodes := newClusterNodes(t, 3, []string{"--config=" + cfg}, nil)
	for _, n := range nodes {
		n.start()
	}
	waitSettled(t, nodes[0], "3 members and a leader", "n1", "n2", "n3")
	leader := waitWritable(t, nodes, "a leader taking writes")
	var target *clusterNode
	for _, n := range nodes {
		if n.id != leader {
			target = n
			break
		}
	}
	dir := t.TempDir()
	jsonFile, mdFile := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.md")
	d := min(chaosDuration(t), 60*time.Second) // 60 s: the run of the cluster scenarios in CI (kill_leader: TestChaos_SpawnKillLeader)
	out, code := nexusCmd(target.env, "chaos", "--server", target.url(), "--duration", d.String(), "--seed", "1",
		"--scenarios", "leader_isolate,raft_latency", "--interval-min", "1s", "--interval-max", "3s", "--json", jsonFile, "--md", mdFile)
	md, _ := os.ReadFile(mdFile)
	t.Logf("nexus chaos --duration %s --seed 1 --scenarios leader_isolate,raft_latency:\n%s", d, md)
	if code != 0 {
		t.Fatalf("nexus chaos: exit %d\n%s", code, lastOf(out))
	}
	var rep chaos.Report
	if b, err := os.ReadFile(jsonFile); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Cluster {
		t.Fatalf("report: not a cluster")
	}
	injected := map[string]int{}
	for _, inj := range rep.Injections {
		injected[inj.Scenario]++
		switch {
		case inj.Error != "":
			t.Errorf("%s at %s: %s", inj.Scenario, inj.Planned, inj.Error)
		case inj.Node == "":
			// The leader refuses leader_isolate: an injection that succeeded went to it.
			t.Errorf("%s injected into the target %s, want the leader (found through it)", inj.Scenario, target.url())
		case inj.Scenario == "leader_isolate" && (inj.DetectedAt.Before(inj.InjectedAt) || !strings.Contains(inj.Detection, "no leader")):
			t.Errorf("leader_isolate: detected %s (%q), injected %s", inj.DetectedAt, inj.Detection, inj.InjectedAt)
		case inj.RecoveredAt.Before(inj.Until) || inj.Until.IsZero():
			t.Errorf("%s: recovered %s, before the fault ended %s", inj.Scenario, inj.RecoveredAt, inj.Until)
		case !inj.Check.HeadsIdentical || !inj.Check.FsckClean || len(inj.Check.Lost) > 0 || inj.Check.ReadBack == 0:
			t.Errorf("%s: data check %+v", inj.Scenario, inj.Check)
		}
	}
	if injected["leader_isolate"] == 0 || injected["raft_latency"] == 0 {
		t.Errorf("injections by scenario %v: want both", injected)
	}
	if !rep.Passed || rep.Writes.Lost != 0 || rep.Writes.Acknowledged == 0 {
		t.Errorf("report: passed %v, writes %+v, problems %v", rep.Passed, rep.Writes, rep.Problems)
	}
}

// A node SIGKILLed while it holds a disk_fill ballast cannot remove it;
// the next start of the node does, before it opens its store, and logs
// it.
func TestChaos_BallastRemovedAtRestart(t *testing.T) {
	data := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "nexus.yaml")
	if err := os.WriteFile(cfg, []byte("chaos:\n  enabled: true\n  disk_floor: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	token := "chaos-test-token-0123456789abcdefXYZ"
	srv := startServe(t, data, "--config="+cfg, "NEXUS_TOKEN="+token)
	var st syscall.Statfs_t
	if err := syscall.Statfs(data, &st); err != nil {
		t.Fatal(err)
	}
	// A ballast of about 32 MiB: the floor is what is free less that.
	floor := int64(st.Bavail)*int64(st.Bsize) - 32<<20
	c := httpapi.NewClient(srv.url, httpapi.WithToken(token))
	inj, err := c.Chaos(context.Background(), "disk_fill", map[string]string{"floor": strconv.FormatInt(floor, 10), "hold": "5m"})
	if err != nil {
		stopServe(srv)
		t.Fatalf("disk_fill: %v", err)
	}
	name, _ := inj.Details["ballast"].(string)
	ballast := filepath.Join(data, name)
	if fi, err := os.Stat(ballast); err != nil || !strings.HasPrefix(name, "chaos-ballast-") || fi.Size() == 0 {
		stopServe(srv)
		t.Fatalf("after disk_fill (%s): ballast %q: %v", inj.What, name, err)
	}
	srv.cmd.Process.Kill() // during the 5-minute hold
	srv.cmd.Wait()
	if _, err := os.Stat(ballast); err != nil {
		t.Fatalf("the ballast is gone after SIGKILL already: %v", err)
	}
	srv = startServe(t, data, "--config="+cfg, "NEXUS_TOKEN="+token)
	defer stopServe(srv)
	if _, err := os.Stat(ballast); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ballast %s after the restart: %v, want removed", name, err)
	}
	if log := srv.stderr.String(); !strings.Contains(log, "removed a ballast file left by a disk_fill") || !strings.Contains(log, name) {
		t.Errorf("the restart did not log the removal:\n%s", lastOf(log))
	}
	c = httpapi.NewClient(srv.url, httpapi.WithToken(token))
	if _, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeObservation, Content: "after the ballast"}); err != nil {
		t.Errorf("a write after the restart: %v", err)
	}
}

// `nexus chaos --spawn 3` starts three real `nexus serve` of the binary
// in a cluster and runs kill_leader against it: the leader's process is
// SIGKILLed, a surviving member notices, a write is acknowledged through
// it (failover), the killed member is restarted with its flags and
// rejoins; after each, every acknowledged write reads back and the three
// heads agree. A passed run stops the nodes and removes its temporary
// directory; --spawn-dir keeps the logs.
func TestChaos_SpawnKillLeader(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spawn")
	jsonFile := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(binary, "chaos", "--spawn", "3", "--spawn-dir", dir, "--spawn-arg=--no-search", "--scenarios", "kill_leader",
		"--duration", "8s", "--seed", "1", "--interval-min", "1s", "--interval-max", "2s", "--json", jsonFile)
	out, err := cmd.CombinedOutput()
	t.Logf("nexus chaos --spawn 3 --scenarios kill_leader:\n%s", lastOf(string(out)))
	if err != nil {
		t.Fatalf("nexus chaos: %v", err)
	}
	var rep chaos.Report
	if b, err := os.ReadFile(jsonFile); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Cluster || !rep.Passed || rep.Writes.Lost != 0 || len(rep.Injections) == 0 {
		t.Fatalf("report: cluster %v passed %v writes %+v injections %d problems %v", rep.Cluster, rep.Passed, rep.Writes, len(rep.Injections), rep.Problems)
	}
	for _, inj := range rep.Injections {
		switch {
		case inj.Scenario != "kill_leader" || inj.Error != "":
			t.Errorf("%s: %s", inj.Scenario, inj.Error)
		case !strings.HasPrefix(inj.What, "SIGKILL to the process of the leader") || inj.Detection == "":
			t.Errorf("injection %q detected by %q", inj.What, inj.Detection)
		case inj.Failover <= 0 || inj.Rejoin <= 0 || inj.Detect <= 0 || inj.Recover < inj.Failover:
			t.Errorf("times: detect %s failover %s rejoin %s recover %s", inj.Detect, inj.Failover, inj.Rejoin, inj.Recover)
		case !inj.Check.HeadsIdentical || len(inj.Check.Lost) > 0 || !inj.Check.FsckClean || inj.Check.ReadBack == 0:
			t.Errorf("data check %+v", inj.Check)
		}
	}
	// Each node ran as a process of its own, started again after each
	// kill: the logs have the starts.
	var starts int
	for _, id := range []string{"n1", "n2", "n3"} {
		b, err := os.ReadFile(filepath.Join(dir, id+".log"))
		if err != nil {
			t.Fatal(err)
		}
		starts += strings.Count(string(b), "nexus listening on")
	}
	if starts != 3+len(rep.Injections) {
		t.Errorf("%d starts in the logs, want 3 and one restart per kill (%d)", starts, len(rep.Injections))
	}
}

// --spawn's bad uses are usage errors (exit 2) that say what to give.
func TestChaos_SpawnUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--spawn", "2"}, "--spawn 2: want 3 or more nodes"},
		{[]string{"--spawn", "3", "--server", "http://127.0.0.1:1"}, "and no --server"},
		{[]string{"--server", "http://127.0.0.1:1", "--spawn-dir", "x"}, "--spawn-dir, --spawn-config and --spawn-arg go with --spawn"},
		{[]string{"--spawn", "3", "--spawn-arg", "no-dashes"}, `"no-dashes": want --name=value`},
		{nil, "--server is required"},
	} {
		out, code := nexusCmd(nil, append([]string{"chaos"}, c.args...)...)
		if code != 2 || !strings.Contains(out, c.msg) {
			t.Errorf("nexus chaos %v: exit %d, want 2 and %q:\n%s", c.args, code, c.msg, out)
		}
	}
}
