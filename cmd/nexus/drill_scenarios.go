package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent/agenttest"
	"github.com/nexus-mem/nexus/cluster"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/damage"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/orchestrator"
	"github.com/nexus-mem/nexus/supervisor"
)

// drillProcess is the supervised process of the process_restart drill.
const drillProcess = "drill-sleeper"

// processRestart: a node supervises one process (sleep, restart policy
// on-failure with the default backoff); it is SIGKILLed; timed until
// GET /v1/agents lists it running again under another pid.
func (d *drill) processRestart(ctx context.Context, dir string) (rtoRow, error) {
	text := "supervisor:\n  processes:\n    - name: " + drillProcess + "\n      command: sleep\n      args: [\"3600\"]\n"
	n, err := d.launchConfigured(ctx, dir, text)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(d.cfg.recovery.timeout)
	c := httpapi.NewClient(n.url, httpapi.WithHTTPClient(n.http))
	var before supervisor.Status
	err = d.until(ctx, n, "the supervised process running", func() (bool, error) {
		var err error
		before, err = processStatus(ctx, c)
		return err == nil && before.State == supervisor.StateRunning && before.PID > 0, err
	})
	if err != nil {
		return rtoRow{}, err
	}
	t0 := time.Now()
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		return rtoRow{}, fmt.Errorf("kill the supervised process %d: %w", before.PID, err)
	}
	var after supervisor.Status
	err = d.until(ctx, n, "the supervised process running again", func() (bool, error) {
		var err error
		after, err = processStatus(ctx, c)
		return err == nil && after.State == supervisor.StateRunning && after.PID > 0 && after.PID != before.PID, err
	})
	total := time.Since(t0)
	if err != nil {
		return rtoRow{}, err
	}
	if after.Restarts != before.Restarts+1 || after.LastExit == nil || after.LastExit.Signal == "" {
		return rtoRow{}, fmt.Errorf("running again, but with %d restarts (want %d) and last exit %v (want a signal)", after.Restarts, before.Restarts+1, after.LastExit)
	}
	return rtoRow{
		fault: "a supervised process SIGKILLed", path: "the supervisor (restart on-failure, backoff 100ms)",
		took: secs(total), d: total,
		parts: fmt.Sprintf("pid %d killed (%s); pid %d running, restarts %d", before.PID, after.LastExit.Signal, after.PID, after.Restarts),
	}, nil
}

// launchConfigured writes text as DIR/nexus.yaml and starts a node on
// the new data directory DIR/data with it, without search.
func (d *drill) launchConfigured(ctx context.Context, dir, text string) (*benchNode, error) {
	conf := filepath.Join(dir, "nexus.yaml")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	return d.launch(ctx, filepath.Join(dir, "data"), "--no-search", "--config", conf)
}

// processStatus is the status of the drill's supervised process.
func processStatus(ctx context.Context, c *httpapi.Client) (supervisor.Status, error) {
	list, err := c.Agents(ctx)
	if err != nil {
		return supervisor.Status{}, err
	}
	for _, p := range list.Processes {
		if p.Name == drillProcess {
			return p, nil
		}
	}
	return supervisor.Status{}, fmt.Errorf("%s is not among the supervised processes", drillProcess)
}

