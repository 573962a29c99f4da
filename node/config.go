package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/config"
	"github.com/nexus-mem/nexus/gitstore"
)

// Defaults of a node.
const (
	DefaultDir  = "./nexus-data"
	DefaultAddr = "127.0.0.1:7411"
)

// Config is everything a node is opened with: every setting of
// `nexus serve` and of its configuration file. Start from DefaultConfig;
// Open validates it.
type Config struct {
	// Dir is the data directory: the repository, derived state, backups.
	// Open creates a store there if there is none.
	Dir string
	// Addr is the address the node is meant to listen on; Open refuses
	// one beyond loopback without any principal (Token, a tokens file, the
	// configuration file's auth section) or client certificates
	// (TLSClientCA) unless Insecure. Serve takes its listener from the
	// caller.
	Addr string
	// Token, if set, must be presented as a bearer token on every request.
	// Token (NEXUS_TOKEN) authenticates an admin principal named "token";
	// it must pass auth.CheckStrength.
	Token string
	// TokensFile is a tokens file of principals (see package auth); ""
	// means the configuration file's auth.tokens_file, else
	// DATA/tokens.json if it exists. Reload reads it again.
	TokensFile string
	// Insecure allows a non-loopback Addr without a principal.
	Insecure bool
	// PublicNames are the names beyond loopback that clients reach the
	// node by, as their requests' Host: "name" (any port) or "name:port".
	// Any other name is refused (DNS rebinding).
	PublicNames []string
	// Limits bound what clients may take of the node.
	Limits Limits
	// TLSCert and TLSKey, set together, are the PEM certificate chain and
	// key the node serves HTTPS with (TLS 1.2+), taken up again when the
	// files change; "" serves plain HTTP.
	TLSCert, TLSKey string
	// TLSClientCA, if set, holds the CA certificates every client must
	// present a certificate of (mutual TLS); a client without one is
	// refused at the handshake. Mutual TLS authenticates clients, so it
	// allows a non-loopback Addr without a Token.
	TLSClientCA string

	// MaxContent is the largest context content in bytes.
	MaxContent int
	// CacheBytes is the budget of the L1 cache of decoded contexts.
	CacheBytes int64
	// MemoryBudget is the process's memory budget in bytes: above 90 % of
	// it the L1 cache shrinks to a quarter, below 60 % it gets its size
	// back. 0: the cgroup limit, if any; negative: no governor.
	MemoryBudget int64
	// MemoryInterval is how often the memory governor looks.
	MemoryInterval time.Duration
	// Predict sets the predictions of /health and /metrics: disk full,
	// memory budget reached, agents' breakers opening.
	Predict PredictConfig

	// NoSearch serves without the search indexes.
	NoSearch bool
	// Embedder makes the vectors of the search index; nil: the built-in
	// hashing embedder (lexical, no model to download).
	Embedder nexus.Embedder

	// BackupDir is where scheduled backups go; "" means Dir/backups.
	BackupDir string
	// BackupInterval is how often a verified bundle is written; 0: never.
	BackupInterval time.Duration
	// BackupKeep is how many scheduled backups are kept.
	BackupKeep int
	// Mirror is a bare repository path every ref is pushed to (created if
	// missing), also a source for repairs; "" for none.
	Mirror string
	// MirrorInterval is how often the mirror is pushed.
	MirrorInterval time.Duration
	// ScrubInterval is how often a deep integrity check runs in the
	// background; 0: never.
	ScrubInterval time.Duration
	// RecoverInterval is how often the cascading recovery checks every
	// component.
	RecoverInterval time.Duration

	// Encrypt turns on encryption at rest of the contexts, their vectors
	// and the saved search index: a new store is created encrypted, and an
	// encrypted store opens only with it. The master key comes from
	// KeyFile (32 bytes, raw or base64, mode 0600) or from the output of
	// KeyCommand (run with /bin/sh -c, in the minimal environment of the
	// node's children: PATH, HOME, LANG, LC_*, TZ). Off by default.
	Encrypt    bool
	KeyFile    string
	KeyCommand string
	// AuditFile is the audit log of admin actions and authentication
	// failures; "" means Dir/audit.log. An admin action whose record
	// cannot be written there is refused.
	AuditFile string

	// Cluster makes the node a member of a cluster (see ClusterConfig);
	// the zero value is a single node.
	Cluster ClusterConfig

	// ShutdownTimeout bounds how long Serve waits for in-flight requests,
	// and Close for the agents' last checkpoints and processes' stops.
	ShutdownTimeout time.Duration

	// File is the node's parsed configuration file: its agents, pools,
	// supervised processes and server limits; nil for none.
	File *config.Config

	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Progress, if set, makes the reporter of a long rebuild at open
	// ("catalog", "index").
	Progress func(what string) func(done, total int)
	// Failpoint, if set, is called at the crash points of a group commit
	// (for tests).
	Failpoint func(point string) error
}

