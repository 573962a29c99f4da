package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

func TestConfig_Validate_Encryption(t *testing.T) {
	cases := []struct {
		name          string
		encrypt       bool
		file, command string
		want          string // "" for valid
	}{
		{"off", false, "", "", ""},
		{"key file", true, "/k", "", ""},
		{"key command", true, "", "kms get", ""},
		{"no key", true, "", "", "Encrypt: invalid: encryption needs a master key"},
		{"both", true, "/k", "kms get", "Encrypt: invalid: encryption takes a key file or a key command, not both"},
		{"key without encrypt", false, "/k", "", "Encrypt: a key file or key command is given but encryption is off"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := node.DefaultConfig()
			cfg.Encrypt, cfg.KeyFile, cfg.KeyCommand = c.encrypt, c.file, c.command
			err := cfg.Validate()
			var ce *node.ConfigError
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case c.want != "" && (!errors.As(err, &ce) || !strings.HasPrefix(err.Error(), c.want)):
				t.Fatalf("Validate: %v; want a ConfigError starting %q", err, c.want)
			}
		})
	}
}

// A whole node with encryption on: what it stores is read back across a
// restart, and it does not start without its key.
func TestNode_Encrypted(t *testing.T) {
	key := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(key, []byte(gitstore.NewMasterKey()), 0o600)
	cfg := nodetest.Config(t)
	cfg.Encrypt, cfg.KeyFile = true, key
	n := nodetest.Open(t, cfg)
	x, err := n.Store().Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "sealed on disk"})
	if err != nil {
		t.Fatal(err)
	}
	n.Restart(nil)
	if got, err := n.Store().Get(context.Background(), x.ID); err != nil || got.Content != x.Content {
		t.Fatalf("after restart: %v %v", got, err)
	}
	n.Close()
	plain := cfg
	plain.Encrypt, plain.KeyFile = false, ""
	if _, err := node.Open(context.Background(), plain); nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), "is encrypted at rest") {
		t.Fatalf("open without the key: %v", err)
	}
}

// The key command runs in the minimal environment of the node's children:
// the server's token and provider keys, set in its environment, are not
// the command's to see; PATH, HOME, TZ and the locale are.
func TestNode_KeyCommandEnvironment(t *testing.T) {
	const token, providerKey = "nxs_server-token-Zq8Lw2Vt9Xk4Rb7Yn1Pc5Hs3Jd6", "sk-test-provider-key-Tq4Wm8Zr2Lx"
	t.Setenv("NEXUS_TOKEN", token)
	t.Setenv("OPENAI_API_KEY", providerKey)
	t.Setenv("TZ", "Europe/Paris")
	t.Setenv("LC_ALL", "C.UTF-8")
	dir := t.TempDir()
	key, seen, script := filepath.Join(dir, "master.key"), filepath.Join(dir, "env"), filepath.Join(dir, "kms.sh")
	os.WriteFile(key, []byte(gitstore.NewMasterKey()), 0o600)
	if err := os.WriteFile(script, []byte("#!/bin/sh\nenv > "+seen+"\ncat "+key+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := nodetest.Config(t)
	cfg.Encrypt, cfg.KeyCommand = true, script
	n := nodetest.Open(t, cfg)
	if _, err := n.Store().Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: "sealed with the command's key"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the key command did not run: %v", err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		env[k] = v
	}
	for name, secret := range map[string]string{"NEXUS_TOKEN": token, "OPENAI_API_KEY": providerKey} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the key command saw the value of the server's %s", name)
		}
	}
	for k := range env {
		shell := k == "PWD" || k == "OLDPWD" || k == "SHLVL" || k == "_" // set by the shell itself
		if !shell && !slices.Contains([]string{"PATH", "HOME", "LANG", "TZ"}, k) && !strings.HasPrefix(k, "LC_") {
			t.Errorf("the key command got %s from the server's environment", k)
		}
	}
	for _, k := range []string{"PATH", "HOME", "TZ", "LC_ALL"} {
		if env[k] != os.Getenv(k) {
			t.Errorf("the key command got %s=%q, want the server's %q", k, env[k], os.Getenv(k))
		}
	}
}
