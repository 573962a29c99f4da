package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
)

// Options configure a [Log]. The zero value works.
type Options struct {
	// Logger receives every record too (and the log's own troubles); nil
	// discards.
	Logger *slog.Logger
	// Now is the clock of the records; nil: time.Now.
	Now func() time.Time
}

// Log is an open audit log. It is safe for concurrent use, also by other
// processes appending to the same file (a `nexus` verb while the node
// runs): each append holds an exclusive lock on the file and chains onto
// the record it finds last.
type Log struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu sync.Mutex // one append at a time in this process (the file lock is per open file)
}

// Open opens the audit log at path, creating it (mode 0600, its directory
// 0700) if there is none. An unfinished last line (a crash during an
// append) is cut off; a broken chain is reported to the logger and kept
// as it is (Verify names it), and appends continue after its last record.
func Open(path string, opts Options) (*Log, error) {
	l := &Log{path: path, log: opts.Logger, now: opts.Now}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	f, created, err := l.lock()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := l.tail(f); err != nil {
		return nil, err
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	if _, err := Verify(f, nil); err != nil {
		l.log.Error("audit log: the chain is broken; records are still appended after the last one", "path", path, "err", err)
	}
	return l, nil
}

// lock opens the log's file for appending (creating it, and saying so,
// if it is gone) and locks it exclusively; closing it unlocks it.
func (l *Log) lock() (*os.File, bool, error) {
	created := false
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(l.path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		created = err == nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open audit log: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lock audit log: %w", err)
	}
	return f, created, nil
}

// end is where a locked log ends: its size and its newest record.
type end struct {
	size int64
	seq  int64
	hash string
}

// tail finds the newest record of the locked file f, first cutting off an
// unfinished last line (a writer that died in the middle of an append).
func (l *Log) tail(f *os.File) (end, error) {
	st, err := f.Stat()
	if err != nil {
		return end{}, fmt.Errorf("read audit log: %w", err)
	}
	size := st.Size()
	for chunk := int64(4096); ; chunk *= 2 {
		off := max(0, size-chunk)
		buf := make([]byte, size-off)
		if _, err := f.ReadAt(buf, off); err != nil {
			return end{}, fmt.Errorf("read audit log: %w", err)
		}
		if len(buf) > 0 && buf[len(buf)-1] != '\n' {
			nl := bytes.LastIndexByte(buf, '\n')
			if nl < 0 && off > 0 {
				continue
			}
			cut := off + int64(nl) + 1
			if err := l.cut(f, cut, size); err != nil {
				return end{}, err
			}
			size, chunk = cut, chunk/2
			continue
		}
		if len(buf) == 0 {
			return end{hash: Genesis}, nil
		}
		start := bytes.LastIndexByte(buf[:len(buf)-1], '\n')
		if start < 0 && off > 0 {
			continue
		}
		line := buf[start+1 : len(buf)-1]
		return end{size: size, seq: seqOf(f, line), hash: Hash(line)}, nil
	}
}

// cut truncates the locked file f from at to its end (size), durably.
func (l *Log) cut(f *os.File, at, size int64) error {
	if err := f.Truncate(at); err != nil {
		return fmt.Errorf("cut audit log tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cut audit log tail: %w", err)
	}
	l.log.Warn("audit log: cut off an unfinished last record (a write interrupted by a crash, never acknowledged)", "path", l.path, "bytes", size-at)
	return nil
}

// seqOf is the seq of the newest record, line; if it cannot be read (the
// log was damaged), the number of lines.
func seqOf(f *os.File, line []byte) int64 {
	var rec Record
	if json.Unmarshal(line, &rec) == nil && rec.Seq > 0 {
		return rec.Seq
	}
	var n int64
	scan(io.NewSectionReader(f, 0, 1<<62), func([]byte) error { n++; return nil })
	return n
}

// Path is the file of the log.
func (l *Log) Path() string { return l.path }

// Snapshot returns a reader of every record appended so far (none that is
// being written), for `nexus audit` through a running node.
func (l *Log) Snapshot() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	size, err := sharedSize(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, size), f}, nil
}

