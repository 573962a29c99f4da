package agent_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

func TestProvider_WireFormat(t *testing.T) {
	eachKind(t, func(t *testing.T, kind agent.Kind) {
		f := newFake(t, kind, testKey)
		r, _ := newRunner(t, f, nil)
		ch := chain(3)
		resp, err := r.Process(context.Background(), ch)
		if err != nil {
			t.Fatal(err)
		}
		req := f.requests()[0]
		if kind == agent.OpenAI {
			if got := req.header.Get("Authorization"); got != "Bearer "+testKey {
				t.Errorf("Authorization %q", got)
			}
			if req.header.Get("x-api-key") != "" || req.maxTokens != 0 {
				t.Errorf("x-api-key %q, max_tokens %d: neither is sent to OpenAI by default", req.header.Get("x-api-key"), req.maxTokens)
			}
		} else {
			if req.header.Get("x-api-key") != testKey || req.header.Get("anthropic-version") != "2023-06-01" {
				t.Errorf("x-api-key %q, anthropic-version %q", req.header.Get("x-api-key"), req.header.Get("anthropic-version"))
			}
			if req.header.Get("Authorization") != "" || req.maxTokens != agent.DefaultAnthropicTokens {
				t.Errorf("Authorization %q, max_tokens %d", req.header.Get("Authorization"), req.maxTokens)
			}
		}
		if req.system != agent.DefaultSystem || req.prompt != agent.BuildPrompt(ch, 0) {
			t.Errorf("system %q, prompt %q", req.system, req.prompt)
		}
		p := resp.Provenance
		if resp.Content != "reply 1" || p.Agent != "a1" || p.FinalAgent != "a1" || p.Model != "fake-model-2025" ||
			p.TokensIn != len(req.prompt)/4 || p.TokensOut != 2 || p.Attempts != 1 || p.Latency != 0 {
			t.Errorf("response %+v", resp)
		}
		if len(p.Trail) != 1 || p.Trail[0] != (agent.Attempt{Agent: "a1", Requests: 1}) {
			t.Errorf("trail %+v", p.Trail)
		}

		// Generate: the configured system prompt and max_tokens.
		f.script()
		r2, _ := newRunner(t, f, func(c *agent.Config) { c.System, c.MaxTokens = "Be brief.", 55 })
		resp, err = r2.Generate(context.Background(), "What is a context?")
		if err != nil {
			t.Fatal(err)
		}
		req = f.requests()[0]
		if req.system != "Be brief." || req.prompt != "What is a context?" || req.maxTokens != 55 || resp.Content != "reply 1" {
			t.Errorf("generate: request %+v, answer %q", req, resp.Content)
		}

		if err := r.Heartbeat(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(f.beatTimes()) != 1 {
			t.Errorf("%d heartbeats reached the server", len(f.beatTimes()))
		}
	})
}

func TestProvider_BaseURL(t *testing.T) {
	eachKind(t, func(t *testing.T, kind agent.Kind) {
		f := newFake(t, kind, "")
		bases := []string{f.base, f.base + "/"}
		if kind == agent.Anthropic {
			bases = append(bases, f.base+"/v1", f.base+"/v1/")
		}
		for _, base := range bases {
			r, _ := newRunner(t, f, func(c *agent.Config) { c.BaseURL = base })
			if _, err := r.Generate(context.Background(), "hi"); err != nil {
				t.Errorf("base %q: %v", base, err)
			}
		}
	})
}

func TestProvider_Errors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		act   action
		key   string
		class agent.Class
		code  nexus.Code
		parts []string
	}{
		{"wrong key", nil, "sk-wrong-key-0123456789", agent.ClassAuth, nexus.EUnavailable,
			[]string{"401 Unauthorized", "invalid api key: [redacted]", "(type authentication_error)", "check the configured key"}},
		{"forbidden", status(403, "this key cannot use this model"), testKey, agent.ClassAuth, nexus.EUnavailable,
			[]string{"403 Forbidden", "cannot use this model"}},
		{"bad request", status(400, "prompt is too long: 250000 tokens > 200000 maximum"), testKey, agent.ClassBadRequest,
			nexus.EInvalid, []string{"400 Bad Request", "prompt is too long", "(type invalid_request_error)"}},
		{"model not found", raw(404, `{"error":"model \"fake-model\" not found, try pulling it first"}`), testKey,
			agent.ClassBadRequest, nexus.EInvalid, []string{"404 Not Found", "try pulling it first", `check the model "fake-model" and base_url`}},
		{"unprocessable", status(422, "messages: at least one message is required"), testKey, agent.ClassBadRequest,
			nexus.EInvalid, []string{"422 Unprocessable Entity", "at least one message"}},
		{"too large", status(413, "request too large"), testKey, agent.ClassBadRequest, nexus.EInvalid, []string{"413"}},
		{"echoed key", status(400, "your key "+testKey+" is fine, your input is not"), testKey, agent.ClassBadRequest,
			nexus.EInvalid, []string{"your key [redacted] is fine"}},
		{"long message", status(400, strings.Repeat("very long message ", 100)), testKey, agent.ClassBadRequest,
			nexus.EInvalid, []string{"very long message very long me…"}},
		{"HTML", raw(http.StatusMethodNotAllowed, "<html>\n<body>405 Not Allowed</body>\n</html>"), testKey,
			agent.ClassBadRequest, nexus.EInvalid, []string{"405 Method Not Allowed", "<html> <body>405 Not Allowed</body> </html>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachKind(t, func(t *testing.T, kind agent.Kind) {
				f := newFake(t, kind, testKey)
				f.setAlways(tc.act)
				r, _ := newRunner(t, f, func(c *agent.Config) { c.APIKey, c.BreakerFailures = agent.NewSecret(tc.key), 1 })
				_, err := r.Generate(context.Background(), "hello")
				e := wantErr(t, err, tc.class, tc.parts...)
				if e.Code() != tc.code || e.Attempts != 1 || e.Agent != "a1" {
					t.Errorf("code %s, attempts %d, agent %q", e.Code(), e.Attempts, e.Agent)
				}
				if f.count() != 1 {
					t.Errorf("%d requests: a %s must not be retried", f.count(), tc.class)
				}
				st := r.Status()
				if st.Breaker != "closed" {
					t.Errorf("breaker %s: a refusal on purpose must not open it", st.Breaker)
				}
				if want := map[bool]agent.Condition{true: agent.AuthFailed, false: agent.Healthy}[tc.class == agent.ClassAuth]; st.Condition != want {
					t.Errorf("condition %s, want %s", st.Condition, want)
				}
			})
		})
	}
}