// agentFailover: a pool of one agent, with a backup agent, each calling
// its own provider (fake servers speaking the OpenAI wire format over
// loopback); the pool answers once through its agent, then that agent's
// provider answers every call with 503; timed from there to the pool's
// answer, which must come from the backup and be stored.
func (d *drill) agentFailover(ctx context.Context, dir string) (rtoRow, error) {
	primary, stopPrimary := agenttest.Start("primary")
	defer stopPrimary()
	backup, stopBackup := agenttest.Start("backup")
	defer stopBackup()
	text := fmt.Sprintf(`agents:
  - {id: primary, provider: openai, model: %[1]s, base_url: %[2]q}
  - {id: backup, provider: openai, model: %[1]s, base_url: %[3]q}
pools:
  - name: drill-pool
    members: [{agent: primary}]
    backups: [backup]
`, agenttest.Model, primary.URL, backup.URL)
	n, err := d.launchConfigured(ctx, dir, text)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(d.cfg.recovery.timeout)
	c := httpapi.NewClient(n.url) // an answer may take longer than n.http waits
	ask := func(prompt, from string) (*orchestrator.Answer, error) {
		actx, cancel := context.WithTimeout(ctx, d.cfg.recovery.timeout)
		defer cancel()
		ans, err := c.Generate(actx, orchestrator.GenerateRequest{Agent: "drill-pool", Prompt: prompt, Namespace: "drill"})
		if err != nil {
			return nil, fmt.Errorf("ask the pool: %w", err)
		}
		if want := agenttest.Answer(from, prompt); ans.Context == nil || ans.Context.Content != want || ans.Provenance.FinalAgent != from {
			return nil, fmt.Errorf("the pool answered %+v, want %q from %s", ans, want, from)
		}
		return ans, nil
	}
	if _, err := ask("before the failure", "primary"); err != nil {
		return rtoRow{}, err
	}
	calls := primary.Calls()
	t0 := time.Now()
	primary.SetDown(true)
	ans, err := ask("during the failure", "backup")
	total := time.Since(t0)
	if err != nil {
		return rtoRow{}, err
	}
	if primary.Calls() == calls {
		return rtoRow{}, errors.New("the backup answered without the primary being asked")
	}
	got, err := c.Get(ctx, ans.Context.ID)
	if err != nil || got.Content != ans.Context.Content {
		return rtoRow{}, fmt.Errorf("the answer stored as %s does not read back: %v", ans.Context.ID, err)
	}
	return rtoRow{
		fault: "an agent's provider answers 503", path: "the pool's backup (the agent's default retries)",
		took: secs(total), d: total,
		parts: fmt.Sprintf("%d requests to the failing provider, %d attempts in all; answered by %s, stored as %s", primary.Calls()-calls, ans.Provenance.Attempts, ans.Provenance.FinalAgent, ans.Context.ID),
	}, nil
}

// leaderFailover: a scratch cluster of three in-process nodes (the
// machinery of `nexus bench cluster`, default raft timeouts) under a
// light load; its leader is killed; timed to the first write
// acknowledged by another node. The killed node is opened again and the
// three must end with the same head and the same contexts.
func (d *drill) leaderFailover(ctx context.Context, dir string) (rtoRow, error) {
	cb := &clusterBench{cfg: clusterBenchConfig{dir: dir, size: 1024, loadClients: 4, probeEvery: 5 * time.Millisecond,
		timeout: d.cfg.recovery.timeout}, out: io.Discard, log: d.log}
	cl, err := cb.openCluster(ctx, "cluster", node.ClusterConfig{Timeouts: cluster.DefaultTimeouts()}, "")
	if err != nil {
		return rtoRow{}, err
	}
	defer cl.close()
	if err := cl.converge(ctx); err != nil {
		return rtoRow{}, err
	}
	old, err := cl.leader(ctx)
	if err != nil {
		return rtoRow{}, err
	}
	r, err := cl.killLeader(ctx, old)
	if err != nil {
		return rtoRow{}, err
	}
	head, count := cl.members[0].n.Head(), cl.members[0].n.Len()
	for _, m := range cl.members[1:] {
		if m.n.Head() != head || m.n.Len() != count {
			return rtoRow{}, fmt.Errorf("the nodes differ after the failover: %s at %s (%d contexts), %s at %s (%d contexts)",
				cl.members[0].id, head, count, m.id, m.n.Head(), m.n.Len())
		}
	}
	t := cluster.DefaultTimeouts()
	return rtoRow{
		fault: "the leader of a 3-node cluster killed", path: "raft election, default timeouts",
		took: secs(r.acked), d: r.acked,
		parts: fmt.Sprintf("heartbeat %s, election %s; %s killed; new leader ready after %s; %s rejoined in %s; 3 heads identical (%d contexts)",
			t.Heartbeat, t.Election, old.id, secs3(r.ready), old.id, secs(r.rejoined), count),
	}, nil
}

