package main_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// runbookBlock is one fenced block of docs/RUNBOOK.md tagged
// runbook=NAME: the commands of one entry.
type runbookBlock struct {
	name   string
	expect int // the exit code the block ends with
	script string
}

var runbookFence = regexp.MustCompile("^```sh runbook=([a-z-]+)(.*)$")

// runbookBlocks parses docs/RUNBOOK.md.
func runbookBlocks(t *testing.T) map[string]runbookBlock {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "RUNBOOK.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := map[string]runbookBlock{}
	var cur *runbookBlock
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if cur != nil {
			if line == "```" {
				blocks[cur.name] = *cur
				cur = nil
				continue
			}
			cur.script += line + "\n"
			continue
		}
		m := runbookFence.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := blocks[m[1]]; dup {
			t.Fatalf("runbook: two blocks named %s", m[1])
		}
		cur = &runbookBlock{name: m[1]}
		for _, opt := range strings.Fields(m[2]) {
			switch {
			case strings.HasPrefix(opt, "expect="):
				if cur.expect, err = strconv.Atoi(strings.TrimPrefix(opt, "expect=")); err != nil {
					t.Fatalf("runbook %s: %s", m[1], opt)
				}
			default:
				t.Fatalf("runbook %s: unknown option %q", m[1], opt)
			}
		}
	}
	if cur != nil {
		t.Fatalf("runbook %s: unterminated block", cur.name)
	}
	return blocks
}

