package node_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/node"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// rawConn is one client connection to a node, sending requests one at a
// time.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, n *nodetest.Node) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// get sends a GET of path on the connection and returns the answer.
func (c *rawConn) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+c.RemoteAddr().String()+path, nil)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A connection over the cap is answered 503 naming the limit and closed;
// the connections within it keep being served, and /metrics counts the
// refusal.
func TestNode_maxConnections(t *testing.T) {
	cfg := nodetest.Config(t)
	cfg.Limits.MaxConnections, cfg.Limits.MaxStreams = 2, 1
	n := nodetest.Open(t, cfg)
	a, b := dial(t, n), dial(t, n)
	for _, c := range []*rawConn{a, b} {
		if code, _ := c.get(t, "/livez"); code != 200 {
			t.Fatalf("a connection within the cap: %d", code)
		}
	}
	over := dial(t, n)
	code, body := over.get(t, "/livez")
	if code != 503 || !strings.Contains(body, `"code":"unavailable"`) || !strings.Contains(body, "holds 2 connections, its limit (connections: --max-connections)") {
		t.Errorf("a connection over the cap: %d %s", code, body)
	}
	if _, err := over.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("the refused connection stays open: %v", err)
	}
	code, m := b.get(t, "/metrics")
	for _, want := range []string{`nexus_limit_refused_total{limit="connections"} 1`, "nexus_connections 2\n", `nexus_limit{limit="connections"} 2`,
		`nexus_limit_refused_total{limit="rate"} 0`, "nexus_event_streams 0\n"} {
		if code != 200 || !strings.Contains(m, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
}

// Bad public names and limits are named, all at once.
func TestConfig_Validate_web(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.PublicNames = []string{"nexus.example.com", "nexus.example.com:8443", "[::1]:7411", "http://evil", "a/b", "*.example.com", "host:port"}
	cfg.Limits.RateLimit, cfg.Limits.PageBytes = -1, -5
	cfg.Limits.MaxStreams = cfg.Limits.MaxConnections
	err := cfg.Validate()
	var ce *node.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Validate: %v, want a *ConfigError", err)
	}
	for _, want := range []string{`PublicNames: "http://evil"`, `PublicNames: "a/b"`, `PublicNames: "*.example.com"`, `PublicNames: "host:port": port "port" is not a number`,
		"Limits.RateLimit: -1: must not be negative", "Limits.PageBytes: -5", "Limits.MaxStreams: 1024: must be set below MaxConnections (1024)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nlacks %q", err, want)
		}
	}
	for _, ok := range []string{`"nexus.example.com"`, `"nexus.example.com:8443"`, `"[::1]:7411"`} {
		if strings.Contains(err.Error(), ok) {
			t.Errorf("Validate refused %s: %v", ok, err)
		}
	}
}
