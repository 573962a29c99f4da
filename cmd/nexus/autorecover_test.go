package main_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/internal/damage"
)

// stopServe ends a server with SIGTERM and waits for it.
func stopServe(p *proc) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
}

// putMany writes n contexts and returns what it wrote.
func putMany(t *testing.T, url string, n int, prefix string) map[nexus.ID]string {
	t.Helper()
	c := httpapi.NewClient(url)
	written := map[nexus.ID]string{}
	for i := range n {
		content := fmt.Sprintf("%s %d: the agents learned something worth keeping", prefix, i)
		got, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: content})
		if err != nil {
			t.Fatal(err)
		}
		written[got.ID] = content
	}
	return written
}

// recoveries returns a component's recovery counts from /health.
func recoveries(h nexus.Health, component string) (failures, recovered float64) {
	d := h.Components[component].Details
	f, _ := d["failures"].(float64)
	r, _ := d["recoveries"].(map[string]any)
	n, _ := r["recovered"].(float64)
	return f, n
}

// flipMiddle flips one bit in the middle of the largest pack.
func flipMiddle(t *testing.T, data string) {
	t.Helper()
	if err := damage.FlipMiddle(data, 0x20); err != nil {
		t.Fatal(err)
	}
}

// Damage nothing can repair (no backup) stops the node: the scrub finds
// it, the cascade fails on the repository, and the process exits 4 with
// what to run.
func TestServe_StopsOnUnrepairableDamage(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data, "--no-search", "--backup-interval=0", "--scrub-interval=300ms")
	defer stopServe(p)
	putMany(t, p.url, 20, "doomed")
	flipMiddle(t, data)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 {
			t.Fatalf("exit: %v\n%s", err, p.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the node kept running on unrepairable damage:\n%s", p.stderr)
	}
	out := p.stderr.String()
	for _, want := range []string{"a critical component could not be recovered", "the node stopped: git_repository failed", "no backup or mirror is configured", "nexus recover --data"} {
		if !strings.Contains(out, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, out)
		}
	}
}
