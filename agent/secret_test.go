package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// No way of printing, logging or encoding a config shows its key or its
// command's environment values.
func TestConfig_NeverPrintsTheKey(t *testing.T) {
	cfg := agent.Config{
		ID: "writer", Provider: agent.OpenAI, Model: "gpt", BaseURL: "https://user:pa55word@api.example.com/v1",
		APIKey: agent.NewSecret(testKey), Key: agent.KeySource{Env: "OPENAI_API_KEY"},
		Env: map[string]string{"TOKEN": testKey},
	}
	// Printers do not call the methods of unexported fields: the key
	// itself stays hidden behind a pointer there.
	type wrapper struct {
		Agent agent.Config
		Key   agent.Secret
		key   agent.Secret
	}
	w := wrapper{cfg, cfg.APIKey, cfg.APIKey}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "cfg", cfg, "key", cfg.APIKey, "w", w)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "cfg", cfg, "key", cfg.APIKey)
	marshaled, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		cfg.String(), text.String(), js.String(), string(marshaled),
		fmt.Sprintf("%v %+v %#v %s %q %x %X", cfg, cfg, cfg, cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v %+v %#v", w, w, w),
		fmt.Sprintf("%v %+v %#v %s %q %x %X %d", cfg.APIKey, cfg.APIKey, cfg.APIKey, cfg.APIKey, cfg.APIKey, cfg.APIKey, cfg.APIKey, cfg.APIKey),
	}
	for _, s := range outputs {
		hex := fmt.Sprintf("%x", testKey)
		if strings.Contains(s, testKey) || strings.Contains(s, "pa55word") || strings.Contains(strings.ToLower(s), hex) {
			t.Errorf("a secret is printed: %s", s)
		}
	}
	if s := cfg.String(); !strings.Contains(s, "APIKey:set") || !strings.Contains(s, "api.example.com") || !strings.Contains(s, "Env:TOKEN") {
		t.Errorf("the description is missing: %s", s)
	}
	if cfg.APIKey.Value() != testKey || cfg.APIKey.String() != "[redacted]" || (agent.Secret{}).String() != "" || agent.NewSecret("  ").IsZero() != true {
		t.Errorf("Secret: value %q, string %q", cfg.APIKey.Value(), cfg.APIKey.String())
	}
}