// runBlock runs a block with sh -e, the binary under test first in PATH
// and vars in the environment, and checks its exit code; it returns the
// block's stdout and stderr.
func runBlock(t *testing.T, b runbookBlock, vars map[string]string) (stdout, stderr string) {
	t.Helper()
	cmd := exec.Command("sh", "-e", "-c", b.script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+string(os.PathListSeparator)+os.Getenv("PATH"))
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != b.expect {
		t.Fatalf("runbook %s exited %d, want %d:\n%s\nstdout:\n%s\nstderr:\n%s", b.name, code, b.expect, b.script, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
}

// TestRunbook stages every failure of docs/RUNBOOK.md for real and runs
// the entry's commands: the checks must show the failure, the fixes must
// succeed and leave a node serving every acknowledged write.
func TestRunbook(t *testing.T) {
	blocks := runbookBlocks(t)
	stages := map[string]func(t *testing.T, blocks map[string]runbookBlock){
		"locked":         runbookLocked,
		"stopped":        runbookStopped,
		"unrecoverable":  runbookUnrecoverable,
		"ambiguous-main": runbookAmbiguousMain,
		"token":          runbookToken,
		"tls":            runbookTLS,
		"jwt":            runbookJWT,
		"disk-full":      runbookDiskFull,
		"quorum":         runbookQuorum,
		"quorum-lost":    runbookQuorumLost,
	}
	for name := range stages {
		if _, ok := blocks[name]; !ok {
			t.Errorf("docs/RUNBOOK.md has no block runbook=%s", name)
		}
	}
	for name := range blocks {
		if strings.HasSuffix(name, "-check") {
			if _, ok := blocks[strings.TrimSuffix(name, "-check")]; !ok {
				t.Errorf("runbook %s checks no entry", name)
			}
			continue
		}
		stage, ok := stages[name]
		if !ok {
			t.Errorf("runbook %s has no staging in TestRunbook", name)
			continue
		}
		t.Run(name, func(t *testing.T) { stage(t, blocks) })
	}
}

// servesAll starts a node on data and checks every write reads back.
func servesAll(t *testing.T, data string, written map[nexus.ID]string) {
	t.Helper()
	p := startServe(t, data, "--no-search", "--backup-interval=0")
	defer stopServe(p)
	c := httpapi.NewClient(p.url)
	for id, content := range written {
		got, err := c.Get(context.Background(), id)
		if err != nil || got.Content != content {
			t.Fatalf("%s after the runbook: %v %v", id, got, err)
		}
	}
}

func runbookLocked(t *testing.T, blocks map[string]runbookBlock) {
	data := t.TempDir()
	p := startServe(t, data, "--no-search", "--backup-interval=0")
	written := putMany(t, p.url, 5, "locked")
	_, stderr := runBlock(t, blocks["locked-check"], map[string]string{"DATA": data})
	if !strings.Contains(stderr, "the store is in use, nothing was changed") {
		t.Fatalf("locked-check: %s", stderr)
	}
	runBlock(t, blocks["locked"], map[string]string{"NEXUS_SERVER": p.url})
	stopServe(p)
	servesAll(t, data, written)
}

// damaged is a store whose repository a running node found damaged
// beyond what it could repair (no backup in its reach): it exited 4. The
// backup of every write was written beforehand outside the data
// directory.
func damaged(t *testing.T) (data, bundle string, written map[nexus.ID]string) {
	t.Helper()
	data = t.TempDir()
	p := startServe(t, data, "--no-search", "--backup-interval=0")
	written = putMany(t, p.url, 20, "kept")
	stopServe(p)
	dir := t.TempDir()
	if out, code := runEnv(t, nil, "backup", "--data", data, "--dir", dir); code != 0 {
		t.Fatalf("backup: %d %s", code, out)
	}
	bundles, _ := filepath.Glob(filepath.Join(dir, "*.bundle"))
	if len(bundles) != 1 {
		t.Fatalf("backups in %s: %v", dir, bundles)
	}
	p = startServe(t, data, "--no-search", "--backup-interval=0", "--scrub-interval=300ms")
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
		stopServe(p)
		t.Fatalf("the node kept running on unrepairable damage:\n%s", p.stderr)
	}
	return data, bundles[0], written
}

func runbookStopped(t *testing.T, blocks map[string]runbookBlock) {
	data, bundle, written := damaged(t)
	runBlock(t, blocks["stopped-check"], map[string]string{"DATA": data})
	runBlock(t, blocks["stopped"], map[string]string{"DATA": data, "BACKUP": bundle})
	servesAll(t, data, written)
}

func runbookUnrecoverable(t *testing.T, blocks map[string]runbookBlock) {
	data, bundle, written := damaged(t)
	stdout, _ := runBlock(t, blocks["unrecoverable"], map[string]string{"DATA": data, "BACKUP": bundle})
	if !strings.Contains(stdout, "restored 20 contexts") {
		t.Fatalf("restore: %s", stdout)
	}
	if q, _ := filepath.Glob(filepath.Join(data, "quarantine", "*")); len(q) == 0 {
		t.Fatal("the damaged store was not kept in DATA/quarantine/")
	}
	servesAll(t, data, written)
}

// runbookAmbiguousMain forks the journal (a second commit on main's
// parent, carrying the same Context-Id trailer, in a pack of its own) and
// empties main: two journal commits could be its head.
func runbookAmbiguousMain(t *testing.T, blocks map[string]runbookBlock) {
	data := t.TempDir()
	p := startServe(t, data, "--no-search", "--backup-interval=0")
	written := putMany(t, p.url, 10, "journal")
	stopServe(p)
	gitDir := filepath.Join(data, "repo.git")
	git := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"--git-dir", gitDir}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	head := git("", "rev-parse", "refs/heads/main")
	msg := git("", "log", "-1", "--format=%B", head)
	fork := git("", "commit-tree", head+"^{tree}", "-p", head+"~1", "-m", msg)
	git(fork+"\n", "pack-objects", filepath.Join(gitDir, "objects", "pack", "pack"))
	if err := os.WriteFile(filepath.Join(gitDir, "refs", "heads", "main"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := runBlock(t, blocks["ambiguous-main-check"], map[string]string{"DATA": data})
	if said := stdout + stderr; !strings.Contains(said, "update-ref refs/heads/main") || !strings.Contains(said, fork) {
		t.Fatalf("the refusal names no candidate %s and no update-ref:\n%s", fork, said)
	}
	t.Logf("refused: %s", stdout)
	runBlock(t, blocks["ambiguous-main"], map[string]string{"DATA": data, "COMMIT": head})
	servesAll(t, data, written)
}

// runbookToken: the only admin token is lost (the server answers 401 to
// anything else); the runbook's new principal works after SIGHUP.
func runbookToken(t *testing.T, blocks map[string]runbookBlock) {
	data := t.TempDir()
	tokens := filepath.Join(data, "tokens.json")
	if out, code := runEnv(t, nil, "token", "create", "--name", "lost", "--role", "admin", "--read", "*", "--write", "*", "--file", tokens); code != 0 {
		t.Fatalf("token create: %d %s", code, out)
	}
	p := startServe(t, data, "--no-search", "--backup-interval=0")
	defer stopServe(p)
	get := func(token string) int {
		req, _ := http.NewRequest("GET", p.url+"/v1/contexts", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("nx_not-the-token-we-had"); code != http.StatusUnauthorized {
		t.Fatalf("a wrong token: %d, want 401", code)
	}
	stdout, _ := runBlock(t, blocks["token"], map[string]string{"DATA": data, "PID": strconv.Itoa(p.cmd.Process.Pid)})
	tok := strings.TrimSpace(strings.SplitN(stdout, "\n", 2)[0])
	deadline := time.Now().Add(30 * time.Second)
	for get(tok) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the new token is still refused after SIGHUP:\n%s", p.stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling an external process
	}
}
