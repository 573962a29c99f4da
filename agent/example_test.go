package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

func ExampleNew() {
	// A stand-in for OpenAI, Ollama, vLLM, llama.cpp server, LM Studio or OpenRouter.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"model":"llama3.2","choices":[{"message":{"role":"assistant","content":"Guard the map with a mutex."}}],`+
			`"usage":{"prompt_tokens":31,"completion_tokens":6}}`)
	}))
	defer srv.Close()

	r, err := agent.New(agent.Config{ID: "reviewer", Provider: agent.OpenAI, Model: "llama3.2", BaseURL: srv.URL + "/v1"})
	if err != nil {
		panic(err)
	}
	chain := []*nexus.Context{{Type: nexus.TypeInstruction, AgentID: "alice", Content: "How do I fix this data race?"}}
	resp, err := r.Process(context.Background(), chain)
	if err != nil {
		panic(err)
	}
	p := resp.Provenance
	fmt.Println(resp.Content)
	fmt.Println(p.FinalAgent, p.Model, p.TokensIn, p.TokensOut, p.Attempts, r.Status().Condition)
	// Output:
	// Guard the map with a mutex.
	// reviewer llama3.2 31 6 1 healthy
}

func ExampleNewPool() {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(529)
		fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	}))
	defer down.Close()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"type":"message","model":"claude-haiku-4-5","content":[{"type":"text","text":"Done."}],`+
			`"usage":{"input_tokens":12,"output_tokens":2}}`)
	}))
	defer up.Close()
	mk := func(id, base string) *agent.Runner {
		r, err := agent.New(agent.Config{ID: id, Provider: agent.Anthropic, Model: "claude-haiku-4-5", BaseURL: base,
			APIKey: agent.NewSecret("sk-ant-example"), MaxRetries: -1})
		if err != nil {
			panic(err)
		}
		return r
	}
	pool, err := agent.NewPool("writers", nil,
		agent.Member{Agent: mk("primary", down.URL)}, agent.Member{Agent: mk("backup", up.URL), Backup: true})
	if err != nil {
		panic(err)
	}
	resp, err := pool.Generate(context.Background(), "Summarize the thread.")
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Content, "from", resp.Provenance.FinalAgent)
	for _, a := range resp.Provenance.Trail {
		fmt.Printf("%s: %d request(s) %s\n", a.Agent, a.Requests, a.Class)
	}
	// Output:
	// Done. from backup
	// primary: 1 request(s) overload
	// backup: 1 request(s)
}

func ExampleBuildPrompt() {
	chain := []*nexus.Context{ // as Store.Chain returns it: newest first
		{Type: nexus.TypeResult, AgentID: "writer", Content: "Draft: contexts are git commits."},
		{Type: nexus.TypeInstruction, AgentID: "alice", Content: "Explain the storage model in one line."},
	}
	fmt.Println(agent.BuildPrompt(chain, 0))
	// Output:
	// --- instruction by alice ---
	// Explain the storage model in one line.
	//
	// --- result by writer ---
	// Draft: contexts are git commits.
}