// DefaultConfig is the embedded default of `nexus serve`.
func DefaultConfig() Config {
	return Config{
		Dir:             DefaultDir,
		Addr:            DefaultAddr,
		MaxContent:      1 << 20,
		CacheBytes:      64 << 20,
		MemoryInterval:  2 * time.Second,
		BackupInterval:  24 * time.Hour,
		BackupKeep:      3,
		MirrorInterval:  10 * time.Minute,
		ScrubInterval:   24 * time.Hour,
		RecoverInterval: 10 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		Limits:          DefaultLimits(),
	}
}

// Validate names each bad field of c, all at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Dir == "" {
		bad("Dir", "empty: the node needs a data directory")
	}
	c.validateTLS(bad)
	if err := checkAddr(c.Addr); err != nil {
		bad("Addr", "%v", err)
	}
	if c.Token != "" {
		if err := auth.CheckStrength(c.Token); err != nil {
			bad("Token", "NEXUS_TOKEN: %s", nexus.ErrorMessage(err))
		}
	}
	if c.MaxContent <= 0 {
		bad("MaxContent", "%d: must be positive", c.MaxContent)
	}
	if c.CacheBytes <= 0 {
		bad("CacheBytes", "%d: must be positive", c.CacheBytes)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		zero bool // 0 allowed (means never)
	}{
		{"BackupInterval", c.BackupInterval, true}, {"ScrubInterval", c.ScrubInterval, true},
		{"MirrorInterval", c.MirrorInterval, c.Mirror == ""}, {"RecoverInterval", c.RecoverInterval, false},
		{"MemoryInterval", c.MemoryInterval, false}, {"ShutdownTimeout", c.ShutdownTimeout, false},
		{"Predict.Interval", c.Predict.Interval, true}, {"Predict.Window", c.Predict.Window, true},
	} {
		if d.v < 0 || (d.v == 0 && !d.zero) {
			bad(d.name, "%s: must be positive", d.v)
		}
	}
	if err := c.checkEncryption(); err != nil {
		bad("Encrypt", "%v", err)
	}
	if st, err := os.Stat(c.auditFile()); err == nil && st.IsDir() {
		bad("AuditFile", "%s is a directory: the audit log is a file", c.auditFile())
	}
	if c.BackupKeep < 1 {
		bad("BackupKeep", "%d: at least 1 backup is kept", c.BackupKeep)
	}
	c.validateCluster(bad)
	errs = append(errs, c.validateWeb()...)
	if err := errors.Join(errs...); err != nil {
		return &ConfigError{Err: err}
	}
	return nil
}

func (c *Config) checkEncryption() error {
	if !c.Encrypt {
		if c.KeyFile != "" || c.KeyCommand != "" {
			return errors.New("a key file or key command is given but encryption is off (add --encrypt)")
		}
		return nil
	}
	return c.Encryption().Validate()
}

// Encryption is the store's encryption at rest: nil when it is off.
func (c *Config) Encryption() *gitstore.Encryption {
	if !c.Encrypt {
		return nil
	}
	return &gitstore.Encryption{KeyFile: c.KeyFile, KeyCommand: c.KeyCommand}
}

// backupDir is where scheduled backups go.
func (c *Config) backupDir() string {
	if c.BackupDir != "" {
		return c.BackupDir
	}
	return BackupDir(c.Dir)
}

// auditFile is where the audit log is.
func (c *Config) auditFile() string {
	if c.AuditFile != "" {
		return c.AuditFile
	}
	return AuditFile(c.Dir)
}

// AuditFile is the audit log of a data directory by default.
func AuditFile(dir string) string { return filepath.Join(dir, "audit.log") }

// BackupDir is where the backups of a data directory go by default.
func BackupDir(dir string) string { return filepath.Join(dir, "backups") }

// IndexDir is where the search indexes of a data directory live.
func IndexDir(dir string) string { return filepath.Join(dir, "index") }

// maxBody bounds request bodies: the content limit with room for JSON
// escapes, plus metadata.
func (c *Config) maxBody() int64 { return int64(c.MaxContent)*6 + 256<<10 }

// ConfigError is a node that cannot be opened as configured: a bad field
// of Config or of its configuration file. Nothing was started.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// checkAddr checks that addr is host:port. Whether the node may listen
// there without principals is checked when they are loaded (Open).
func checkAddr(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("invalid address %q: %v", addr, err)
	}
	return nil
}

// errExposed is the error of a node beyond loopback without principals.
func errExposed(addr string) error {
	return fmt.Errorf("listening on %q exposes the memory beyond this machine: set a token (NEXUS_TOKEN; clients send it as a bearer token), name principals (--tokens-file, `nexus token create`), demand client certificates (--tls-client-ca) or allow it explicitly (--insecure)", addr)
}

// IsLoopback says whether host names this machine only.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
