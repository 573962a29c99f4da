package cluster

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// streamLayer is raft's network between nodes: TCP, TLS when the
// cluster has a peer configuration, dialed through dial (tests route it
// through fault proxies).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
	dial      func(addr string, timeout time.Duration) (net.Conn, error)
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	var err error
	if s.dial != nil {
		conn, err = s.dial(string(addr), timeout)
	} else {
		conn, err = net.DialTimeout("tcp", string(addr), timeout)
	}
	if err != nil || s.client == nil {
		return conn, err
	}
	cfg := s.client.Clone()
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(string(addr))
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

// hclogger makes raft's logger write into the node's slog logger, at
// raft's level.
func hclogger(log *slog.Logger, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Info,
		Output: &slogWriter{log: log},
		// The line is parsed back into its level below.
		DisableTime: true,
	})
}

// slogWriter turns hclog's lines ("[WARN]  raft: message: k=v") into slog
// records.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for tag, l := range map[string]slog.Level{"[ERROR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[DEBUG]": slog.LevelDebug, "[TRACE]": slog.LevelDebug} {
		if strings.HasPrefix(line, tag) {
			level = l
			break
		}
	}
	if i := strings.Index(line, "]"); i >= 0 && strings.HasPrefix(line, "[") {
		line = strings.TrimSpace(line[i+1:])
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

var _ io.Writer = (*slogWriter)(nil)
