package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/auth"
	"github.com/nexus-mem/nexus/config"
)

// TokensFile is the tokens file of a data directory, read if it exists
// when no other is named.
func TokensFile(dir string) string { return filepath.Join(dir, "tokens.json") }

// openAuth loads the node's principals and refuses a node that would
// listen beyond loopback without any (unless Insecure).
func (n *Node) openAuth() error {
	s, err := auth.New(n.authSources, nil)
	if err != nil {
		return &ConfigError{Err: fmt.Errorf("principals: %w", err)}
	}
	n.auth = s
	host, _, _ := net.SplitHostPort(n.cfg.Addr)                                          // checked by Validate
	if !s.Enabled() && !IsLoopback(host) && !n.cfg.Insecure && n.cfg.TLSClientCA == "" { // client certificates authenticate too
		return &ConfigError{Err: fmt.Errorf("%s: %w", "Addr", errExposed(n.cfg.Addr))}
	}
	if s.Enabled() {
		n.log.Info("authentication on", "principals", len(s.Principals()))
	}
	return nil
}

// authSources are where the principals come from: NEXUS_TOKEN, the
// configuration file's auth section and its tokens file (or
// TokensFile, or DATA/tokens.json if it exists). A reload reads the
// configuration file again.
func (n *Node) authSources() (auth.Sources, error) {
	f := n.cfg.File
	if f != nil && f.File != "" && n.auth != nil {
		var err error
		if f, err = config.Load(f.File); err != nil {
			return auth.Sources{}, err
		}
	}
	src := auth.Sources{Token: n.cfg.Token, TokensFile: n.cfg.TokensFile}
	var a config.Auth
	if f != nil {
		a = f.Auth
	}
	if src.TokensFile == "" {
		src.TokensFile = a.TokensFile
	}
	if src.TokensFile == "" {
		src.TokensFile, src.TokensFileOptional = TokensFile(n.cfg.Dir), true
	}
	for _, p := range a.Principals {
		src.Principals = append(src.Principals, auth.Entry{Name: p.Name, Role: nexus.Role(p.Role), Read: p.Read, Write: p.Write, TokenSHA256: p.TokenSHA256})
	}
	if j := a.JWT; j.Enabled() {
		src.JWT = &auth.JWTConfig{PublicKeyFile: j.PublicKeyFile, JWKSFile: j.JWKSFile, Issuer: j.Issuer, Audience: j.Audience,
			NameClaim: j.NameClaim, RoleClaim: j.RoleClaim, ReadClaim: j.ReadClaim, WriteClaim: j.WriteClaim}
	}
	return src, nil
}

// Reload reads the principals again (the tokens file, the configuration
// file's auth section, the JWT keys) and puts them in force for the next
// request; `nexus serve` calls it on SIGHUP. On error the principals in
// force stay.
func (n *Node) Reload() error {
	return n.audit.Do(context.Background(), "config.reload", nil, func() (audit.Fields, error) {
		if err := n.auth.Reload(); err != nil {
			n.log.Error("reload: the principals in force stay", "err", err)
			return nil, fmt.Errorf("reload principals: %w", err)
		}
		n.log.Info("reloaded principals", "principals", len(n.auth.Principals()), "enabled", n.auth.Enabled())
		return audit.Fields{"principals": strconv.Itoa(len(n.auth.Principals()))}, nil
	})
}

// authFailed logs a refused request and records it in the audit log.
func (n *Node) authFailed(r *http.Request, reason string) {
	n.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason)
	n.audit.AuthFailure(r, reason)
}
