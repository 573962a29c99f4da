package audit_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
)

// fixed is a clock for records.
func fixed() time.Time { return time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC) }

// openLog opens a log in a temporary directory, its server log in buf.
func openLog(t *testing.T, buf *bytes.Buffer) *audit.Log {
	t.Helper()
	var opts audit.Options
	opts.Now = fixed
	if buf != nil {
		opts.Logger = slog.New(slog.NewTextHandler(buf, nil))
	}
	l, err := audit.Open(filepath.Join(t.TempDir(), "audit", "audit.log"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// records verifies the log's file and returns its records.
func records(t *testing.T, path string) []audit.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Record
	if _, err := audit.Verify(f, func(r audit.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("verify: %v", err)
	}
	return out
}

func TestLog_Do(t *testing.T) {
	var slogged bytes.Buffer
	l := openLog(t, &slogged)
	ctx := nexus.WithPrincipal(context.Background(), &nexus.Principal{Name: "ops", Role: nexus.RoleAdmin})
	ctx = nexus.WithOrigin(ctx, nexus.Origin{RemoteAddr: "127.0.0.1:5555", Route: "POST /v1/admin/restore"})
	ran := false
	err := l.Do(ctx, "restore", audit.Fields{"at": "2026-12-01T00:00:00Z"}, func() (audit.Fields, error) {
		ran = true
		return audit.Fields{"rolled_back": "3"}, nil
	})
	if err != nil || !ran {
		t.Fatalf("Do = %v, ran %v", err, ran)
	}
	failure := nexus.Errorf(nexus.EInvalid, "bad time")
	if err := l.Do(context.Background(), "fsck", audit.Fields{"deep": "true"}, func() (audit.Fields, error) { return nil, failure }); err != failure {
		t.Fatalf("Do = %v, want the action's own error", err)
	}
	got := records(t, l.Path())
	want := []audit.Record{
		{Seq: 1, Kind: audit.KindIntent, Action: "restore", Principal: "ops", Remote: "127.0.0.1:5555", Route: "POST /v1/admin/restore", Params: audit.Fields{"at": "2026-12-01T00:00:00Z"}},
		{Seq: 2, Kind: audit.KindOutcome, Action: "restore", Principal: "ops", Remote: "127.0.0.1:5555", Route: "POST /v1/admin/restore", Params: audit.Fields{"at": "2026-12-01T00:00:00Z"}, Intent: 1, Outcome: "ok", Result: audit.Fields{"rolled_back": "3"}},
		{Seq: 3, Kind: audit.KindIntent, Action: "fsck", Principal: "node", Params: audit.Fields{"deep": "true"}},
		{Seq: 4, Kind: audit.KindOutcome, Action: "fsck", Principal: "node", Params: audit.Fields{"deep": "true"}, Intent: 3, Outcome: "failed", Error: "invalid: bad time"},
	}
	checkRecords(t, got, want)
	if n := strings.Count(slogged.String(), "msg=audit "); n != 4 {
		t.Errorf("server log has %d audit lines, want 4:\n%s", n, slogged.String())
	}
	if !strings.Contains(slogged.String(), "hash="+audit.Hash(lineOf(t, l.Path(), 4))) {
		t.Errorf("server log lacks the hash of the last record:\n%s", slogged.String())
	}
}

// checkRecords compares records, ignoring Prev (Verify checked it) and
// requiring the fixed clock's time.
func checkRecords(t *testing.T, got, want []audit.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range got {
		if !got[i].Time.Equal(fixed()) {
			t.Errorf("record %d time %v, want %v", i+1, got[i].Time, fixed())
		}
		g, w := got[i], want[i]
		g.Prev, g.Time, w.Time = "", time.Time{}, time.Time{}
		if !equalRecord(g, w) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i+1, g, w)
		}
	}
}

func equalRecord(a, b audit.Record) bool {
	eq := func(x, y audit.Fields) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	}
	pa, ra, pb, rb := a.Params, a.Result, b.Params, b.Result
	a.Params, a.Result, b.Params, b.Result = nil, nil, nil, nil
	return a.Seq == b.Seq && a.Kind == b.Kind && a.Action == b.Action && a.Principal == b.Principal &&
		a.Remote == b.Remote && a.Route == b.Route && a.Intent == b.Intent && a.Outcome == b.Outcome &&
		a.Error == b.Error && eq(pa, pb) && eq(ra, rb)
}

