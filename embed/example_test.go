package embed_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/nexus-mem/nexus/embed"
)

func ExampleNewHashing() {
	e := embed.NewHashing(0)
	vecs, err := e.Embed(context.Background(), []string{
		"The login page returns a 500 error after a password reset",
		"After resetting the password, the login page returns error 500",
		"Quarterly revenue grew in the European market",
	})
	if err != nil {
		panic(err)
	}
	cosine := func(a, b []float32) (s float32) {
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	fmt.Println(e.Model(), e.Dimension())
	fmt.Println("near-duplicate scores higher:", cosine(vecs[0], vecs[1]) > cosine(vecs[0], vecs[2]))
	// Output:
	// nexus-hash-v1-384 384
	// near-duplicate scores higher: true
}

func ExampleNewOpenAI() {
	// A stand-in for Ollama, vLLM, llama.cpp server, TEI or OpenAI.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"object":"list","model":"m","data":[`+
			`{"object":"embedding","index":1,"embedding":[0,1,0]},`+
			`{"object":"embedding","index":0,"embedding":[0.6,0.8,0]}]}`)
	}))
	defer srv.Close()

	e, err := embed.NewOpenAI(embed.OpenAIConfig{BaseURL: srv.URL, Model: "nomic-embed-text"})
	if err != nil {
		panic(err)
	}
	vecs, err := e.Embed(context.Background(), []string{"first", "second"})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.Endpoint() == srv.URL+"/v1/embeddings", e.Dimension(), vecs[0], vecs[1], e.BreakerState())
	// Output:
	// true 3 [0.6 0.8 0] [0 1 0] closed
}
