package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// busyConfig is a node with every background job running often: the
// scrubber, backups, a mirror, the memory governor (under pressure), the
// recovery loop, an agent with heartbeats (to a port nothing answers, so
// that it fails and is checkpointed) and a supervised process.
func busyConfig(t *testing.T) node.Config {
	cfg := nodetest.Config(t)
	cfg.ScrubInterval = 20 * time.Millisecond
	cfg.BackupInterval = 25 * time.Millisecond
	cfg.Mirror = filepath.Join(t.TempDir(), "mirror.git")
	cfg.MirrorInterval = 25 * time.Millisecond
	cfg.RecoverInterval = 20 * time.Millisecond
	cfg.MemoryBudget = 1 // always over budget: the governor shrinks the cache
	cfg.MemoryInterval = 10 * time.Millisecond
	file := filepath.Join(t.TempDir(), "nexus.yaml")
	yaml := `
agents:
  - id: gone
    provider: openai
    model: m
    base_url: http://127.0.0.1:1/v1
    heartbeat: {interval: 10ms, failure_threshold: 1}
    retries: {max: 0}
supervisor:
  processes:
    - name: sleeper
      command: /bin/sleep
      args: ["300"]
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = f
	return cfg
}

// Close under write load, with every background job running, stops every
// goroutine the node started and loses no acknowledged write.
func TestNode_CloseUnderLoad(t *testing.T) {
	before := goleak.IgnoreCurrent()
	cfg := busyConfig(t)
	n := nodetest.Open(t, cfg)

	var mu sync.Mutex
	acked := map[nexus.ID]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				content := fmt.Sprintf("writer %d, write %d", w, i)
				d := nexus.Draft{Type: nexus.TypeObservation, Content: content, AgentID: "load"}
				var c *nexus.Context
				var err error
				if w%2 == 0 {
					c, err = n.Store().Put(context.Background(), d)
				} else {
					c, err = n.Client.Put(context.Background(), d)
				}
				if err != nil {
					return // the node is closing
				}
				mu.Lock()
				acked[c.ID] = content
				mu.Unlock()
				if i >= 100 {
					// Keep writing until Close, at a pace that keeps the
					// store small enough for the scrub's deep checks
					// (every 20 ms) to stay short on a loaded machine.
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	nodetest.Wait(t, time.Minute, "every periodic job to run twice", func() bool {
		runs := map[string]uint64{}
		for _, s := range n.Services() {
			runs[s.Name] = s.Runs
		}
		for _, name := range []string{"scrub", "backup", "mirror", "memory"} {
			if runs[name] < 2 {
				return false
			}
		}
		return true
	})
	for _, s := range n.Services() {
		if !s.Running {
			t.Errorf("service %s is not running before Close", s.Name)
		}
	}
	n.Close()
	wg.Wait()
	for _, s := range n.Services() {
		if s.Running {
			t.Errorf("service %s still runs after Close", s.Name)
		}
	}
	goleak.VerifyNone(t, before)

	store, err := gitstore.Open(cfg.Dir, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
	for id, content := range acked {
		c, err := store.Get(context.Background(), id)
		if err != nil || c.Content != content {
			t.Fatalf("acknowledged %s (%q) lost after Close: %v", id, content, err)
		}
	}
	t.Logf("%d acknowledged writes, all present after Close", len(acked))
}
