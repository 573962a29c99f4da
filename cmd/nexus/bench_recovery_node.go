package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/recovery"
)

// benchPoll is how often `nexus bench recovery` asks a node whether the
// event it waits for happened: the resolution of its figures.
const benchPoll = 50 * time.Millisecond

// benchNode is a `nexus serve` child process of `nexus bench recovery`.
type benchNode struct {
	cmd    *exec.Cmd
	url    string
	log    *nodeLog
	exited chan struct{}
	http   *http.Client
}

// nodeLog keeps what a child process writes, for the messages it logs
// and for errors.
type nodeLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *nodeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *nodeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail is the end of the log, for an error message.
func (l *nodeLog) tail() string {
	s := strings.TrimSpace(l.String())
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}

// listenWatch is the stdout of a node: it passes on the URL of the
// "nexus listening on" line.
type listenWatch struct {
	buf  []byte
	urls chan string
}

func (w *listenWatch) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if rest, ok := strings.CutPrefix(line, "nexus listening on "); ok {
			url, _, _ := strings.Cut(rest, " ")
			select {
			case w.urls <- url:
			default:
			}
		}
	}
}

// launch starts `nexus serve` on data, with extra flags, and waits until
// it listens.
func (b *recoveryBench) launch(ctx context.Context, data string, extra ...string) (*benchNode, error) {
	args := []string{"serve", "--data", data, "--addr", "127.0.0.1:0",
		"--backup-interval=0", "--scrub-interval=0", "--recover-interval=" + b.cfg.recoverEvery.String()}
	cmd := exec.Command(b.exe, append(args, extra...)...)
	n := &benchNode{cmd: cmd, log: &nodeLog{}, exited: make(chan struct{}), http: &http.Client{Timeout: 5 * time.Second}}
	w := &listenWatch{urls: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = w, n.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start nexus serve: %w", err)
	}
	go func() { cmd.Wait(); close(n.exited) }()
	timer := time.NewTimer(b.cfg.timeout)
	defer timer.Stop()
	select {
	case n.url = <-w.urls:
		return n, nil
	case <-n.exited:
		return nil, fmt.Errorf("nexus serve exited (%s) before listening:\n%s", cmd.ProcessState, n.log.tail())
	case <-timer.C:
		n.stop(time.Second)
		return nil, fmt.Errorf("nexus serve did not listen within %s:\n%s", b.cfg.timeout, n.log.tail())
	case <-ctx.Done():
		n.stop(time.Second)
		return nil, ctx.Err()
	}
}

// stop ends the node gracefully, killing it if it has not stopped within
// wait, and waits for it.
func (n *benchNode) stop(wait time.Duration) {
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(os.Interrupt)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-n.exited:
	case <-timer.C:
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// until polls done every benchPoll until it says yes, failing when the
// node exits or timeout passes first. done's errors mean "not yet"; the
// last one is reported if time runs out.
func (b *recoveryBench) until(ctx context.Context, n *benchNode, what string, done func() (bool, error)) error {
	deadline := time.Now().Add(b.cfg.timeout)
	tick := time.NewTicker(benchPoll)
	defer tick.Stop()
	for {
		ok, err := done()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s (last answer: %v); node log:\n%s", what, b.cfg.timeout, err, n.log.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.exited:
			return fmt.Errorf("%s: the node exited (%s):\n%s", what, n.cmd.ProcessState, n.log.tail())
		case <-tick.C:
		}
	}
}

// ready reports whether GET /readyz answers 200.
func (n *benchNode) ready() (bool, error) {
	resp, err := n.http.Get(n.url + "/readyz")
	if err != nil {
		return false, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("/readyz: %s", resp.Status)
	}
	return true, nil
}

// health reads GET /health (a 503 still carries the report).
func (n *benchNode) health() (nexus.Health, error) {
	var h nexus.Health
	resp, err := n.http.Get(n.url + "/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, fmt.Errorf("/health: %s: %w", resp.Status, err)
	}
	return h, nil
}

// incidentRecords counts the contexts of the incidents namespace: the
// records the node keeps of the faults it met.
func (n *benchNode) incidentRecords() (int, error) {
	c := httpapi.NewClient(n.url, httpapi.WithHTTPClient(n.http))
	f := nexus.Filter{Namespace: recovery.IncidentsNamespace, Limit: nexus.MaxLimit}
	count := 0
	for {
		page, err := c.List(context.Background(), f)
		if err != nil {
			return 0, err
		}
		count += len(page.Contexts)
		if page.NextCursor == "" {
			return count, nil
		}
		f.Cursor = page.NextCursor
	}
}

// deepCheck runs POST /v1/admin/fsck?deep=true and returns the report.
func (n *benchNode) deepCheck(ctx context.Context) (*gitstore.FsckReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url+"/v1/admin/fsck?deep=true", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json") // the server refuses a POST a form could send
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("deep check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("deep check: %s: %s", resp.Status, body)
	}
	var rep gitstore.FsckReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("deep check: %w", err)
	}
	return &rep, nil
}

// detail is a number among a component's health details (0 if absent).
func detail(h nexus.Health, component, key string) float64 {
	v, _ := h.Components[component].Details[key].(float64)
	return v
}

// recovered is how many times component was recovered, and its last
// recovery.
func recovered(h nexus.Health, component string) (int, recovery.Step) {
	rec, _ := h.Components[component].Details["recoveries"].(map[string]any)
	n, _ := rec["recovered"].(float64)
	var last recovery.Step
	if b, err := json.Marshal(rec["last"]); err == nil {
		json.Unmarshal(b, &last)
	}
	return int(n), last
}

// unhealthy names the components of h that are not healthy, or "".
func unhealthy(h nexus.Health) string {
	var bad []string
	for _, c := range nexus.Components {
		if ch := h.Components[c]; nexus.Rank(ch.Status) > 0 {
			bad = append(bad, c+" "+ch.Status+": "+ch.Error)
		}
	}
	return strings.Join(bad, "; ")
}

// logged returns the values of key in the node's log lines whose
// message is msg (log/slog text format).
func logged(log, msg, key string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, "msg="+strconv.Quote(msg)) && !strings.Contains(l, "msg="+msg+" ") {
			continue
		}
		_, v, ok := strings.Cut(l, " "+key+"=")
		if !ok {
			continue
		}
		if strings.HasPrefix(v, `"`) {
			if q, err := strconv.QuotedPrefix(v); err == nil {
				v, _ = strconv.Unquote(q)
			}
		} else {
			v, _, _ = strings.Cut(v, " ")
		}
		out = append(out, v)
	}
	return out
}

// runExe runs this binary with args and returns its stdout and exit code
// (stderr goes to the bench's log).
func (b *recoveryBench) runExe(ctx context.Context, args ...string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.exe, args...)
	var out bytes.Buffer
	var errOut nodeLog
	cmd.Stdout, cmd.Stderr = &out, io.MultiWriter(&errOut, b.log)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return out.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("nexus %s: %w\n%s", args[0], err, errOut.tail())
	}
	return out.String(), 0, nil
}

// copyTree copies the directory src to dst (regular files, directories
// and symbolic links).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			return copyFile(p, to, info.Mode().Perm())
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