// lineOf is line n (1-based) of the file, without its newline.
func lineOf(t *testing.T, path string, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(b, []byte("\n"))[n-1]
}

// breakFile makes the log's file unwritable for any user, root included:
// a directory takes its place.
func breakFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

func TestLog_Do_refusedWhenTheIntentCannotBeWritten(t *testing.T) {
	var slogged bytes.Buffer
	l := openLog(t, &slogged)
	breakFile(t, l.Path())
	ran := false
	err := l.Do(context.Background(), "restore", nil, func() (audit.Fields, error) { ran = true; return nil, nil })
	if ran {
		t.Fatal("the action ran although its intent was not recorded")
	}
	if nexus.ErrorCode(err) != nexus.EUnavailable || !strings.Contains(nexus.ErrorMessage(err), "the audit log cannot be written, so restore was refused") {
		t.Fatalf("Do = %v, want unavailable naming the refusal", err)
	}
	if !strings.Contains(slogged.String(), "admin action refused") {
		t.Errorf("server log does not say the action was refused:\n%s", slogged.String())
	}
}

func TestLog_Do_outcomeNotWritable(t *testing.T) {
	var slogged bytes.Buffer
	l := openLog(t, &slogged)
	err := l.Do(context.Background(), "backup", nil, func() (audit.Fields, error) {
		breakFile(t, l.Path())
		return audit.Fields{"path": "b.bundle"}, nil
	})
	if err != nil {
		t.Fatalf("Do = %v: the action ran and succeeded, its result stands", err)
	}
	if !strings.Contains(slogged.String(), "the outcome of an admin action that ran could not be recorded") {
		t.Errorf("server log does not say the outcome was lost:\n%s", slogged.String())
	}
	got := records(t, l.Path()+".moved")
	if len(got) != 1 || got[0].Kind != audit.KindIntent {
		t.Fatalf("records %+v, want the intent only", got)
	}
}

