package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// TestNoopServer_Ceiling runs the no-op server of `nexus bench report` and
// writes to it with the load's own client: a draft is answered 201 with a
// new id, a body the API would refuse is a 400 with a JSON error code. A
// GET of any id answers a context as the report seeds them, of 512
// content bytes.
func TestNoopServer_Ceiling(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- runNoopServer(ctx, nil, pw, io.Discard); pw.Close() }()
	line := make([]byte, 200)
	n, err := pr.Read(line)
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	rest, ok := strings.CutPrefix(string(line[:n]), "nexus listening on ")
	if !ok {
		t.Fatalf("first line %q", line[:n])
	}
	url, _, _ := strings.Cut(rest, " ")

	res := load(ctx, 4, time.Minute, 40, writeOp(benchClient(url, "", 4), 512))
	if res.Ops != 40 || res.Errors != 0 {
		t.Fatalf("load on the no-op server: %v", res)
	}
	c, err := benchClient(url, "", 1).Put(ctx, nexus.Draft{Type: nexus.TypeObservation, Content: "x"})
	if err != nil || c.ID.IsZero() {
		t.Fatalf("Put = %+v, %v; want a new id", c, err)
	}
	var gen nexus.IDGenerator
	got, err := benchClient(url, "", 1).Get(ctx, gen.New(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Namespace != "bench" || got.Type != nexus.TypeObservation || got.AgentID != "anonymous" || got.Principal != "anonymous" ||
		len(got.Content) != 512 || string(got.Metadata) != "{}" || got.SemanticHash != nexus.SemanticHash(got.Type, got.Content, got.Metadata) || got.ID.IsZero() {
		t.Fatalf("GET answered %+v; want a context of the report's seed, 512 content bytes", got)
	}
	resp, err := http.Post(url+"/v1/contexts", "application/json", strings.NewReader(`{"typ":"observation"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var e struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || e.Error.Code != string(nexus.EInvalid) || !strings.Contains(e.Error.Message, "typ") {
		t.Fatalf("unknown field: %d %s; want 400 with code invalid naming the field", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("no-op server ended with %v", err)
	}
}

// TestServerCPU reads a child's CPU time: a shell that spins before it
// says it listens has used some by then.
func TestServerCPU(t *testing.T) {
	s, err := startChild(context.Background(), "sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo "nexus listening on http://spun"; read x`)
	if err != nil {
		t.Fatal(err)
	}
	defer s.stop()
	if s.url != "http://spun" {
		t.Fatalf("url %q", s.url)
	}
	cpu, ok := s.cpu()
	if !ok || cpu < 10*time.Millisecond {
		t.Fatalf("cpu() = %v, %v; want at least a clock tick of a spinning shell", cpu, ok)
	}
	if got := cpuCell(&loadResult{Ops: 4, ServerCPU: 4 * time.Millisecond}); got != "1ms" {
		t.Fatalf("cpuCell = %q, want 1ms", got)
	}
}