func TestKeySource_Load(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Setenv("NEXUS_TEST_KEY", "  "+testKey+"\n")
	for _, tc := range []struct {
		name string
		src  agent.KeySource
		want string // the key, or a part of the error
		ok   bool
	}{
		{"none", agent.KeySource{}, "", true},
		{"environment", agent.KeySource{Env: "NEXUS_TEST_KEY"}, testKey, true},
		{"unset", agent.KeySource{Env: "NEXUS_TEST_UNSET"}, "the environment variable NEXUS_TEST_UNSET that should hold the API key is not set", false},
		{"key alone", agent.KeySource{File: file("alone", testKey+"\n", 0o600)}, testKey, true},
		{"key=value", agent.KeySource{Env: "B", File: file("env", "# comment\n\nA=1\nexport B='"+testKey+"'\n", 0o400)}, testKey, true},
		{"json", agent.KeySource{Env: "ANTHROPIC_API_KEY", File: file("json", `{"OTHER":"x","ANTHROPIC_API_KEY":"`+testKey+`"}`, 0o600)}, testKey, true},
		{"world-readable", agent.KeySource{File: file("loose", testKey, 0o644)}, "may be read or written by other users (mode 0644); refusing to use it: run chmod 600", false},
		{"group-readable", agent.KeySource{File: file("group", testKey, 0o640)}, "may be read or written by other users (mode 0640); refusing to use it: run chmod 600", false},
		{"missing", agent.KeySource{File: filepath.Join(dir, "nope")}, "cannot read the secrets file " + dir + "/nope: no such file or directory", false},
		{"directory", agent.KeySource{File: dir}, "is not a regular file", false},
		{"empty", agent.KeySource{File: file("empty", " \n", 0o600)}, "is empty", false},
		{"no such name", agent.KeySource{Env: "C", File: file("env2", "A=1\nB=2\n", 0o600)}, "has no C", false},
		{"empty value", agent.KeySource{Env: "A", File: file("env3", "A=\n", 0o600)}, "has an empty A", false},
		{"no name", agent.KeySource{File: file("env4", "A=1\nB=2\n", 0o600)}, "no name was given", false},
		{"bad line", agent.KeySource{Env: "A", File: file("env5", "A=1\n"+testKey+"\n", 0o600)}, "has a line 2 that is not KEY=value", false},
		{"bad json", agent.KeySource{Env: "A", File: file("json2", `{"A":`+testKey, 0o600)}, "starts with '{' but is not a JSON object", false},
		{"json number", agent.KeySource{Env: "A", File: file("json3", `{"A":12}`, 0o600)}, "has a A that is not a string", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := tc.src.Load()
			if tc.ok {
				if err != nil || key.Value() != tc.want {
					t.Fatalf("Load() = %q, %v; want %q", key.Value(), err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("Load() error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("the error quotes the key: %v", err)
			}
		})
	}
}

func TestConfig_Validate(t *testing.T) {
	good := agent.Config{ID: "w", Provider: agent.OpenAI, Model: "m", BaseURL: "http://localhost:11434/v1"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*agent.Config)
		want string
	}{
		{func(c *agent.Config) { c.ID = "" }, "invalid agent_id"},
		{func(c *agent.Config) { c.Provider = "" }, "agent w: provider is required: one of openai, anthropic, command"},
		{func(c *agent.Config) { c.Provider = "gemini" }, `unknown provider "gemini"`},
		{func(c *agent.Config) { c.Model = " " }, "model is required for provider openai"},
		{func(c *agent.Config) { c.BaseURL = "ftp://x" }, "is not http or https"},
		{func(c *agent.Config) { c.BaseURL = "http://h/v1?key=" + testKey }, `base_url "http://h/v1" has a query or fragment`},
		{func(c *agent.Config) { c.BaseURL = "http:///v1" }, "has no host"},
		{func(c *agent.Config) { c.BaseURL = "http://[::1" }, "does not parse"},
		{func(c *agent.Config) { c.Command = []string{"x"} }, "command, probe, dir and env are for provider command, not openai"},
		{func(c *agent.Config) { c.Provider, c.BaseURL = agent.Command, "" }, "command is required"},
		{func(c *agent.Config) { c.Provider, c.Command = agent.Command, []string{"x"} }, "base_url is for providers openai and anthropic"},
		{func(c *agent.Config) {
			c.Provider, c.BaseURL, c.Command, c.Probe = agent.Command, "", []string{"x"}, []string{""}
		}, "probe has an empty program name"},
		{func(c *agent.Config) {
			c.Provider, c.BaseURL, c.Command, c.Env = agent.Command, "", []string{"x"}, map[string]string{"A=B": "1"}
		}, `env has an invalid variable name "A=B"`},
		{func(c *agent.Config) { c.Timeout = -1 }, "timeout is negative"},
		{func(c *agent.Config) { c.RequestsPerSecond = -2 }, "requests_per_second is negative"},
		{func(c *agent.Config) { c.RetryBase, c.RetryMax = 10, 5 }, "retry base 10ns exceeds the retry cap 5ns"},
	} {
		cfg := good
		tc.edit(&cfg)
		err := cfg.Validate()
		if nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), tc.want) || strings.Contains(fmt.Sprint(err), testKey) {
			t.Errorf("Validate(%v) = %v, want %q", cfg, err, tc.want)
		}
		if _, err := agent.New(cfg); err == nil {
			t.Errorf("New(%v) accepted an invalid config", cfg)
		}
	}
}
