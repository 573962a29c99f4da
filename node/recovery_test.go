package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/internal/damage"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
	"github.com/nexus-mem/nexus/recovery"
)

// putMany writes n contexts through the node's API and returns them.
func putMany(t *testing.T, n *nodetest.Node, count int, prefix string) map[nexus.ID]string {
	t.Helper()
	written := map[nexus.ID]string{}
	for i := range count {
		content := fmt.Sprintf("%s %d: the agents learned something worth keeping", prefix, i)
		c, err := n.Client.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: content})
		if err != nil {
			t.Fatal(err)
		}
		written[c.ID] = content
	}
	return written
}

// checkAll reads every written context back through the node's API.
func checkAll(t *testing.T, n *nodetest.Node, written map[nexus.ID]string) {
	t.Helper()
	for id, content := range written {
		c, err := n.Client.Get(context.Background(), id)
		if err != nil || c.Content != content {
			t.Fatalf("%s: %v (content %q)", id, err, content)
		}
	}
}

// recovered is a component's failure and recovery counts from /health.
func recovered(n *nodetest.Node, component string) (failures, recoveries int) {
	d := n.Health(context.Background()).Components[component].Details
	f, _ := d["failures"].(int64)
	r, _ := d["recoveries"].(map[string]any)
	got, _ := r["recovered"].(int64)
	return int(f), int(got)
}

// flipMiddle flips one bit in the middle of the largest pack.
func flipMiddle(t *testing.T, data string) {
	t.Helper()
	if err := damage.FlipMiddle(data, 0x20); err != nil {
		t.Fatal(err)
	}
}

func gitFsck(t *testing.T, data string) {
	t.Helper()
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
}

