package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// SIGTERM drains in-flight writes: every acknowledged write is in the
// store, the process exits 0, and the catalog it saved needs no catch-up.
func TestServe_GracefulShutdown(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	c := httpapi.NewClient(p.url)
	var mu sync.Mutex
	acked := map[nexus.ID]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				x, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint(w, " ", i)})
				if err != nil {
					return
				}
				mu.Lock()
				acked[x.ID] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	err := p.cmd.Wait()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("server exit: %v", err)
	}
	s, err := gitstore.Open(data, gitstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id := range acked {
		if _, err := s.Get(context.Background(), id); err != nil {
			t.Fatalf("acknowledged %s lost: %v", id, err)
		}
	}
	if len(acked) == 0 || s.Len() < len(acked) {
		t.Fatalf("%d acknowledged, %d stored", len(acked), s.Len())
	}
}

func TestServe_RefusesExposureWithoutToken(t *testing.T) {
	out, err := exec.Command(binary, "serve", "--data", t.TempDir(), "--addr", "0.0.0.0:0").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "NEXUS_TOKEN") {
		t.Fatalf("serve on 0.0.0.0 without a token: %v\n%s", err, out)
	}
}

func TestServe_SecondProcessRefused(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	out, err := exec.Command(binary, "serve", "--data", data, "--addr", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by process") {
		t.Fatalf("second serve on one data dir: %v\n%s", err, out)
	}
}

// The CLI verbs against a real server, human and JSON output.
func TestCLI_Verbs(t *testing.T) {
	p := startServe(t, t.TempDir())
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	nexusCLI := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(cmd.Environ(), "NEXUS_SERVER="+p.url)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	id, err := nexusCLI("", "put", "--type", "instruction", "--agent", "planner", "--meta", "prio=high", "Fix", "the", "bug")
	if err != nil {
		t.Fatalf("put: %v %s", err, id)
	}
	id = strings.TrimSpace(id)
	child, err := nexusCLI("from stdin\n", "put", "--type", "decision", "--parent", id)
	if err != nil {
		t.Fatalf("put stdin: %v %s", err, child)
	}
	out, err := nexusCLI("", "get", id)
	if err != nil || !strings.Contains(out, "Fix the bug") || !strings.Contains(out, `{"prio":"high"}`) {
		t.Fatalf("get: %v\n%s", err, out)
	}
	out, err = nexusCLI("", "chain", strings.TrimSpace(child))
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, "from stdin") {
		t.Fatalf("chain: %v\n%s", err, out)
	}
	out, err = nexusCLI("", "ls", "--json", "--type", "decision")
	if err != nil || !strings.Contains(out, `"content": "from stdin\n"`) {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	out, err = nexusCLI("", "log")
	if err != nil || !strings.Contains(out, "planner") || !strings.Contains(out, "instruction: Fix the bug") {
		t.Fatalf("log: %v\n%s", err, out)
	}
	out, err = nexusCLI("", "put", "--type", "bogus", "x")
	if err == nil || !strings.Contains(out, `unknown type "bogus"`) {
		t.Fatalf("bad type: %v\n%s", err, out)
	}
	out, err = nexusCLI("", "get", "../../etc/passwd")
	if err == nil || !strings.Contains(out, "invalid id") {
		t.Fatalf("bad id: %v\n%s", err, out)
	}
}

