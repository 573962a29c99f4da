package httpapi_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// A server wraps a store; a client of it is a store again.
func ExampleNewServer() {
	srv := httptest.NewServer(httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{Token: "t0ken"}))
	defer srv.Close()
	client := httpapi.NewClient(srv.URL, httpapi.WithToken("t0ken"))
	ctx := context.Background()

	task, err := client.Put(ctx, nexus.Draft{Type: nexus.TypeInstruction, Content: "summarise the design", AgentID: "lead"})
	if err != nil {
		fmt.Println(err)
		return
	}
	answer, err := client.Put(ctx, nexus.Draft{Type: nexus.TypeSummary, Content: "git is the source of truth", AgentID: "writer", ParentID: task.ID})
	if err != nil {
		fmt.Println(err)
		return
	}
	chain, err := client.Chain(ctx, answer.ID, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range chain {
		fmt.Printf("%s by %s: %s\n", c.Type, c.AgentID, c.Content)
	}
	_, err = client.Put(ctx, nexus.Draft{Type: "note", Content: "?"})
	fmt.Println(nexus.ErrorCode(err))
	// Output:
	// summary by writer: git is the source of truth
	// instruction by lead: summarise the design
	// invalid
}
