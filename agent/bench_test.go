package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nexus-mem/nexus/agent"
)

// BenchmarkOverhead measures what the agent layer adds to a call. The same
// request goes to the same OpenAI-compatible server on loopback TCP, which
// decodes it and sends a fixed answer, once from a bare http.Client
// (encode, POST, read, decode) and once through the layer: a Runner, or a
// Pool of two, each building the prompt from a chain of four contexts and
// passing rate limits, the breaker, classification and provenance. The two
// calls alternate in each iteration, so that drift on the machine hits
// both alike; the metrics are the p50 and p99 of each and the p50 of the
// difference within a pair, the layer's overhead.
func BenchmarkOverhead(b *testing.B) {
	const answer = `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,` +
		`"message":{"role":"assistant","content":"the answer"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":40,"completion_tokens":2,"total_tokens":42}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string          `json:"model"`
			Messages []agent.Message `json:"messages"`
		}
		if json.NewDecoder(r.Body).Decode(&req) != nil || req.Model == "" || r.Header.Get("Authorization") != "Bearer "+testKey {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	defer srv.Close()
	client := srv.Client()
	ch := chain(4)
	ctx := context.Background()
	prompt := agent.BuildPrompt(ch, 0)
	bare := func() error {
		body, _ := json.Marshal(map[string]any{"model": "m", "messages": []agent.Message{
			{Role: "system", Content: agent.DefaultSystem}, {Role: "user", Content: prompt}}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+testKey)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var out struct {
			Choices []struct{ Message struct{ Content string } }
		}
		if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 || out.Choices[0].Message.Content != "the answer" {
			return fmt.Errorf("answer %s: %v", data, err)
		}
		return nil
	}
	newAgent := func(id string) *agent.Runner {
		r, err := agent.New(agent.Config{ID: id, Provider: agent.OpenAI, Model: "m", BaseURL: srv.URL + "/v1",
			APIKey: agent.NewSecret(testKey), HTTPClient: client, RequestsPerSecond: 1e6, TokensPerMinute: 1e12})
		if err != nil {
			b.Fatal(err)
		}
		return r
	}
	through := func(a agent.Agent) func() error {
		return func() error {
			resp, err := a.Process(ctx, ch)
			if err == nil && resp.Content != "the answer" {
				err = fmt.Errorf("answer %q", resp.Content)
			}
			return err
		}
	}
	b.Run("runner", func(b *testing.B) { pairs(b, bare, through(newAgent("a1"))) })
	b.Run("pool", func(b *testing.B) {
		p, err := agent.NewPool("p", nil, agent.Member{Agent: newAgent("a1"), Weight: 2}, agent.Member{Agent: newAgent("a2")})
		if err != nil {
			b.Fatal(err)
		}
		pairs(b, bare, through(p))
	})
}

// pairs calls bare and layer in turn b.N times and reports their latency
// percentiles and the median of the differences.
func pairs(b *testing.B, bare, layer func() error) {
	var base, with, diff []time.Duration
	timed := func(call func() error) time.Duration {
		start := time.Now()
		if err := call(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for b.Loop() {
		x, y := timed(bare), timed(layer)
		base, with, diff = append(base, x), append(with, y), append(diff, y-x)
	}
	pct := func(d []time.Duration, p int) float64 {
		slices.Sort(d)
		return float64(d[(len(d)-1)*p/100].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(base, 50), "bare-p50-µs")
	b.ReportMetric(pct(with, 50), "layer-p50-µs")
	b.ReportMetric(pct(diff, 50), "overhead-p50-µs")
	b.ReportMetric(pct(base, 99), "bare-p99-µs")
	b.ReportMetric(pct(with, 99), "layer-p99-µs")
}
