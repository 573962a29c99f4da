package node_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