func TestProvider_BadAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   agent.Kind
		body   string
		class  agent.Class
		parts  []string
		status int
	}{
		{"truncated", agent.OpenAI, `{"choices":[{"message":{"content":"hel`, agent.ClassMalformed, []string{"not JSON"}, 200},
		{"HTML in a 200", agent.Anthropic, `<html>captive portal</html>`, agent.ClassMalformed, []string{"not JSON", "captive portal"}, 200},
		{"no choices", agent.OpenAI, `{"choices":[]}`, agent.ClassMalformed, []string{"no choices"}, 200},
		{"null content", agent.OpenAI, `{"choices":[{"message":{"content":null},"finish_reason":"length"}]}`,
			agent.ClassMalformed, []string{`empty (finish_reason "length")`}, 200},
		{"refusal", agent.OpenAI, `{"choices":[{"message":{"content":null,"refusal":"I cannot help with that."}}]}`,
			agent.ClassBadRequest, []string{"the model refused: I cannot help with that."}, 200},
		{"wrong shape", agent.OpenAI, `{"choices":{"message":"hi"}}`, agent.ClassMalformed, []string{"does not follow the wire format"}, 200},
		{"no text block", agent.Anthropic, `{"type":"message","content":[{"type":"tool_use","id":"t","name":"x","input":{}}],"stop_reason":"tool_use"}`,
			agent.ClassMalformed, []string{"no text", "stop_reason tool_use"}, 200},
		{"error in a 200", agent.Anthropic, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
			agent.ClassOverload, []string{"answered with an error: Overloaded (type overloaded_error)"}, 200},
		{"ollama error", agent.OpenAI, `{"error":"model requires more system memory than is available"}`,
			agent.ClassServer, []string{"500 Internal Server Error", "more system memory"}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(t, tc.kind, testKey)
				f.setAlways(raw(tc.status, tc.body))
				r, _ := newRunner(t, f, func(c *agent.Config) { c.MaxRetries = -1 })
				_, err := r.Generate(context.Background(), "hello")
				wantErr(t, err, tc.class, tc.parts...)
			})
		})
	}
}

func TestProvider_KeySource(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "secrets.env")
	if err := os.WriteFile(good, []byte("# keys\nexport ANTHROPIC_API_KEY=\""+testKey+"\"\nOTHER=x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose.env")
	if err := os.WriteFile(loose, []byte("ANTHROPIC_API_KEY="+testKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, agent.Anthropic, testKey)
		mk := func(k agent.KeySource) (*agent.Runner, error) {
			return agent.New(agent.Config{ID: "a1", Provider: agent.Anthropic, Model: "m", BaseURL: f.base, Key: k, HTTPClient: f.client})
		}
		r, err := mk(agent.KeySource{File: good})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Generate(context.Background(), "hi"); err != nil {
			t.Fatalf("with the key from the secrets file: %v", err)
		}
		_, err = mk(agent.KeySource{File: loose})
		if err == nil || !strings.Contains(err.Error(), "may be read or written by other users (mode 0644)") || !strings.Contains(err.Error(), "chmod 600") ||
			strings.Contains(err.Error(), testKey) || nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("world-readable secrets file: %v", err)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("ANTHROPIC_API_KEY", "")
		_, err := agent.New(agent.Config{ID: "a1", Provider: agent.Anthropic, Model: "m"})
		if err == nil || !strings.Contains(err.Error(), "agent a1: invalid: the environment variable ANTHROPIC_API_KEY") {
			t.Errorf("no key: %v", err)
		}
		t.Setenv("MY_KEY", testKey)
		r, err := agent.New(agent.Config{ID: "a1", Provider: agent.Anthropic, Model: "m", Key: agent.KeySource{Env: "MY_KEY"}})
		if err != nil {
			t.Fatal(err)
		}
		if s := r.Status(); s.Condition != agent.Healthy || s.Breaker != "closed" {
			t.Errorf("status %+v", s)
		}
		if _, err := agent.New(agent.Config{ID: "local", Provider: agent.OpenAI, Model: "m", BaseURL: "http://localhost:11434/v1"}); err != nil {
			t.Errorf("a local OpenAI-compatible server needs no key: %v", err)
		}
	})
}
