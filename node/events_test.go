package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// A node streams new contexts and restores at /v1/events, and an open
// stream does not hold up its shutdown.
func TestNode_Events(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.NoSearch = true
	n := nodetest.Open(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := n.Client.Subscribe(ctx, nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var cs []*nexus.Context
	for i := range 3 {
		x, err := n.Client.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("step ", i)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, x)
	}
	if _, err := n.Restore(ctx, cs[0].Timestamp, false); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{cs[0].ID.String(), cs[1].ID.String(), cs[2].ID.String(), nexus.EventRestore} {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != want && ev.Type != want {
			t.Fatalf("event %d: %s %s, want %s", i, ev.Type, ev.ID, want)
		}
	}
	closed := make(chan struct{})
	go func() { n.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("an open event stream holds up the node's shutdown")
	}
}