func TestLog_AuthFailure(t *testing.T) {
	var slogged bytes.Buffer
	l := openLog(t, &slogged)
	r := httptest.NewRequest("POST", "/v1/admin/restore?token=s3cret-query", nil)
	r.RemoteAddr = "10.0.0.7:41000"
	r.Header.Set("Authorization", "Bearer s3cret-header")
	r.Header.Set("User-Agent", "curl/8.5")
	l.AuthFailure(r, "unknown token")
	got := records(t, l.Path())
	checkRecords(t, got, []audit.Record{{Seq: 1, Kind: audit.KindAuthFailure, Action: "authenticate", Principal: "anonymous",
		Remote: "10.0.0.7:41000", Route: "POST /v1/admin/restore", Params: audit.Fields{"user_agent": "curl/8.5"},
		Outcome: "refused", Error: "unknown token"}})
	file, err := os.ReadFile(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range []string{string(file), slogged.String()} {
		if strings.Contains(where, "s3cret") {
			t.Errorf("a credential was recorded: %s", where)
		}
	}
	if !strings.Contains(slogged.String(), "level=WARN msg=audit") {
		t.Errorf("server log lacks the failure as a warning:\n%s", slogged.String())
	}
}

func TestOpen_continuesTheChain(t *testing.T) {
	l := openLog(t, nil)
	do := func(l *audit.Log) {
		if err := l.Do(context.Background(), "fsck", nil, func() (audit.Fields, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	do(l)
	l2, err := audit.Open(l.Path(), audit.Options{Now: fixed})
	if err != nil {
		t.Fatal(err)
	}
	do(l2)
	if got := records(t, l.Path()); len(got) != 4 || got[3].Seq != 4 || got[3].Intent != 3 {
		t.Fatalf("records after reopening: %+v", got)
	}
	st, err := os.Stat(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", st.Mode().Perm())
	}
}

func TestOpen_cutsAnUnfinishedRecord(t *testing.T) {
	l := openLog(t, nil)
	if err := l.Do(context.Background(), "recover", nil, func() (audit.Fields, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the third append leaves half a line.
	if err := os.WriteFile(l.Path(), append(bytes.Clone(whole), `{"seq":3,"time":"2026-12-0`...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	head, err := audit.Verify(f, nil)
	f.Close()
	if err != nil || head.Torn != 26 || head.Records != 2 {
		t.Fatalf("Verify of a torn log = %+v, %v; want 2 records and 26 torn bytes", head, err)
	}
	var slogged bytes.Buffer
	l2, err := audit.Open(l.Path(), audit.Options{Now: fixed, Logger: slog.New(slog.NewTextHandler(&slogged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(l.Path()); !bytes.Equal(after, whole) {
		t.Fatalf("after opening:\n%s\nwant the complete records only:\n%s", after, whole)
	}
	if !strings.Contains(slogged.String(), "bytes=26") {
		t.Errorf("server log does not report the cut: %s", slogged.String())
	}
	if err := l2.Do(context.Background(), "fsck", nil, func() (audit.Fields, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got := records(t, l.Path()); len(got) != 4 {
		t.Fatalf("%d records, want 4", len(got))
	}
}

func TestLog_Snapshot(t *testing.T) {
	l := openLog(t, nil)
	if err := l.Do(context.Background(), "fsck", nil, func() (audit.Fields, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	rc, err := l.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Appends after the snapshot are not part of it.
	if err := l.Do(context.Background(), "fsck", nil, func() (audit.Fields, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	head, err := audit.Verify(rc, nil)
	if err != nil || head.Records != 2 || head.Torn != 0 || head.Hash != audit.Hash(lineOf(t, l.Path(), 2)) {
		t.Fatalf("snapshot = %+v, %v; want the 2 records before it", head, err)
	}
}

// Two logs on one file (two processes: the node and a verb) append in
// turn: one chain, no record lost.
func TestLog_Do_twoWriters(t *testing.T) {
	a := openLog(t, nil)
	b, err := audit.Open(a.Path(), audit.Options{Now: fixed})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, l := range []*audit.Log{a, b, a, b} {
		wg.Go(func() {
			for range 10 {
				if err := l.Do(context.Background(), "fsck", nil, func() (audit.Fields, error) { return nil, nil }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := records(t, a.Path()); len(got) != 80 {
		t.Fatalf("%d records, want 80", len(got))
	}
}

// An append after a writer died in the middle of its own cuts the
// unfinished line off first.
func TestLog_Do_afterAnUnfinishedRecord(t *testing.T) {
	l := openLog(t, nil)
	nothing := func() (audit.Fields, error) { return nil, nil }
	if err := l.Do(context.Background(), "fsck", nil, nothing); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(l.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":3,"ti`)
	f.Close()
	if err := l.Do(context.Background(), "restore", nil, nothing); err != nil {
		t.Fatal(err)
	}
	got := records(t, l.Path())
	if len(got) != 4 || got[2].Seq != 3 || got[2].Action != "restore" {
		t.Fatalf("records %+v", got)
	}
}

// An action that panics is recorded as failed before the panic goes on.
func TestLog_Do_panic(t *testing.T) {
	l := openLog(t, nil)
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the action's panic", v)
			}
		}()
		l.Do(context.Background(), "recover", nil, func() (audit.Fields, error) { panic("boom") })
	}()
	got := records(t, l.Path())
	checkRecords(t, got, []audit.Record{
		{Seq: 1, Kind: audit.KindIntent, Action: "recover", Principal: "node"},
		{Seq: 2, Kind: audit.KindOutcome, Action: "recover", Principal: "node", Intent: 1, Outcome: "failed", Error: "internal: the action panicked"},
	})
}