// A running node repairs a damaged pack by itself from its backups — the
// bundles it writes, or its mirror — once a deep check finds the damage:
// /health shows the failure and the recovery, every context reads back,
// and stock git finds the repository whole.
func TestNode_RepairsObjectsWhileRunning(t *testing.T) {
	for _, source := range []string{"bundle", "mirror"} {
		t.Run(source, func(t *testing.T) {
			cfg := nodetest.Config(t)
			cfg.NoSearch = true
			cfg.RecoverInterval = time.Hour // only the deep check triggers the cascade
			mirror := filepath.Join(t.TempDir(), "mirror.git")
			n := nodetest.Open(t, cfg)
			written := putMany(t, n, 30, source)
			if source == "bundle" {
				if _, err := n.Backup(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else {
				n.Restart(func(c *node.Config) { c.Mirror = mirror })
				if _, err := n.Store().(*gitstore.Store).PushMirror(context.Background(), mirror); err != nil {
					t.Fatal(err)
				}
			}
			flipMiddle(t, cfg.Dir)
			if _, err := n.Fsck(context.Background(), true); err != nil {
				t.Fatal(err)
			}
			nodetest.Wait(t, time.Minute, "the repository's recovery", func() bool {
				_, r := recovered(n, nexus.ComponentGit)
				return r == 1
			})
			git := n.Health(context.Background()).Components[nexus.ComponentGit]
			if f, _ := recovered(n, nexus.ComponentGit); f != 1 || git.Status != nexus.StatusHealthy {
				t.Fatalf("git after recovery: %+v", git)
			}
			last := fmt.Sprint(git.Details["recoveries"])
			if !strings.Contains(last, "objects restored from") || !strings.Contains(last, "deep check clean") {
				t.Fatalf("recovery step: %s", last)
			}
			checkAll(t, n, written)
			m := metricsText(t, n)
			for _, want := range []string{
				`nexus_recovery_total{component="git_repository",result="success"} 1`,
				`nexus_component_failures_total{component="git_repository"} 1`,
			} {
				if !strings.Contains(m, want) {
					t.Fatalf("metrics lack %s", want)
				}
			}
			more := putMany(t, n, 3, "after the repair")
			n.Close()
			gitFsck(t, cfg.Dir)
			n.Restart(nil)
			checkAll(t, n, written)
			checkAll(t, n, more)
		})
	}
}

// Damage nothing can repair (no backup) stops the node by itself: the
// cascade fails on the repository, Done is closed and Err says why.
func TestNode_StopsOnUnrepairableDamage(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.NoSearch = true
	cfg.RecoverInterval = time.Hour
	n := nodetest.Open(t, cfg)
	n.ExpectFatal = true
	putMany(t, n, 20, "doomed")
	flipMiddle(t, cfg.Dir)
	if _, err := n.Fsck(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.Done():
	case <-time.After(time.Minute):
		t.Fatal("the node kept running on unrepairable damage")
	}
	var fatal *node.FatalError
	if !errors.As(n.Err(), &fatal) || fatal.Step.Component != nexus.ComponentGit || !strings.Contains(fatal.Step.Reason, "no backup or mirror is configured") {
		t.Fatalf("node stopped with %v, want the git_repository step naming the missing backup", n.Err())
	}
}

// The search index's saved files destroyed under a running node are
// written again from memory; a damaged main ref is rewritten from the
// acknowledged head; writes go on.
func TestNode_RecoversIndexFilesAndRef(t *testing.T) {
	cfg := nodetest.Config(t)
	n := nodetest.Open(t, cfg)
	written := putMany(t, n, 20, "indexed")
	n.Restart(func(c *node.Config) { c.RecoverInterval = 20 * time.Millisecond }) // saves the index
	files, _ := filepath.Glob(filepath.Join(cfg.Dir, "index", "*", "*.bin"))
	if len(files) != 4 { // docs, fresh, keyword, vectors
		t.Fatalf("saved index files: %v", files)
	}
	for _, f := range files {
		os.Remove(f)
	}
	nodetest.Wait(t, time.Minute, "the index's recovery", func() bool { _, r := recovered(n, nexus.ComponentIndex); return r == 1 })
	waitIncident(t, n, nexus.ComponentIndex, recovery.IncidentRecovered) // its records written: the head moves no more
	if h := n.Health(context.Background()).Components[nexus.ComponentIndex]; h.Status != nexus.StatusHealthy {
		t.Fatalf("index after recovery: %+v", h)
	}
	if again, _ := filepath.Glob(filepath.Join(cfg.Dir, "index", "*", "*.bin")); len(again) != 4 {
		t.Fatalf("saved index files after recovery: %v", again)
	}

	head := n.Head()
	ref := filepath.Join(cfg.Dir, "repo.git", "refs", "heads", "main")
	// Replaced at once (a file written in place is empty for a moment):
	// the first check of a cascade to see it repairs it — the
	// repository's, or the context manager's when it lands between the two.
	garbage := filepath.Join(cfg.Dir, "garbage")
	if err := os.WriteFile(garbage, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(garbage, ref); err != nil {
		t.Fatal(err)
	}
	by := ""
	nodetest.Wait(t, time.Minute, "the ref's recovery", func() bool {
		for _, c := range []string{nexus.ComponentGit, nexus.ComponentStore} {
			if _, r := recovered(n, c); r == 1 {
				by = c
			}
		}
		return by != ""
	})
	// main is back at the acknowledged head, followed by the two records
	// of the incident.
	waitIncident(t, n, by, recovery.IncidentRecovered)
	b, _ := os.ReadFile(ref)
	main := strings.TrimSpace(string(b))
	count, err := exec.Command("git", "--git-dir", filepath.Join(cfg.Dir, "repo.git"), "rev-list", "--count", head+".."+main).Output()
	if main != n.Head() || !isAncestor(t, n, head, main) || err != nil || strings.TrimSpace(string(count)) != "2" {
		t.Fatalf("main after recovery: %q (%s commits after %s: %v), want the acknowledged head and the incident's 2 records", b, count, head, err)
	}
	more := putMany(t, n, 3, "after the ref repair")
	checkAll(t, n, written)
	n.Close()
	gitFsck(t, cfg.Dir)
	n.Restart(func(c *node.Config) { c.NoSearch = true })
	checkAll(t, n, more)
}
