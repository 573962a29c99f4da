// Command embed runs a Nexus node inside a Go program: it opens a node
// on a data directory, writes two contexts as a thread, reads the thread
// back, searches it, and closes the node.
//
//	go run ./examples/embed [DIR]
//
// Without DIR it uses a new temporary directory and removes it at the end.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/node"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	dir := ""
	if len(os.Args) > 1 {
		dir = os.Args[1]
	} else {
		tmp, err := os.MkdirTemp("", "nexus-embed-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	cfg := node.DefaultConfig()
	cfg.Dir = dir
	cfg.BackupInterval = 0 // a short-lived program: no scheduled backups
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())

	store := n.Store()
	task, err := store.Put(ctx, nexus.Draft{Type: nexus.TypeInstruction, AgentID: "planner",
		Content: "Fix the login bug: sessions expire too early"})
	if err != nil {
		return err
	}
	decision, err := store.Put(ctx, nexus.Draft{Type: nexus.TypeDecision, AgentID: "reviewer", ParentID: task.ID,
		Content: "Keep sessions for 12 hours and refresh them on activity", Metadata: json.RawMessage(`{"source":"review"}`)})
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s (head %s)\n", task.ID, decision.ID, n.Head()[:12])

	chain, err := store.Chain(ctx, decision.ID, 0)
	if err != nil {
		return err
	}
	for _, c := range chain {
		fmt.Printf("chain: %-11s %-8s %s\n", c.Type, c.AgentID, c.Content)
	}

	res, err := n.Searcher().Search(ctx, nexus.SearchRequest{Query: "session expiry", Limit: 5, Consistent: true})
	if err != nil {
		return err
	}
	if len(res.Hits) == 0 {
		return fmt.Errorf("search found nothing")
	}
	for _, h := range res.Hits {
		fmt.Printf("search: %.3f %s %s\n", h.Score, h.Context.ID, h.Context.Content)
	}
	return n.Close(context.Background())
}