// Search through the real server and the CLI, then an offline reindex of
// the same data directory.
func TestCLI_Search(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	nexusCLI := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Env = append(cmd.Environ(), "NEXUS_SERVER="+p.url)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	zebra, err := nexusCLI("put", "--type", "observation", "--meta", "room=b2", "A zebra wandered into the server room.")
	if err != nil {
		t.Fatalf("put: %v %s", err, zebra)
	}
	zebra = strings.TrimSpace(zebra)
	for _, text := range []string{"The zebra left the server room at noon.", "Lunch was pasta.", "Deploys are frozen until Monday."} {
		if out, err := nexusCLI("put", text); err != nil {
			t.Fatalf("put: %v %s", err, out)
		}
	}
	out, err := nexusCLI("search", "--consistent", "--limit", "2", "zebra", "server", "room")
	if err != nil || !strings.Contains(out, zebra) || !strings.Contains(out, "semantic+keyword") || !strings.Contains(out, "2 hits") {
		t.Fatalf("search: %v\n%s", err, out)
	}
	out, err = nexusCLI("search", "--json", "--mode", "keyword", "--meta", "room=b2", "zebra")
	if err != nil || strings.Count(out, `"id": `) != 1 || !strings.Contains(out, `"took_ms"`) {
		t.Fatalf("search --meta: %v\n%s", err, out)
	}
	out, err = nexusCLI("related", "--min-score", "0.2", zebra)
	if err != nil || !strings.Contains(out, "left the server room") || strings.Contains(out, "wandered") {
		t.Fatalf("related: %v\n%s", err, out)
	}
	out, err = nexusCLI("search", "--limit", "1000", "zebra")
	if err == nil || !strings.Contains(out, "limit 1000 out of range") {
		t.Fatalf("bad limit: %v\n%s", err, out)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(binary, "reindex", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "indexed 4 contexts with nexus-hash-v1-384") {
		t.Fatalf("reindex: %v\n%s", err, b)
	}
}

// `nexus fsck` on the real binary: clean (0), a damaged search index is
// repaired (1) and the next start rebuilds it, a damaged repository is
// reported (4) with what to do.
func TestCLI_Fsck(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	c := httpapi.NewClient(p.url)
	for i := range 10 {
		if _, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("fact ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Search(context.Background(), nexus.SearchRequest{Query: "fact", Consistent: true}); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	fsck := func() (string, int) {
		out, err := exec.Command(binary, "fsck", "--data", data).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := fsck(); code != 0 || !strings.Contains(out, "search index: ok") || !strings.Contains(out, "\nclean\n") {
		t.Fatalf("clean store: exit %d\n%s", code, out)
	}
	vecs, _ := filepath.Glob(filepath.Join(data, "index", "*", "vectors-*.bin"))
	if len(vecs) != 1 {
		t.Fatalf("index files: %v", vecs)
	}
	os.Truncate(vecs[0], 100)
	// Each REPAIRED line says what was damaged, then what was done.
	repairedIndex := regexp.MustCompile(`(?m)^REPAIRED search index: .*` + regexp.QuoteMeta(filepath.Base(vecs[0])) + `.* -> removed; the server rebuilds it at start$`)
	if out, code := fsck(); code != 1 || !repairedIndex.MatchString(out) {
		t.Fatalf("damaged index: exit %d, want 1 and a line like %s:\n%s", code, repairedIndex, out)
	}
	if out, code := fsck(); code != 0 || !strings.Contains(out, "search index: none") {
		t.Fatalf("after repair: exit %d\n%s", code, out)
	}
	if out, err := exec.Command(binary, "backup", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	packs, _ := filepath.Glob(filepath.Join(data, "repo.git", "objects", "pack", "*.pack"))
	damage := func() {
		b, _ := os.ReadFile(packs[0])
		b[len(b)/2] ^= 0xff
		os.WriteFile(packs[0], b, 0o644)
	}
	damage()
	repairedObjects := regexp.MustCompile(`(?m)^REPAIRED objects: .*` + regexp.QuoteMeta(filepath.Base(packs[0])) + `.* -> \d+ objects restored from `)
	if out, code := fsck(); code != 1 || !repairedObjects.MatchString(out) {
		t.Fatalf("damaged repository with a backup: exit %d, want 1 and a line like %s:\n%s", code, repairedObjects, out)
	}
	if out, code := fsck(); code != 0 {
		t.Fatalf("after the repair: exit %d\n%s", code, out)
	}
	os.RemoveAll(filepath.Join(data, "backups"))
	packs, _ = filepath.Glob(filepath.Join(data, "repo.git", "objects", "pack", "*.pack"))
	damage()
	out, code := fsck()
	if code != 4 || !strings.Contains(out, "PROBLEM") {
		t.Fatalf("damaged repository, no backup: exit %d\n%s", code, out)
	}
}

// Point-in-time restore through the admin endpoint of a running server
// and through `nexus restore` on a stopped one.
func TestRestore_AdminAndCLI(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	c := httpapi.NewClient(p.url)
	ctx := context.Background()
	var ids []nexus.ID
	var mid time.Time
	for i := range 6 {
		x, err := c.Put(ctx, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("step ", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, x.ID)
		if i == 3 {
			mid = x.Timestamp
		}
	}
	body := fmt.Sprintf(`{"at":%q,"dry_run":true}`, mid.Format(time.RFC3339Nano))
	resp, err := http.Post(p.url+"/v1/admin/restore", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var plan struct {
		Kept       int  `json:"kept"`
		RolledBack int  `json:"rolled_back"`
		DryRun     bool `json:"dry_run"`
	}
	json.NewDecoder(resp.Body).Decode(&plan)
	resp.Body.Close()
	if resp.StatusCode != 200 || plan.Kept != 4 || plan.RolledBack != 2 || !plan.DryRun {
		t.Fatalf("dry run: %d %+v", resp.StatusCode, plan)
	}
	if _, err := c.Get(ctx, ids[5]); err != nil {
		t.Fatalf("a dry run rolled back: %v", err)
	}
	resp, _ = http.Post(p.url+"/v1/admin/restore", "application/json", strings.NewReader(`{"at":"yesterday"}`))
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad time: %d", resp.StatusCode)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	out, err := exec.Command(binary, "restore", "--data", data, "--at", mid.Format(time.RFC3339Nano)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rolled back 2 contexts") || !strings.Contains(string(out), "refs/recovery/") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	p = startServe(t, data)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	c = httpapi.NewClient(p.url)
	for i, id := range ids {
		_, err := c.Get(ctx, id)
		if (i <= 3) != (err == nil) {
			t.Fatalf("context %d after the restore: %v", i, err)
		}
	}
	res, err := c.Search(ctx, nexus.SearchRequest{Query: "step", Mode: nexus.Keyword, Limit: 20, Consistent: true})
	if err != nil || len(res.Hits) != 4 {
		t.Fatalf("search after the restore: %v %+v", err, res)
	}
}

// Backups on the real binary: write, list, verify, restore into a new
// data directory; a damaged backup is refused.
func TestCLI_Backup(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	c := httpapi.NewClient(p.url)
	x, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeDecision, Content: "keep this safe"})
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	outside := t.TempDir() // not inside a git repository, as for a user
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(binary, args...)
		cmd.Dir = outside
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli("backup", "--data", data); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	out, err := cli("backup", "list", "--data", data)
	files, _ := filepath.Glob(filepath.Join(data, "backups", "*.bundle"))
	if err != nil || len(files) != 1 || !strings.Contains(out, files[0]) {
		t.Fatalf("list: %v %v\n%s", err, files, out)
	}
	if out, err := cli("backup", "verify", files[0]); err != nil || !strings.HasPrefix(out, "ok:") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if out, err := cli("backup", "restore", files[0], "--data", restored); err != nil || !strings.Contains(out, "restored 1 contexts") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	p = startServe(t, restored)
	defer func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() }()
	if got, err := httpapi.NewClient(p.url).Get(context.Background(), x.ID); err != nil || got.Content != "keep this safe" {
		t.Fatalf("restored store: %v %+v", err, got)
	}
	b, _ := os.ReadFile(files[0])
	os.WriteFile(files[0], b[:len(b)/2], 0o644)
	if out, err := cli("backup", "verify", files[0]); err == nil || !strings.Contains(out, "damaged") {
		t.Fatalf("truncated backup: %v\n%s", err, out)
	}
	// A mirror: pushed, verified with git fsck, restored from.
	mirror := filepath.Join(t.TempDir(), "mirror.git")
	if out, err := cli("backup", "--data", data, "--mirror", mirror); err != nil || !strings.Contains(out, "pushed") {
		t.Fatalf("mirror push: %v\n%s", err, out)
	}
	if out, err := cli("backup", "verify", mirror); err != nil || !strings.Contains(out, "git fsck --full clean") {
		t.Fatalf("mirror verify: %v\n%s", err, out)
	}
	fromMirror := filepath.Join(t.TempDir(), "from-mirror")
	if out, err := cli("backup", "restore", mirror, "--data", fromMirror); err != nil || !strings.Contains(out, "restored 1 contexts") {
		t.Fatalf("restore from the mirror: %v\n%s", err, out)
	}
	// Into the damaged data directory itself: refused, then with --replace
	// the old store is set aside (nothing deleted) and the backup restored.
	packs, _ := filepath.Glob(filepath.Join(data, "repo.git", "objects", "pack", "*.pack"))
	os.Truncate(packs[0], 10)
	if out, err := cli("backup", "restore", mirror, "--data", data); err == nil || !strings.Contains(out, "--replace") {
		t.Fatalf("restore over a store: %v\n%s", err, out)
	}
	out, err = cli("backup", "restore", mirror, "--data", data, "--replace")
	if err != nil || !strings.Contains(out, "is kept in "+filepath.Join(data, "quarantine")) || !strings.Contains(out, "restored 1 contexts") {
		t.Fatalf("restore --replace: %v\n%s", err, out)
	}
	if kept, _ := filepath.Glob(filepath.Join(data, "quarantine", "*-replaced", "repo.git", "objects", "pack", "*.pack")); len(kept) == 0 {
		t.Fatal("the replaced store was not kept")
	}
	q := startServe(t, data)
	defer func() { q.cmd.Process.Signal(syscall.SIGTERM); q.cmd.Wait() }()
	if got, err := httpapi.NewClient(q.url).Get(context.Background(), x.ID); err != nil || got.Content != "keep this safe" {
		t.Fatalf("store restored in place: %v %+v", err, got)
	}
}

// Cascading recovery on the real binary: a destroyed index is rebuilt and
// reported as recovered; a damaged repository stops the cascade with
// what to do.
func TestCLI_Recover(t *testing.T) {
	data := t.TempDir()
	p := startServe(t, data)
	c := httpapi.NewClient(p.url)
	for i := range 5 {
		if _, err := c.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("memo ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c.Search(context.Background(), nexus.SearchRequest{Query: "memo", Consistent: true})
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	recov := func() (string, int) {
		out, err := exec.Command(binary, "recover", "--data", data).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	out, code := recov()
	if code != 0 || strings.Count(out, " ok ") != 4 || !strings.Contains(out, "agents           disabled") {
		t.Fatalf("healthy node: exit %d\n%s", code, out)
	}
	os.RemoveAll(filepath.Join(data, "index"))
	out, code = recov()
	if code != 0 || !strings.Contains(out, "semantic_index   recovered") {
		t.Fatalf("index destroyed: exit %d\n%s", code, out)
	}
	head, _ := os.ReadFile(filepath.Join(data, "repo.git", "refs", "heads", "main"))
	os.WriteFile(filepath.Join(data, "repo.git", "refs", "heads", "main"), nil, 0o644)
	out, code = recov()
	if code != 0 || !strings.Contains(out, "git_repository   recovered") || !strings.Contains(out, "set to "+strings.TrimSpace(string(head))) {
		t.Fatalf("emptied ref: exit %d\n%s", code, out)
	}
	// With no catalog to confirm the newest commit, the ref is not guessed.
	os.WriteFile(filepath.Join(data, "repo.git", "refs", "heads", "main"), nil, 0o644)
	os.Remove(filepath.Join(data, "catalog.bin"))
	out, code = recov()
	if code != 4 || !strings.Contains(out, "git_repository   failed") || !strings.Contains(out, "nexus backup restore") || strings.Contains(out, "context_manager") {
		t.Fatalf("damaged repository: exit %d\n%s", code, out)
	}
	// Damaged objects with a backup: repaired in place, the cascade goes on.
	os.WriteFile(filepath.Join(data, "repo.git", "refs", "heads", "main"), []byte(head), 0o644)
	if out, err := exec.Command(binary, "backup", "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	packs, _ := filepath.Glob(filepath.Join(data, "repo.git", "objects", "pack", "pack-*.pack"))
	b, _ := os.ReadFile(packs[0])
	b[len(b)/2] ^= 0x04
	os.WriteFile(packs[0], b, 0o644)
	out, code = recov()
	if code != 0 || !strings.Contains(out, "git_repository   recovered") || !strings.Contains(out, "objects restored from") {
		t.Fatalf("damaged objects with a backup: exit %d\n%s", code, out)
	}
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full", "--strict").CombinedOutput(); err != nil {
		t.Fatalf("git fsck after recover: %v\n%s", err, out)
	}
}
