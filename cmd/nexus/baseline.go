package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The baselines write the same kind of contexts as the server, with the
// stock git CLI, so the report can state ratios measured in the same run.

func gitCmd(ctx context.Context, dir string, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "gc.auto=0", "--git-dir", dir}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@localhost", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@localhost")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", args[0], err)
	}
	return strings.TrimSpace(string(out)), nil
}

// gitLoopBaseline stores n contexts as one commit each by running the git
// CLI per context: hash-object, mktree, commit-tree, update-ref.
func gitLoopBaseline(ctx context.Context, dir string, n, size int) (float64, error) {
	if out, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", dir).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("git init: %v: %s", err, out)
	}
	start := time.Now()
	parent := ""
	for i := 0; i < n; i++ {
		blob, err := gitCmd(ctx, dir, []byte(benchPayload(size)), "hash-object", "-w", "--stdin")
		if err != nil {
			return 0, err
		}
		tree, err := gitCmd(ctx, dir, []byte(fmt.Sprintf("100644 blob %s\tctx-%08d.json\n", blob, i)), "mktree")
		if err != nil {
			return 0, err
		}
		args := []string{"commit-tree", tree, "-m", fmt.Sprintf("observation %d", i)}
		if parent != "" {
			args = append(args, "-p", parent)
		}
		if parent, err = gitCmd(ctx, dir, nil, args...); err != nil {
			return 0, err
		}
		if _, err := gitCmd(ctx, dir, nil, "update-ref", "refs/heads/main", parent); err != nil {
			return 0, err
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fastImportBaseline streams n contexts, one commit each with the file at
// a sharded path, into one `git fast-import` process.
func fastImportBaseline(ctx context.Context, dir string, n, size int) (float64, error) {
	if out, err := exec.CommandContext(ctx, "git", "init", "-q", "--bare", dir).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("git init: %v: %s", err, out)
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "git", "-c", "gc.auto=0", "--git-dir", dir, "fast-import", "--quiet")
	in, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(in, 1<<20)
	now := time.Now().Unix()
	for i := 0; i < n; i++ {
		body := benchPayload(size)
		msg := fmt.Sprintf("observation %d", i)
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter bench <bench@localhost> %d +0000\ndata %d\n%s\n", now, len(msg), msg)
		leaf := fmt.Sprintf("%05x", i/16)
		path := "bench/" + leaf[:1] + "/" + leaf[1:2] + "/" + leaf[2:3] + "/" + leaf[3:4] + "/" + leaf[4:] + fmt.Sprintf("/ctx-%08d.json", i)
		fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n\n", path, len(body), body)
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("fast-import: %w", err)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
