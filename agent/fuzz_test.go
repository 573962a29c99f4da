package agent_test

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nexus-mem/nexus/agent"
)

const fuzzSecret = "sk-fuzz-secret-42"

// checkMessage fails on a message that is empty, long, not printable or
// quotes the key.
func checkMessage(t *testing.T, msg string, limit int) {
	t.Helper()
	if msg == "" || len(msg) > limit || !utf8.ValidString(msg) || strings.Contains(msg, fuzzSecret) {
		t.Fatalf("message %q (%d bytes)", msg, len(msg))
	}
	if strings.ContainsFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
		t.Fatalf("message %q holds unprintable characters", msg)
	}
}

// checkDecoded fails unless a decoder either answered with content and
// sane token counts, or failed with a classified *agent.Error whose
// message is short and does not quote the key.
func checkDecoded(t *testing.T, comp *agent.Completion, err error) {
	t.Helper()
	if err != nil {
		var e *agent.Error
		if !errors.As(err, &e) || e.Class == "" {
			t.Fatalf("error %v (%T) is not a classified *agent.Error", err, err)
		}
		checkMessage(t, e.Message, 1200)
		return
	}
	if comp == nil || comp.Content == "" || comp.TokensIn < 0 || comp.TokensOut < 0 {
		t.Fatalf("completion %+v", comp)
	}
}

func seeds(f *testing.F, bodies ...string) {
	for _, b := range append(bodies, ``, `null`, `[]`, `{}`, "\xff\x00", `{"error":"`+fuzzSecret+`"}`, fuzzSecret,
		`{"error":{"type":"authentication_error","message":"bad key `+fuzzSecret+`"}}`, `{"error":{"code":429}}`) {
		f.Add([]byte(b))
	}
}

func FuzzDecodeOpenAI(f *testing.F) {
	seeds(f,
		`{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}`,
		`{"choices":[{"message":{"content":null,"refusal":"no"}}]}`, `{"choices":[]}`,
		`{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":-5,"completion_tokens":1e30}}`,
		`{"choices":[{"message":{"content":"hel`)
	f.Fuzz(func(t *testing.T, body []byte) {
		comp, err := agent.DecodeOpenAI(body, agent.NewSecret(fuzzSecret))
		checkDecoded(t, comp, err)
	})
}

func FuzzDecodeAnthropic(f *testing.F) {
	seeds(f,
		`{"id":"msg_01","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hi"},{"type":"text","text":"!"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5}}`,
		`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		`{"type":"message","content":[{"type":"tool_use","id":"t","name":"x","input":{}}]}`,
		`{"type":"message","content":[{"type":"text","text":""}]}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		comp, err := agent.DecodeAnthropic(body, agent.NewSecret(fuzzSecret))
		checkDecoded(t, comp, err)
	})
}

func FuzzDecodeCommand(f *testing.F) {
	seeds(f,
		`{"content":"done","model":"m","usage":{"input_tokens":1,"output_tokens":2},"state":{"n":1}}`,
		`{"error":{"type":"rate_limit","message":"slow down"}}`, `{"content":"x","state":null}`,
		`{"content":""}`, `Traceback (most recent call last):`)
	f.Fuzz(func(t *testing.T, body []byte) {
		comp, state, err := agent.DecodeCommand(body, agent.NewSecret(fuzzSecret))
		checkDecoded(t, comp, err)
		if err == nil && state != nil && (len(state) == 0 || string(state) == "null") {
			t.Fatalf("state %q is returned but empty", state)
		}
	})
}

// Error bodies of any shape give a short message without the key.
func FuzzErrorBodyMessage(f *testing.F) {
	seeds(f, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		`{"error":{"message":"Incorrect API key provided: `+fuzzSecret+`","type":"invalid_request_error","code":"invalid_api_key"}}`,
		`<html>502</html>`, "\t\n ")
	f.Fuzz(func(t *testing.T, body []byte) {
		_, msg := agent.ErrorBodyMessage(body, agent.NewSecret(fuzzSecret))
		checkMessage(t, msg, 400)
	})
}

// A secrets file of any content never has its content quoted in an error.
func FuzzParseSecrets(f *testing.F) {
	for _, s := range []string{fuzzSecret, "A=" + fuzzSecret + "\n", `{"A":"` + fuzzSecret + `"}`, "export A='x'\n# c\n",
		"A=1\n" + fuzzSecret + "\n", `{"A":1}`, "="} {
		f.Add([]byte(s), "A")
	}
	f.Fuzz(func(t *testing.T, data []byte, name string) {
		if strings.Contains(name, fuzzSecret) {
			return
		}
		key, err := agent.ParseSecrets(data, name)
		if err != nil {
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("error quotes the file: %v", err)
			}
			return
		}
		if v := key.Value(); v == "" || strings.TrimSpace(v) != v {
			t.Fatalf("key %q", v)
		}
	})
}
