package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/events"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// eventNode is a store on disk, its event bus and a server for both.
type eventNode struct {
	store *gitstore.Store
	bus   *events.Bus
	srv   *httptest.Server
	h     http.Handler
}

// newEventNode opens a store whose hooks feed a running bus, served with
// opts (Events and Admin are filled in) until the test ends.
func newEventNode(t *testing.T, opts httpapi.Options, bopts events.Options) *eventNode {
	t.Helper()
	var bus atomic.Pointer[events.Bus]
	st, err := gitstore.Open(t.TempDir(), gitstore.Options{
		OnCommit: func() {
			if b := bus.Load(); b != nil {
				b.Notify()
			}
		},
		OnRestore: func(p gitstore.RestorePlan) {
			plan, _ := json.Marshal(p)
			if b := bus.Load(); b != nil {
				b.Restored(events.Restore{LastKept: p.LastKept, FirstGone: p.FirstGone, LastGone: p.LastGone, Plan: plan})
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.NewBus(t.Context(), st, bopts)
	if err != nil {
		t.Fatal(err)
	}
	bus.Store(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	opts.Events = b
	opts.Admin = newNodeAdmin(st)
	n := &eventNode{store: st, bus: b, h: httpapi.NewServer(st, opts)}
	n.srv = httptest.NewServer(n.h)
	t.Cleanup(func() {
		cancel() // ends every stream, so that the server can close
		<-done
		n.srv.Close()
		st.Close()
	})
	return n
}

// client returns a client of srv.
func clientOf(srv *httptest.Server, opts ...httpapi.ClientOption) *httpapi.Client {
	return httpapi.NewClient(srv.URL, append([]httpapi.ClientOption{httpapi.WithHTTPClient(srv.Client())}, opts...)...)
}

func subscribeTo(t *testing.T, c nexus.EventSource, f nexus.EventFilter, last string) nexus.Subscription {
	t.Helper()
	sub, err := c.Subscribe(t.Context(), f, last)
	if err != nil {
		t.Fatalf("Subscribe(%+v, %q): %v", f, last, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

func nextEvent(t *testing.T, sub nexus.Subscription) nexus.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ev, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

// A subscriber gets every new context exactly once and in order while
// four writers write and its connection is cut again and again, from the
// server's side and from its own; each time it resumes by itself.
func TestEvents_exactlyOnceAcrossDisconnects(t *testing.T) {
	n := newEventNode(t, httpapi.Options{}, events.Options{Ring: 32, Page: 16})
	// Writers use their own listener, so that cutting the subscribers'
	// connections does not cut theirs.
	writers := httptest.NewServer(n.h)
	defer writers.Close()
	w := clientOf(writers)

	// The second subscriber's transport remembers its connections, so the
	// test can cut them from the client's side.
	var mu sync.Mutex
	var conns []net.Conn
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		return c, err
	}}
	defer tr.CloseIdleConnections()
	subs := []nexus.Subscription{
		subscribeTo(t, clientOf(n.srv), nexus.EventFilter{}, ""),
		subscribeTo(t, httpapi.NewClient(n.srv.URL, httpapi.WithHTTPClient(&http.Client{Transport: tr})), nexus.EventFilter{}, ""),
		subscribeTo(t, clientOf(n.srv), nexus.EventFilter{Namespace: "odd"}, ""),
	}
	const writersN, each = 4, 100
	var written sync.Map
	var wg sync.WaitGroup
	for i := range writersN {
		wg.Go(func() {
			for k := range each {
				ns := []string{"even", "odd"}[k%2]
				c, err := w.Put(t.Context(), nexus.Draft{Namespace: ns, Type: nexus.TypeObservation, Content: fmt.Sprint("writer ", i, " item ", k)})
				if err != nil {
					t.Error(err)
					return
				}
				written.Store(c.ID.String(), ns)
				if k%10 == 0 {
					time.Sleep(2 * time.Millisecond)
				}
			}
		})
	}
	stop := make(chan struct{})
	var cuts atomic.Int64
	var cutter sync.WaitGroup
	cutter.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			if i%2 == 0 {
				n.srv.CloseClientConnections()
			} else {
				mu.Lock()
				for _, c := range conns {
					c.Close()
				}
				conns = nil
				mu.Unlock()
			}
			cuts.Add(1)
		}
	})
	got := make([][]string, len(subs))
	var readers sync.WaitGroup
	for i, sub := range subs {
		want := writersN * each
		if i == 2 {
			want /= 2
		}
		readers.Go(func() {
			for len(got[i]) < want {
				ev := nextEvent(t, sub)
				if ev.Type != nexus.EventContext {
					t.Errorf("subscriber %d: event %s %s", i, ev.Type, ev.ID)
					return
				}
				got[i] = append(got[i], ev.ID)
			}
		})
	}
	wg.Wait()
	close(stop) // the readers catch up without cuts
	cutter.Wait()
	readers.Wait()
	for i, ids := range got {
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Errorf("subscriber %d: events out of order or repeated", i)
		}
		for _, id := range ids {
			ns, ok := written.Load(id)
			if !ok || (i == 2 && ns != "odd") {
				t.Errorf("subscriber %d: event %s was not written (or not in its namespace)", i, id)
			}
		}
	}
	// Nothing more comes: no duplicate was waiting.
	for i, sub := range subs {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		if ev, err := sub.Next(ctx); err == nil {
			t.Errorf("subscriber %d: extra event %s %s", i, ev.Type, ev.ID)
		}
		cancel()
	}
	t.Logf("%d contexts, %d connection cuts", writersN*each, cuts.Load())
	if cuts.Load() < 3 {
		t.Errorf("only %d cuts happened while writing: the test did not test resumption", cuts.Load())
	}
}

// rawStream opens GET /v1/events with the header and returns the response.
func rawStream(t *testing.T, srv *httptest.Server, query, lastID string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// frame is one block of an event stream, its fields in order.
type frame []string

// readFrames reads blocks (ended by an empty line) from r until stop says
// enough, or the stream ends.
func readFrames(r *bufio.Reader, stop func(frame) bool) ([]frame, error) {
	var out []frame
	var cur frame
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return out, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line != "" {
			cur = append(cur, line)
			continue
		}
		out = append(out, cur)
		if stop(cur) {
			return out, nil
		}
		cur = nil
	}
}

func (f frame) field(name string) string {
	for _, l := range f {
		if v, ok := strings.CutPrefix(l, name+": "); ok {
			return v
		}
	}
	return ""
}

func TestEvents_badRequests(t *testing.T) {
	n := newEventNode(t, httpapi.Options{}, events.Options{})
	for _, tc := range []struct{ target, lastID, want string }{
		{"/v1/events?type=bogus", "", "bogus"},
		{"/v1/events?namespace=No%20Way", "", "namespace"},
		{"/v1/events?agent=a%20b", "", "agent_id"},
		{"/v1/events?since=2026-01-01T00:00:00Z", "", "since"},
		{"/v1/events?type=code&type=memory", "", "2 times"},
		{"/v1/events", "01KB2W3G6T0Q5A9QYQ7M3N8C2", "last event id"},
		{"/v1/events?last_event_id=x.1", "", "last event id"},
	} {
		req, _ := http.NewRequest(http.MethodGet, n.srv.URL+tc.target, nil)
		if tc.lastID != "" {
			req.Header.Set("Last-Event-ID", tc.lastID)
		}
		resp, err := n.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body apiError
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body.Error.Code != nexus.EInvalid || !strings.Contains(body.Error.Message, tc.want) {
			t.Errorf("%s (Last-Event-ID %q): %d %+v, want 400 invalid naming %q", tc.target, tc.lastID, resp.StatusCode, body, tc.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, n.srv.URL+"/v1/events", nil)
	req.Header.Add("Last-Event-ID", "01KB2W3G6T0Q5A9QYQ7M3N8C2D")
	req.Header.Add("Last-Event-ID", "01KB2W3G6T0Q5A9QYQ7M3N8C2E")
	resp, err := n.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("two Last-Event-ID headers: %d, want 400", resp.StatusCode)
	}
	if _, err := clientOf(n.srv).Subscribe(t.Context(), nexus.EventFilter{}, "garbage"); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Errorf("client with a bad id: %v, want invalid", err)
	}
	// Without a bus there are no events.
	plain := newServer(t, storetest.NewMemStore(), httpapi.Options{})
	wantError(t, send(t, plain, request{method: "GET", target: "/v1/events"}), 404, nexus.ENotFound)
	if _, err := httpapi.NewClient(plain.URL, httpapi.WithToken(token)).Subscribe(t.Context(), nexus.EventFilter{}, ""); nexus.ErrorCode(err) != nexus.ENotFound {
		t.Errorf("client of a server without events: %v, want not_found", err)
	}
	// HEAD answers the headers and ends.
	resp, err = n.srv.Client().Head(n.srv.URL + "/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// The stream's format: an id at once, context events whose data is the
// context as GET returns it, filters, and keep-alives whose id record
// moves a filtered subscriber past what it skipped.
func TestEvents_wireFormat(t *testing.T) {
	n := newEventNode(t, httpapi.Options{KeepAlive: 100 * time.Millisecond}, events.Options{})
	c := clientOf(n.srv)
	resp := rawStream(t, n.srv, "?namespace=team-a&type=decision", "")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("%d %q", resp.StatusCode, ct)
	}
	r := bufio.NewReader(resp.Body)
	first, err := readFrames(r, func(frame) bool { return true })
	if err != nil || first[0].field("retry") == "" || first[0].field("id") == "" {
		t.Fatalf("first block %q, %v: want a retry and an id", first, err)
	}
	other := mustPut(t, c, nexus.Draft{Namespace: "team-b", Type: nexus.TypeDecision, Content: "elsewhere"})
	want := mustPut(t, c, nexus.Draft{Namespace: "team-a", Type: nexus.TypeDecision, Content: "use <b> & \"quotes\"\nline two", Metadata: json.RawMessage(`{"k":[1,2]}`)})
	mustPut(t, c, nexus.Draft{Namespace: "team-a", Type: nexus.TypeMemory, Content: "not a decision"})
	last := mustPut(t, c, nexus.Draft{Namespace: "team-b", Type: nexus.TypeMemory, Content: "last"})
	frames, err := readFrames(r, func(f frame) bool { return f.field("event") == "context" })
	if err != nil {
		t.Fatal(err)
	}
	ev := frames[len(frames)-1]
	got := send(t, n.srv, request{method: "GET", target: "/v1/contexts/" + want.ID.String(), auth: "-"})
	if ev.field("id") != want.ID.String() || ev.field("data") != strings.TrimSuffix(string(got.body), "\n") || len(ev) != 3 {
		t.Fatalf("event %q, want id %s and data %s", ev, want.ID, got.body)
	}
	// A keep-alive may name other as the stream's position; no event may.
	for _, f := range frames {
		if f.field("event") != "" && strings.Contains(strings.Join(f, "\n"), other.ID.String()) {
			t.Fatalf("the filter let %s through: %q", other.ID, f)
		}
	}
	// Within a keep-alive or two, an id record names the last context.
	frames, err = readFrames(r, func(f frame) bool { return f.field("id") == last.ID.String() })
	if err != nil {
		t.Fatalf("no id record for %s after %q: %v", last.ID, frames, err)
	}
	if f := frames[len(frames)-1]; f[0] != ": keep-alive" || f.field("data") != "" {
		t.Errorf("id record %q: want a keep-alive comment and no data", f)
	}
}

// An http.Server whose read and write timeouts are shorter than the life
// of a stream does not cut it.
func TestEvents_outlivesServerTimeouts(t *testing.T) {
	n := newEventNode(t, httpapi.Options{KeepAlive: 100 * time.Millisecond}, events.Options{})
	srv := httptest.NewUnstartedServer(n.h)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close) // after the stream's body is closed
	resp := rawStream(t, srv, "", "")
	r := bufio.NewReader(resp.Body)
	if _, err := readFrames(r, func(frame) bool { return true }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	c := mustPut(t, clientOf(n.srv), nexus.Draft{Type: nexus.TypeMemory, Content: "late"})
	if _, err := readFrames(r, func(f frame) bool { return f.field("id") == c.ID.String() && f.field("event") == "context" }); err != nil {
		t.Fatalf("the stream ended after the server's timeouts: %v", err)
	}
}

// A restore through the admin endpoint reaches subscribers as a restore
// event; a subscriber resuming from a rolled-back context gets it first.
func TestEvents_restore(t *testing.T) {
	n := newEventNode(t, httpapi.Options{}, events.Options{})
	c := clientOf(n.srv)
	sub := subscribeTo(t, c, nexus.EventFilter{}, "")
	var cs []*nexus.Context
	for i := range 4 {
		cs = append(cs, mustPut(t, c, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("c", i)}))
	}
	for _, want := range cs {
		if ev := nextEvent(t, sub); ev.ID != want.ID.String() {
			t.Fatalf("event %s %s, want %s", ev.Type, ev.ID, want.ID)
		}
	}
	resp := send(t, n.srv, request{method: "POST", target: "/v1/admin/restore", ctype: "application/json",
		body: strings.NewReader(fmt.Sprintf(`{"at":%q}`, cs[1].Timestamp.Format(time.RFC3339Nano)))})
	if resp.status != 200 {
		t.Fatalf("restore: %d %s", resp.status, resp.body)
	}
	ev := nextEvent(t, sub)
	var plan gitstore.RestorePlan
	json.Unmarshal(ev.Data, &plan)
	var answered gitstore.RestorePlan
	json.Unmarshal(resp.body, &answered)
	if ev.Type != nexus.EventRestore || plan != answered || plan.LastKept != cs[1].ID || plan.FirstGone != cs[2].ID {
		t.Fatalf("event %s %s %s, want the restore plan %s", ev.Type, ev.ID, ev.Data, resp.body)
	}
	after := mustPut(t, c, nexus.Draft{Type: nexus.TypeMemory, Content: "after"})
	if got := nextEvent(t, sub); got.ID != after.ID.String() {
		t.Fatalf("after the restore: %s %s", got.Type, got.ID)
	}
	again := subscribeTo(t, c, nexus.EventFilter{}, cs[3].ID.String())
	for _, want := range []string{ev.ID, after.ID.String()} {
		if got := nextEvent(t, again); got.ID != want {
			t.Fatalf("resumed from a rolled-back context: %s %s, want %s", got.Type, got.ID, want)
		}
	}
}

// A subscriber that stops reading holds up neither the writers nor the
// other subscribers; when it reads again it gets every event once, in
// order (the server dropped its stalled connection, and it resumed).
func TestEvents_slowSubscriber(t *testing.T) {
	n := newEventNode(t, httpapi.Options{KeepAlive: 200 * time.Millisecond}, events.Options{Ring: 64})
	c := clientOf(n.srv)
	// The slow subscriber has its own listener, whose small send buffers
	// make its stream stall sooner.
	slowSrv := httptest.NewUnstartedServer(n.h)
	slowSrv.Listener = smallBuffers{slowSrv.Listener}
	dropped := make(chan struct{}) // closed when the server closes the first connection
	var once sync.Once
	slowSrv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			once.Do(func() { close(dropped) })
		}
	}
	slowSrv.Start()
	t.Cleanup(slowSrv.Close)
	var dials atomic.Int64
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	slow := subscribeTo(t, httpapi.NewClient(slowSrv.URL, httpapi.WithHTTPClient(&http.Client{Transport: tr})), nexus.EventFilter{}, "")
	fast := subscribeTo(t, c, nexus.EventFilter{}, "")
	content := strings.Repeat("payload ", 256) // 2 KiB
	const total = 400
	start := time.Now()
	var ids []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for range total {
			ev := nextEvent(t, fast)
			ids = append(ids, ev.ID)
		}
	})
	var mu sync.Mutex
	var ws sync.WaitGroup
	var written []string
	for w := range 4 {
		ws.Go(func() {
			for i := range total / 4 {
				x, err := c.Put(t.Context(), nexus.Draft{Type: nexus.TypeDocument, Content: fmt.Sprint(w, i, content)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				written = append(written, x.ID.String())
				mu.Unlock()
			}
		})
	}
	ws.Wait()
	wrote := time.Since(start)
	wg.Wait()
	slices.Sort(written)
	if !slices.Equal(ids, written) {
		t.Fatalf("the fast subscriber got %d events, want the %d written in order", len(ids), len(written))
	}
	// The server gives up on the stalled connection (its write deadline
	// passes) before the subscriber reads again.
	select {
	case <-dropped:
	case <-time.After(time.Minute):
		t.Fatal("the server did not drop the stalled stream within a minute: the test did not stall it")
	}
	for i, want := range written {
		if ev := nextEvent(t, slow); ev.ID != want {
			t.Fatalf("slow subscriber's event %d is %s %s, want %s", i, ev.Type, ev.ID, want)
		}
	}
	t.Logf("%d writes of 2 KiB in %s with a stalled subscriber, which connected %d times", total, wrote.Round(time.Millisecond), dials.Load())
	if dials.Load() < 2 {
		t.Errorf("the stalled subscriber connected once: the server never gave up on it, the test did not stall it")
	}
}

// smallBuffers gives the connections it accepts a small send buffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// The iterator form ends with the first error, and when the loop breaks.
func TestClient_Events(t *testing.T) {
	n := newEventNode(t, httpapi.Options{}, events.Options{})
	c := clientOf(n.srv)
	first := mustPut(t, c, nexus.Draft{Type: nexus.TypeMemory, Content: "one"})
	var want []string
	for i := range 3 {
		want = append(want, mustPut(t, c, nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("more ", i)}).ID.String())
	}
	var got []string
	for ev, err := range c.Events(t.Context(), nexus.EventFilter{}, first.ID.String()) {
		if err != nil {
			t.Fatal(err)
		}
		if got = append(got, ev.ID); len(got) == len(want) {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, err := range c.Events(t.Context(), nexus.EventFilter{}, "bad") {
		if nexus.ErrorCode(err) != nexus.EInvalid {
			t.Fatalf("bad id: %v", err)
		}
	}
}
