package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// Three nodes in one process that apply the same batches (ids and
// timestamps fixed beforehand, as a leader would) converge to the same
// head, and each serves, streams and finds what it applied.
func TestNodes_SameBatchesSameHead(t *testing.T) {
	nodes := nodetest.OpenN(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var subs []nexus.Subscription
	for _, n := range nodes {
		sub, err := n.Client.Subscribe(ctx, nexus.EventFilter{}, "")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs = append(subs, sub)
	}
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var gen nexus.IDGenerator
	var all []*nexus.Context
	for b := range 4 {
		var batch []*nexus.Context
		for i := range 10 {
			ts := base.Add(time.Duration(b*10+i) * time.Millisecond)
			c := &nexus.Context{ID: gen.New(ts), Namespace: nexus.DefaultNamespace, Type: nexus.TypeObservation, AgentID: "leader",
				Timestamp: ts, Metadata: []byte("{}"), Content: fmt.Sprintf("replicated observation %d about the parser", b*10+i)}
			c.SemanticHash = nexus.SemanticHash(c.Type, c.Content, c.Metadata)
			if i%2 == 0 { // written for a principal: its name is part of the batch
				c.Principal = "writer"
			}
			batch = append(batch, c)
		}
		var heads []string
		for _, n := range nodes {
			h, err := n.Apply(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			heads = append(heads, h)
		}
		if heads[0] != heads[1] || heads[1] != heads[2] {
			t.Fatalf("batch %d: heads differ: %v", b, heads)
		}
		all = append(all, batch...)
	}
	for i, n := range nodes {
		for _, want := range all {
			got, err := n.Client.Get(ctx, want.ID)
			if err != nil || got.Content != want.Content || !got.Timestamp.Equal(want.Timestamp) || got.Principal != want.Principal {
				t.Fatalf("node %d: %s: %v", i, want.ID, err)
			}
		}
		for j, want := range all {
			ev, err := subs[i].Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != want.ID.String() {
				t.Fatalf("node %d, event %d: %s, want %s", i, j, ev.ID, want.ID)
			}
		}
		res, err := n.Client.Search(ctx, nexus.SearchRequest{Query: "replicated observation 17", Consistent: true, Limit: 1})
		if err != nil || len(res.Hits) != 1 || res.Hits[0].Context.ID != all[17].ID {
			t.Fatalf("node %d: search: %v %+v", i, err, res)
		}
	}
}