// sharedSize is the size of f while no append is under way.
func sharedSize(f *os.File) (int64, error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		return 0, err
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// Do runs the admin action fn, recording its intent first and its
// outcome after. If the intent cannot be written, fn does not run and Do
// returns an unavailable error saying so. If the outcome cannot be written
// (fn has run), the server log says so and fn's error is returned. The
// principal and origin come from ctx: a call without a principal is the
// node's own, or anonymous when it came through the API.
func (l *Log) Do(ctx context.Context, action string, params Fields, fn func() (Fields, error)) error {
	who, origin := principalOf(ctx)
	intent := &Record{Kind: KindIntent, Action: action, Principal: who, Remote: origin.RemoteAddr, Route: origin.Route, Params: params}
	if err := l.append(intent); err != nil {
		l.log.Error("audit log cannot be written: admin action refused", "action", action, "principal", who, "err", err)
		return nexus.WrapError(nexus.EUnavailable, err,
			"the audit log cannot be written, so %s was refused and nothing was done; fix the audit log (see the server log) and retry", action)
	}
	out := &Record{Kind: KindOutcome, Action: action, Principal: who, Remote: origin.RemoteAddr, Route: origin.Route,
		Params: params, Intent: intent.Seq, Outcome: OutcomeFailed, Error: "internal: the action panicked"}
	defer l.outcome(out) // also when fn panics
	res, err := fn()
	out.Outcome, out.Error, out.Result = OutcomeOK, "", res
	if err != nil {
		out.Outcome, out.Error = OutcomeFailed, string(nexus.ErrorCode(err))+": "+nexus.ErrorMessage(err)
	}
	return err
}

// outcome appends the outcome of an action that ran; when it cannot, the
// server log says so.
func (l *Log) outcome(out *Record) {
	if err := l.append(out); err != nil {
		l.log.Error("audit log: the outcome of an admin action that ran could not be recorded", "action", out.Action, "intent", out.Intent, "outcome", out.Outcome, "err", err)
	}
}

// AuthFailure records a request that failed authentication, and why. It
// records the method and path, never the query, the headers or the
// credentials. Its signature is that of the server's OnAuthFailure hook.
func (l *Log) AuthFailure(r *http.Request, reason string) {
	who, _ := principalOf(r.Context())
	if who == "node" {
		who = nexus.Anonymous.Name // it came through the API
	}
	rec := &Record{Kind: KindAuthFailure, Action: "authenticate", Principal: who, Remote: r.RemoteAddr,
		Route: clip(r.Method, 16) + " " + clip(r.URL.Path, 200), Outcome: OutcomeRefused, Error: clip(reason, 200)}
	if ua := r.UserAgent(); ua != "" {
		rec.Params = Fields{"user_agent": clip(ua, 200)}
	}
	if err := l.append(rec); err != nil {
		l.log.Error("audit log: an authentication failure could not be recorded", "remote", r.RemoteAddr, "route", rec.Route, "err", err)
	}
}

// principalOf names the caller of ctx: its principal; anonymous for a
// request without one; the node for an in-process call.
func principalOf(ctx context.Context) (string, nexus.Origin) {
	origin, api := nexus.OriginFrom(ctx)
	if p, ok := nexus.PrincipalFrom(ctx); ok {
		return p.Name, origin
	}
	if api {
		return nexus.Anonymous.Name, origin
	}
	return "node", origin
}

// append writes rec as the next record, durably, filling in its seq, time
// and prev. On failure nothing was appended.
func (l *Log) append(rec *Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, created, err := l.lock()
	if err != nil {
		return err
	}
	defer f.Close()
	last, err := l.tail(f)
	if err != nil {
		return err
	}
	rec.Seq, rec.Time, rec.Prev = last.seq+1, l.now().UTC(), last.hash
	line, err := rec.encode()
	if err != nil {
		return err
	}
	if err := l.write(f, append(line, '\n'), last.size, created); err != nil {
		return err
	}
	l.log.LogAttrs(context.Background(), level(rec), "audit", recordAttrs(rec, Hash(line))...)
	return nil
}

// write appends b to the locked file f, which ends at size, and syncs it;
// on failure it truncates the file back to size (if that fails too, the
// next append cuts off the unfinished line).
func (l *Log) write(f *os.File, b []byte, size int64, created bool) error {
	_, err := f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err == nil && created {
		err = syncDir(filepath.Dir(l.path))
	}
	if err != nil {
		f.Truncate(size)
		return fmt.Errorf("append audit record: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func level(rec *Record) slog.Level {
	switch {
	case rec.Kind == KindAuthFailure:
		return slog.LevelWarn
	case rec.Outcome == OutcomeFailed:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func recordAttrs(rec *Record, hash string) []slog.Attr {
	attrs := []slog.Attr{slog.Int64("seq", rec.Seq), slog.String("kind", string(rec.Kind)), slog.String("action", rec.Action),
		slog.String("principal", rec.Principal), slog.String("remote", rec.Remote), slog.String("route", rec.Route)}
	if len(rec.Params) > 0 {
		attrs = append(attrs, slog.Any("params", map[string]string(rec.Params)))
	}
	if rec.Outcome != "" {
		attrs = append(attrs, slog.String("outcome", rec.Outcome))
	}
	if rec.Error != "" {
		attrs = append(attrs, slog.String("error", rec.Error))
	}
	if len(rec.Result) > 0 {
		attrs = append(attrs, slog.Any("result", map[string]string(rec.Result)))
	}
	return append(attrs, slog.String("hash", hash))
}

// clip shortens s to at most n bytes, at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
