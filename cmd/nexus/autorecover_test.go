package main_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
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

// checkAll reads every written context back through the API.
func checkAll(t *testing.T, url string, written map[nexus.ID]string) {
	t.Helper()
	c := httpapi.NewClient(url)
	for id, content := range written {
		got, err := c.Get(context.Background(), id)
		if err != nil || got.Content != content {
			t.Fatalf("%s: %v (content %q)", id, err, content)
		}
	}
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
	ps, _ := filepath.Glob(filepath.Join(data, "repo.git", "objects", "pack", "pack-*.pack"))
	var big string
	var size int64
	for _, p := range ps {
		if st, err := os.Stat(p); err == nil && st.Size() > size {
			big, size = p, st.Size()
		}
	}
	if big == "" {
		t.Fatal("no pack")
	}
	f, err := os.OpenFile(big, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, size/2)
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, size/2); err != nil {
		t.Fatal(err)
	}
}

// A running node repairs a damaged pack by itself from its backups — the
// bundles it writes, or its mirror — once a deep check finds the damage:
// /health shows the failure and the recovery, every context reads back,
// and stock git finds the repository whole.
func TestServe_RepairsObjectsWhileRunning(t *testing.T) {
	for _, source := range []string{"bundle", "mirror"} {
		t.Run(source, func(t *testing.T) {
			data := t.TempDir()
			mirror := filepath.Join(t.TempDir(), "mirror.git")
			args := []string{"--no-search", "--scrub-interval=0", "--recover-interval=200ms"}
			if source == "bundle" {
				args = append(args, "--backup-interval=300ms")
			} else {
				args = append(args, "--backup-interval=0", "--mirror="+mirror, "--mirror-interval=300ms")
			}
			p := startServe(t, data, args...)
			defer stopServe(p)
			written := putMany(t, p.url, 30, source)
			_, h := getHealth(t, p.url)
			head, _ := h.Components[nexus.ComponentGit].Details["head"].(string)
			// Wait until the backup holds every write.
			deadline := time.Now().Add(30 * time.Second)
			for {
				if source == "bundle" {
					if list, _ := gitstore.ListBackups(filepath.Join(data, "backups")); len(list) > 0 && strings.HasPrefix(head, list[0].Head) {
						break
					}
				} else if out, err := exec.Command("git", "--git-dir", mirror, "rev-parse", "refs/heads/main").Output(); err == nil && strings.TrimSpace(string(out)) == head {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %s holds %s", source, head)
				}
				time.Sleep(100 * time.Millisecond)
			}
			flipMiddle(t, data)
			resp, err := http.Post(p.url+"/v1/admin/fsck?deep=true", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h = waitHealth(t, p.url, 60*time.Second, func(code int, h nexus.Health) bool {
				_, n := recoveries(h, nexus.ComponentGit)
				return code == 200 && n == 1
			})
			if f, _ := recoveries(h, nexus.ComponentGit); f != 1 || h.Components[nexus.ComponentGit].Status != nexus.StatusHealthy {
				t.Fatalf("git after recovery: %+v", h.Components[nexus.ComponentGit])
			}
			last := h.Components[nexus.ComponentGit].Details["recoveries"].(map[string]any)["last"].(map[string]any)
			if reason, _ := last["reason"].(string); !strings.Contains(reason, "objects restored from") || !strings.Contains(reason, "deep check clean") {
				t.Fatalf("recovery step: %+v", last)
			}
			checkAll(t, p.url, written)
			m := getMetrics(t, p.url)
			for _, want := range []string{
				`nexus_recovery_total{component="git_repository",result="success"} 1`,
				`nexus_component_failures_total{component="git_repository"} 1`,
			} {
				if !strings.Contains(m, want) {
					t.Fatalf("metrics lack %s:\n%s", want, grepLines(m, "recover"))
				}
			}
			more := putMany(t, p.url, 3, "after the repair")
			stopServe(p)
			if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
				t.Fatalf("git fsck after the repair: %v\n%s", err, out)
			}
			q := startServe(t, data, "--no-search")
			defer stopServe(q)
			checkAll(t, q.url, written)
			checkAll(t, q.url, more)
		})
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

// The search index's saved files destroyed under a running node are
// written again from memory; a damaged main ref is rewritten from the
// acknowledged head; writes go on.
func TestServe_RecoversIndexFilesAndRef(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	written := putMany(t, p.url, 20, "indexed")
	stopServe(p) // saves the index
	p = startServe(t, data, "--recover-interval=200ms")
	defer stopServe(p)
	files, _ := filepath.Glob(filepath.Join(data, "index", "*", "*.bin"))
	if len(files) != 3 {
		t.Fatalf("saved index files: %v", files)
	}
	for _, f := range files {
		os.Remove(f)
	}
	h := waitHealth(t, p.url, 30*time.Second, func(code int, h nexus.Health) bool {
		_, n := recoveries(h, nexus.ComponentIndex)
		return code == 200 && n == 1
	})
	if h.Components[nexus.ComponentIndex].Status != nexus.StatusHealthy {
		t.Fatalf("index after recovery: %+v", h.Components[nexus.ComponentIndex])
	}
	again, _ := filepath.Glob(filepath.Join(data, "index", "*", "*.bin"))
	if len(again) != 3 {
		t.Fatalf("saved index files after recovery: %v", again)
	}

	head, _ := h.Components[nexus.ComponentGit].Details["head"].(string)
	ref := filepath.Join(data, "repo.git", "refs", "heads", "main")
	if err := os.WriteFile(ref, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h = waitHealth(t, p.url, 30*time.Second, func(code int, h nexus.Health) bool {
		_, n := recoveries(h, nexus.ComponentGit)
		return code == 200 && n == 1
	})
	if b, _ := os.ReadFile(ref); strings.TrimSpace(string(b)) != head {
		t.Fatalf("main after recovery: %q, want %s", b, head)
	}
	more := putMany(t, p.url, 3, "after the ref repair")
	checkAll(t, p.url, written)
	stopServe(p)
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck: %v\n%s", err, out)
	}
	q := startServe(t, data, "--no-search")
	defer stopServe(q)
	checkAll(t, q.url, more)
}
