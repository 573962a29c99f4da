package audit

import (
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

// Log is an open audit log. It is safe for concurrent use; appends are
// serialised.
type Log struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu     sync.Mutex
	seq    int64  // the newest record's seq
	prev   string // the newest record's hash
	broken error  // a failed append could not be undone: the file's end is unknown
}

// Open opens the audit log at path, creating it (mode 0600, its directory
// 0700) if there is none. An unfinished last line (a crash during an
// append) is cut off; a broken chain is reported to the logger and kept
// as it is (Verify names it), and appends continue after its last record.
func Open(path string, opts Options) (*Log, error) {
	l := &Log{path: path, log: opts.Logger, now: opts.Now, prev: Genesis}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	if err := l.load(f); err != nil {
		return nil, err
	}
	return l, nil
}

// load finds the newest record of f and cuts off an unfinished last line.
func (l *Log) load(f *os.File) error {
	var last []byte
	var lines int64
	torn, err := scan(f, func(line []byte) error {
		last, lines = append(last[:0], line...), lines+1
		return nil
	})
	if err != nil {
		return err
	}
	if torn > 0 {
		if err := cutTail(f, torn); err != nil {
			return err
		}
		l.log.Warn("audit log: cut off an unfinished last record (a write interrupted by a crash, never acknowledged)", "path", l.path, "bytes", torn)
	}
	if lines == 0 {
		return nil
	}
	l.prev, l.seq = Hash(last), lines
	var rec Record
	if json.Unmarshal(last, &rec) == nil && rec.Seq > 0 {
		l.seq = rec.Seq
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	if _, err := Verify(f, nil); err != nil {
		l.log.Error("audit log: the chain is broken; records are still appended after the last one", "path", l.path, "err", err)
	}
	return nil
}

// cutTail removes the last n bytes of f, durably.
func cutTail(f *os.File, n int) error {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("cut audit log tail: %w", err)
	}
	if err := f.Truncate(end - int64(n)); err != nil {
		return fmt.Errorf("cut audit log tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cut audit log tail: %w", err)
	}
	return nil
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
	l.mu.Lock()
	st, err := f.Stat()
	l.mu.Unlock()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, st.Size()), f}, nil
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
	res, err := fn()
	out := &Record{Kind: KindOutcome, Action: action, Principal: who, Remote: origin.RemoteAddr, Route: origin.Route,
		Params: params, Intent: intent.Seq, Outcome: OutcomeOK, Result: res}
	if err != nil {
		out.Outcome, out.Error = OutcomeFailed, string(nexus.ErrorCode(err))+": "+nexus.ErrorMessage(err)
	}
	if aerr := l.append(out); aerr != nil {
		l.log.Error("audit log: the outcome of an admin action that ran could not be recorded", "action", action, "intent", intent.Seq, "outcome", out.Outcome, "err", aerr)
	}
	return err
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
	if l.broken != nil {
		return fmt.Errorf("an earlier append could not be undone (reopen the log): %w", l.broken)
	}
	rec.Seq, rec.Time, rec.Prev = l.seq+1, l.now().UTC(), l.prev
	line, err := rec.encode()
	if err != nil {
		return err
	}
	if err := l.write(append(line, '\n')); err != nil {
		return err
	}
	l.seq, l.prev = rec.Seq, Hash(line)
	l.log.LogAttrs(context.Background(), level(rec), "audit", recordAttrs(rec, l.prev)...)
	return nil
}

// write appends b to the file and syncs it; on failure it truncates the
// file back to where it ended.
func (l *Log) write(b []byte) error {
	f, created, err := openAppend(l.path)
	if err != nil {
		return err
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err == nil && created {
		err = syncDir(filepath.Dir(l.path))
	}
	if err != nil {
		if terr := f.Truncate(end); terr != nil {
			l.broken = errors.Join(err, terr)
		}
		return fmt.Errorf("append audit record: %w", err)
	}
	return nil
}

// openAppend opens the log for appending, creating it (and saying so) if
// it is gone.
func openAppend(path string) (*os.File, bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, true, nil
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("open audit log: %w", err)
	}
	return f, false, nil
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
