package main_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// The real server streams new contexts and restores at /v1/events, and
// an open stream does not hold up its shutdown.
func TestServe_Events(t *testing.T) {
	p := startServe(t, t.TempDir(), "--no-search")
	c := httpapi.NewClient(p.url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx, nexus.EventFilter{}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var cs []*nexus.Context
	for i := range 3 {
		x, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("step ", i)})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, x)
	}
	resp, err := http.Post(p.url+"/v1/admin/restore", "application/json", strings.NewReader(fmt.Sprintf(`{"at":%q}`, cs[0].Timestamp.Format(time.RFC3339Nano))))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("restore: %v %v", err, resp)
	}
	resp.Body.Close()
	for i, want := range []string{cs[0].ID.String(), cs[1].ID.String(), cs[2].ID.String(), nexus.EventRestore} {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID != want && ev.Type != want {
			t.Fatalf("event %d: %s %s, want %s", i, ev.Type, ev.ID, want)
		}
	}
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("server exit: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown with an open event stream took %s", took)
	}
}