// restoreFromBackup: the generated store's newest bundle restored by
// `nexus backup restore` into a new directory, then `nexus serve` on it;
// timed from the restore's start to /readyz 200. The node must then hold
// every context, indexed, exactly as written, and git fsck pass.
func (d *drill) restoreFromBackup(ctx context.Context, dir string) (rtoRow, error) {
	bundle, err := d.bundle()
	if err != nil {
		return rtoRow{}, err
	}
	data := filepath.Join(dir, "data")
	t0 := time.Now()
	out, code, err := d.runExe(ctx, "backup", "restore", "--data", data, bundle)
	if err != nil {
		return rtoRow{}, err
	}
	if code != 0 {
		return rtoRow{}, fmt.Errorf("nexus backup restore exited %d: %s", code, out)
	}
	restored := time.Since(t0)
	n, err := d.launch(ctx, data)
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(d.cfg.recovery.timeout)
	if err := d.until(ctx, n, "ready", n.ready); err != nil {
		return rtoRow{}, err
	}
	total := time.Since(t0)
	if err := d.settled(ctx, n); err != nil {
		return rtoRow{}, err
	}
	n.stop(d.cfg.recovery.timeout)
	return rtoRow{
		fault: "the store lost", path: "`nexus backup restore`, then `nexus serve`",
		took: secs(total), d: total,
		parts: fmt.Sprintf("%s restored in %s (%s), ready %s later; every context read back", filepath.Base(bundle), secs(restored), strings.TrimSpace(out), secs(total-restored)),
	}, d.gitFsck(ctx, data)
}

// diskFullSize is the file system of the disk_full_resume drill.
const diskFullSize = "32m"

// diskFullResume: a node on a tmpfs of its own takes a few writes; a
// ballast file fills the file system; writes must then be refused with
// insufficient_storage; the ballast is deleted; timed to the first write
// acknowledged. Every acknowledged write must read back and git fsck
// pass.
func (d *drill) diskFullResume(ctx context.Context, dir string) (rtoRow, error) {
	mnt := filepath.Join(dir, "fs")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return rtoRow{}, err
	}
	unmount, err := damage.MountTmpfs(mnt, diskFullSize)
	if err != nil {
		return rtoRow{}, fmt.Errorf("disk_full_resume needs a small file system of its own: %w; run the drill as root, or leave the scenario out with --scenarios", err)
	}
	defer unmount()
	data := filepath.Join(mnt, "data")
	n, err := d.launch(ctx, data, "--no-search")
	if err != nil {
		return rtoRow{}, err
	}
	defer n.stop(d.cfg.recovery.timeout)
	c := httpapi.NewClient(n.url, httpapi.WithHTTPClient(n.http))
	written := map[nexus.ID]string{}
	put := func(content string) error {
		got, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Namespace: "drill", Content: content})
		if err == nil {
			written[got.ID] = content
		}
		return err
	}
	for i := range 10 {
		if err := put(fmt.Sprintf("written before the disk fills, %d", i)); err != nil {
			return rtoRow{}, err
		}
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := fillDisk(ballast); err != nil {
		return rtoRow{}, err
	}
	var refused error
	for i := 0; i < 100 && refused == nil; i++ {
		noise := make([]byte, 32<<10)
		rand.Read(noise)
		refused = put(hex.EncodeToString(noise))
	}
	if nexus.ErrorCode(refused) != nexus.EInsufficientStorage {
		return rtoRow{}, fmt.Errorf("a write on the full file system: %v, want insufficient_storage", refused)
	}
	t0 := time.Now()
	if err := os.Remove(ballast); err != nil {
		return rtoRow{}, err
	}
	var tries int
	err = d.until(ctx, n, "a write acknowledged", func() (bool, error) {
		tries++
		err := put("written once the space was freed")
		return err == nil, err
	})
	total := time.Since(t0)
	if err != nil {
		return rtoRow{}, err
	}
	for id, content := range written {
		got, err := c.Get(ctx, id)
		if err != nil || got.Content != content {
			return rtoRow{}, fmt.Errorf("%s, acknowledged, does not read back: %v", id, err)
		}
	}
	n.stop(d.cfg.recovery.timeout)
	return rtoRow{
		fault: "the data directory's file system full", path: "the same running node",
		took: secs(total), d: total,
		parts: fmt.Sprintf("tmpfs of %s filled by a ballast file; refused: %s; ballast deleted; acknowledged at try %d; %d acknowledged writes read back",
			diskFullSize, nexus.ErrorMessage(refused), tries, len(written)),
	}, d.gitFsck(ctx, data)
}

// fillDisk writes the file path until its file system is full.
func fillDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill the file system: %w", err)
		}
	}
}
