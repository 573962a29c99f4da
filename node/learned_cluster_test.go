package node_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/internal/quality"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// learned returns the learner's figures in a node's health.
func learned(n *nodetest.Node) map[string]any {
	h := n.Health(context.Background()).Components[nexus.ComponentIndex]
	l, _ := h.Details["learned"].(map[string]any)
	return l
}

// In a cluster every node trains the learned model from its own copy of
// the store; since a training learns from the first N contexts of the
// schedule, not from the store's size of the moment, every node ends with
// the same model (the same id: the same parameters), whenever its rounds
// ran.
func TestCluster_LearnedModelSameOnEveryNode(t *testing.T) {
	sets, err := quality.Sets()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sets, func(s *quality.Set) bool { return s.Name == "debian" })
	docs := sets[i].Docs[:300]
	nodes := nodetest.OpenCluster(t, 3, func(i int, cfg *node.Config) {
		f, err := config.Parse(filepath.Join(t.TempDir(), "nexus.yaml"),
			[]byte("search:\n  embedder: cooc\n  learned: {min_contexts: 100, interval: 1h, dimension: 16}\n"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.File = f
	})
	var wg sync.WaitGroup
	errs := make(chan error, len(docs))
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := w; j < len(docs); j += 8 {
				if _, err := putRetry(t, nodes[j%3], nexus.Draft{Type: nexus.TypeMemory, Content: docs[j].Text}); err != nil {
					errs <- fmt.Errorf("put %d: %w", j, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	nodetest.Converge(t, nodes)
	// 300 contexts, the schedule 100, 200, 400: each node's last model
	// learned from the first 200.
	models := map[string]bool{}
	for _, n := range nodes {
		nodetest.Wait(t, 2*time.Minute, "the model trained at 200 on "+n.Config.Cluster.NodeID, func() bool {
			l := learned(n)
			return l["trained_at_contexts"] == 200 && l["training"] == false
		})
		models[learned(n)["model"].(string)] = true
	}
	if len(models) != 1 {
		t.Fatalf("the nodes trained different models: %v", models)
	}
	defer fsckClosed(t, nodes)
}
