package embed_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
)

// testKey must never show up in an error or a log line.
const testKey = "sk-test-Zq8kS3cr3tK3y-never-print-me"

// syncBuffer is a log destination shared by goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newOpenAI returns an embedder of f with quick retries, a log that is
// checked for the key when the test ends, and the changes of edit.
func newOpenAI(t *testing.T, f *fakeServer, edit func(*embed.OpenAIConfig)) (*embed.OpenAI, *syncBuffer) {
	t.Helper()
	logs := new(syncBuffer)
	cfg := embed.OpenAIConfig{
		BaseURL:   f.URL,
		Model:     "test-embed",
		APIKey:    testKey,
		Timeout:   5 * time.Second,
		RetryBase: time.Millisecond,
		RetryMax:  20 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	o, err := embed.NewOpenAI(cfg)
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), testKey) {
			t.Errorf("the API key is in the log:\n%s", logs)
		}
	})
	return o, logs
}

// checkErr fails unless err is a *nexus.Error with code, a message that
// contains every part, and no trace of any API key.
func checkErr(t *testing.T, err error, code nexus.Code, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	t.Logf("error: %v", err)
	var e *nexus.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *nexus.Error", err, err)
	}
	if e.Code != code {
		t.Errorf("code %s, want %s: %v", e.Code, code, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
	for _, secret := range []string{testKey, "sk-wrong", "Zq8kS3cr3t"} {
		if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
			t.Errorf("error shows the key: %v", err)
		}
	}
}

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("text number %d about topic %d", i, i%7)
	}
	return out
}

// sameVectors fails unless got holds, for each text, the vector of the
// hashing embedder the fake server uses, or zeros for blank texts.
func sameVectors(t *testing.T, f *fakeServer, in []string, got [][]float32) {
	t.Helper()
	want := mustEmbed(t, f.hashing, in...)
	if len(got) != len(want) {
		t.Fatalf("%d vectors for %d texts", len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("vector %d has %d dimensions, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("vector %d (%q) differs at %d: order not restored?", i, in[i], j)
			}
		}
	}
}

func TestOpenAI_Embed(t *testing.T) {
	f := newFakeServer(t, 16, testKey)
	f.shuffle = true
	o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.BatchSize = 4 })
	in := texts(10)
	in = append(in[:3], append([]string{"", " \t\n"}, in[3:]...)...) // blanks at 3 and 4
	if o.Dimension() != 0 {
		t.Fatalf("Dimension before any request = %d, want 0", o.Dimension())
	}
	got, err := o.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	sameVectors(t, f, in, got)
	batches, _ := f.seen()
	want := [][]string{
		{in[0], in[1], in[2], in[5]},
		{in[6], in[7], in[8], in[9]},
		{in[10], in[11]},
	}
	if fmt.Sprint(batches) != fmt.Sprint(want) {
		t.Errorf("server saw batches\n%q\nwant\n%q", batches, want)
	}
	if o.Dimension() != 16 {
		t.Errorf("Dimension = %d after a response of 16", o.Dimension())
	}
	st := o.Stats()
	if st.Requests != 3 || st.Retries != 0 || st.Failures != 0 || st.Rejected != 0 || st.Tokens == 0 {
		t.Errorf("stats %+v, want 3 requests and tokens counted", st)
	}
	for _, auth := range f.auth {
		if auth != "Bearer "+testKey {
			t.Errorf("Authorization %q", auth)
		}
	}
	t.Run("nothing to send", func(t *testing.T) {
		f.setScript()
		if vs, err := o.Embed(context.Background(), nil); err != nil || len(vs) != 0 {
			t.Fatalf("Embed(nil) = %v, %v", vs, err)
		}
		vs, err := o.Embed(context.Background(), []string{"", "  "})
		if err != nil || len(vs) != 2 || len(vs[0]) != 16 || len(vs[1]) != 16 {
			t.Fatalf("Embed of blanks = %v, %v", vs, err)
		}
		if f.requests() != 0 {
			t.Errorf("%d requests for no texts and blank ones, with the dimension known", f.requests())
		}
	})
}

func TestOpenAI_BaseURL(t *testing.T) {
	f := newFakeServer(t, 8, "")
	for _, base := range []string{f.URL, f.URL + "/", f.URL + "/v1", f.URL + "/v1/", f.URL + "/v1/embeddings"} {
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.BaseURL, c.APIKey = base, "" })
		if o.Endpoint() != f.URL+"/v1/embeddings" {
			t.Errorf("base %q: endpoint %q", base, o.Endpoint())
		}
		if _, err := o.Embed(context.Background(), []string{"hello"}); err != nil {
			t.Errorf("base %q: %v", base, err)
		}
	}
	if f.auth[0] != "" {
		t.Errorf("sent Authorization %q with no key configured", f.auth[0])
	}
}

func TestOpenAI_Probe(t *testing.T) {
	f := newFakeServer(t, 24, testKey)
	o, _ := newOpenAI(t, f, nil)
	dim, err := o.Probe(context.Background())
	if err != nil || dim != 24 || o.Dimension() != 24 {
		t.Fatalf("Probe = %d, %v; Dimension %d", dim, err, o.Dimension())
	}
	t.Run("blank texts probe when the dimension is unknown", func(t *testing.T) {
		o, _ := newOpenAI(t, f, nil)
		vs, err := o.Embed(context.Background(), []string{" "})
		if err != nil || len(vs[0]) != 24 {
			t.Fatalf("Embed = %v, %v", vs, err)
		}
	})
	t.Run("configured dimension is checked", func(t *testing.T) {
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.Dimension = 32 })
		_, err := o.Probe(context.Background())
		checkErr(t, err, nexus.EUnavailable, "24 dimensions, want 32")
	})
	t.Run("dimension changes", func(t *testing.T) {
		o, _ := newOpenAI(t, f, nil)
		if _, err := o.Probe(context.Background()); err != nil {
			t.Fatal(err)
		}
		g := newFakeServer(t, 12, testKey)
		o2, _ := newOpenAI(t, g, nil)
		if _, err := o2.Probe(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.setScript(answer(func(r *wireResponse) { r.Data[0].Embedding = r.Data[0].Embedding[:12] }))
		_, err := o.Embed(context.Background(), []string{"x"})
		checkErr(t, err, nexus.EUnavailable, "12 dimensions, want 24")
	})
}

func TestOpenAI_RetryAfter(t *testing.T) {
	t.Run("seconds", func(t *testing.T) {
		f := newFakeServer(t, 8, testKey)
		f.setScript(status(http.StatusTooManyRequests, "Rate limit reached", "Retry-After", "1"))
		o, logs := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.RetryMax = 5 * time.Second })
		if _, err := o.Embed(context.Background(), []string{"a"}); err != nil {
			t.Fatal(err)
		}
		_, times := f.seen()
		if len(times) != 2 {
			t.Fatalf("%d requests, want 2", len(times))
		}
		if gap := times[1].Sub(times[0]); gap < time.Second {
			t.Errorf("retried after %v, but Retry-After asked for 1s", gap)
		}
		if st := o.Stats(); st.Retries != 1 || st.Failures != 1 || st.Requests != 2 {
			t.Errorf("stats %+v", st)
		}
		if !strings.Contains(logs.String(), "retrying") || !strings.Contains(logs.String(), "waited=1s") {
			t.Errorf("the retry is not logged with its delay:\n%s", logs)
		}
	})
	t.Run("http date", func(t *testing.T) {
		f := newFakeServer(t, 8, testKey)
		when := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
		f.setScript(status(http.StatusServiceUnavailable, "loading model", "Retry-After", when))
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.RetryMax = time.Minute })
		var slept []time.Duration
		embed.SetSleep(o, func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil })
		if _, err := o.Embed(context.Background(), []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if len(slept) != 1 || slept[0] <= time.Second || slept[0] > 3*time.Second {
			t.Errorf("waited %v for Retry-After %q, want 1s to 3s", slept, when)
		}
	})
	t.Run("capped by retry max", func(t *testing.T) {
		f := newFakeServer(t, 8, testKey)
		f.setScript(status(http.StatusTooManyRequests, "slow down", "Retry-After", "3600"))
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.RetryMax = 50 * time.Millisecond })
		start := time.Now()
		if _, err := o.Embed(context.Background(), []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 50*time.Millisecond || el > 3*time.Second {
			t.Errorf("took %v, want the 50ms cap", el)
		}
	})
	t.Run("capped by the deadline", func(t *testing.T) {
		f := newFakeServer(t, 8, testKey)
		f.setScript(status(http.StatusTooManyRequests, "slow down", "Retry-After", "10"))
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.RetryMax = time.Minute })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		_, err := o.Embed(ctx, []string{"a"})
		checkErr(t, err, nexus.EUnavailable, "429 Too Many Requests", "slow down", "not retried", "deadline")
		if el := time.Since(start); el > time.Second {
			t.Errorf("gave up after %v; it should not wait for a retry it cannot make", el)
		}
		if f.requests() != 1 {
			t.Errorf("%d requests, want 1", f.requests())
		}
	})
}

func TestOpenAI_ServerErrorsThenSuccess(t *testing.T) {
	f := newFakeServer(t, 8, testKey)
	f.setScript(
		status(http.StatusInternalServerError, "boom"),
		raw(http.StatusBadGateway, "<html><body>502 Bad Gateway</body></html>"),
		status(http.StatusServiceUnavailable, "overloaded"),
	)
	o, _ := newOpenAI(t, f, nil)
	in := texts(3)
	got, err := o.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	sameVectors(t, f, in, got)
	if st := o.Stats(); st.Requests != 4 || st.Retries != 3 || st.Failures != 3 {
		t.Errorf("stats %+v, want 4 requests, 3 retries, 3 failures", st)
	}
	t.Run("gives up", func(t *testing.T) {
		f.setScript()
		f.setFallback(raw(http.StatusBadGateway, "<html><body>502 Bad Gateway</body></html>"))
		defer f.setFallback(nil)
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.MaxRetries = 2 })
		_, err := o.Embed(context.Background(), in)
		checkErr(t, err, nexus.EUnavailable, "502 Bad Gateway", "<html>", "3 attempts")
		if f.requests() != 3 {
			t.Errorf("%d requests, want 3", f.requests())
		}
	})
	t.Run("no retries", func(t *testing.T) {
		f.setScript(status(http.StatusInternalServerError, "boom"))
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.MaxRetries = -1 })
		_, err := o.Embed(context.Background(), in)
		checkErr(t, err, nexus.EUnavailable, "500 Internal Server Error", "boom")
		if f.requests() != 1 {
			t.Errorf("%d requests, want 1", f.requests())
		}
	})
}

func TestOpenAI_ClientErrors(t *testing.T) {
	long := strings.Repeat("very long message ", 100)
	for _, tc := range []struct {
		name  string
		act   action
		key   string
		code  nexus.Code
		parts []string
	}{
		{"wrong key", nil, "sk-wrong-key-1234567890", nexus.EUnauthorized,
			[]string{"401 Unauthorized", "rejected the API key", "Incorrect API key provided: Bearer [redacted]", "NEXUS_EMBED_API_KEY"}},
		{"forbidden", status(http.StatusForbidden, "no access"), testKey, nexus.EUnauthorized, []string{"403 Forbidden", "no access"}},
		{"bad request", status(http.StatusBadRequest, "input is too long for the context"), testKey, nexus.EInvalid,
			[]string{"400 Bad Request", "rejected the input", "input is too long for the context (type server_error)"}},
		{"unprocessable", raw(http.StatusUnprocessableEntity, `{"error":"Input validation error: inputs cannot be empty","error_type":"Validation"}`),
			testKey, nexus.EInvalid, []string{"422 Unprocessable Entity", "inputs cannot be empty"}},
		{"model not found", raw(http.StatusNotFound, `{"error":"model \"test-embed\" not found, try pulling it first"}`),
			testKey, nexus.EUnavailable, []string{"404 Not Found", `model "test-embed"`, "try pulling it first", "NEXUS_EMBED_MODEL"}},
		{"too large", status(http.StatusRequestEntityTooLarge, "payload too large"), testKey, nexus.ETooLarge, []string{"413"}},
		{"not implemented", status(http.StatusNotImplemented, "no embeddings here"), testKey, nexus.EUnavailable, []string{"501"}},
		{"long message", status(http.StatusBadRequest, long), testKey, nexus.EInvalid, []string{"very long message very long me…"}},
		{"echoed key", status(http.StatusBadRequest, "your key "+testKey+" is fine, your input is not"), testKey, nexus.EInvalid,
			[]string{"your key [redacted] is fine"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, 8, testKey)
			f.setFallback(tc.act)
			o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.APIKey, c.BreakerFailures = tc.key, 1 })
			for range 3 {
				_, err := o.Embed(context.Background(), []string{"a"})
				checkErr(t, err, tc.code, tc.parts...)
				if len(err.Error()) > 1000 {
					t.Errorf("error of %d bytes", len(err.Error()))
				}
			}
			if f.requests() != 3 {
				t.Errorf("%d requests for 3 calls: a client error must not be retried", f.requests())
			}
			if o.BreakerState() != "closed" {
				t.Errorf("breaker %s: client errors must not open it", o.BreakerState())
			}
		})
	}
}

func TestOpenAI_Timeout(t *testing.T) {
	f := newFakeServer(t, 8, testKey)
	f.setFallback(hang)
	t.Run("every attempt times out", func(t *testing.T) {
		f.setScript()
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.Timeout, c.MaxRetries = 100*time.Millisecond, 2 })
		start := time.Now()
		_, err := o.Embed(context.Background(), []string{"a"})
		checkErr(t, err, nexus.EUnavailable, "timed out after 100ms", "3 attempts")
		if el := time.Since(start); el < 300*time.Millisecond || el > 3*time.Second {
			t.Errorf("took %v for 3 attempts of 100ms", el)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a request timeout looks like the caller's deadline: %v", err)
		}
	})
	t.Run("then answers", func(t *testing.T) {
		f.setScript(hang, answer(nil))
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.Timeout = 100 * time.Millisecond })
		if _, err := o.Embed(context.Background(), []string{"a"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("caller's deadline", func(t *testing.T) {
		f.setScript()
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.Timeout, c.MaxRetries = 150*time.Millisecond, 100 })
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := o.Embed(ctx, []string{"a"})
		checkErr(t, err, nexus.EUnavailable, "embedding stopped by the caller's deadline", "the last failure", "timed out after 150ms")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap the caller's context.DeadlineExceeded", err)
		}
		if el := time.Since(start); el > 1500*time.Millisecond {
			t.Errorf("returned %v after a deadline of 500ms", el)
		}
		// Every attempt but the last timed out on its own and counts as a
		// failure; the last, cut by the caller's deadline, counts as
		// neither (how many attempts fit in 500 ms depends on the load).
		if st := o.Stats(); o.BreakerState() != "closed" || st.Failures < 1 || st.Failures != st.Requests-1 {
			t.Errorf("breaker %s, stats %+v", o.BreakerState(), st)
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		f.setScript()
		o, _ := newOpenAI(t, f, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := o.Embed(ctx, []string{"a"})
		checkErr(t, err, nexus.EUnavailable, "embedding canceled")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v does not wrap context.Canceled", err)
		}
	})
}

func TestOpenAI_ConnectionReset(t *testing.T) {
	f := newFakeServer(t, 8, testKey)
	f.setScript(reset, reset)
	o, _ := newOpenAI(t, f, nil)
	in := texts(2)
	got, err := o.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	sameVectors(t, f, in, got)
	if f.requests() != 3 {
		t.Errorf("%d requests, want 3", f.requests())
	}
	t.Run("always", func(t *testing.T) {
		f.setScript()
		f.setFallback(reset)
		defer f.setFallback(nil)
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.MaxRetries = 1 })
		_, err := o.Embed(context.Background(), in)
		checkErr(t, err, nexus.EUnavailable, "while reading the response", "2 attempts")
	})
	t.Run("refused", func(t *testing.T) {
		g := newFakeServer(t, 8, "")
		g.Close()
		o, _ := newOpenAI(t, g, func(c *embed.OpenAIConfig) { c.MaxRetries = 2 })
		_, err := o.Embed(context.Background(), in)
		checkErr(t, err, nexus.EUnavailable, "connection refused", "3 attempts")
	})
}

func TestOpenAI_BadResponses(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name      string
		act       action
		retried   bool
		parts     []string
		dimension int
	}{
		{"truncated JSON", raw(200, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,`), true,
			[]string{"not JSON"}, 0},
		{"HTML", raw(200, `<html>oops</html>`), true, []string{"not JSON", "<html>oops</html>"}, 0},
		{"empty body", raw(200, ``), true, []string{"not JSON"}, 0},
		{"wrong shape", raw(200, `{"data":{"index":0}}`), false, []string{"does not follow the OpenAI format"}, 0},
		{"number too big", raw(200, `{"data":[{"index":0,"embedding":[1e39]},{"index":1,"embedding":[1]}]}`), false,
			[]string{"does not follow the OpenAI format"}, 0},
		{"wrong dimension", nil, false, []string{"8 dimensions, want 16"}, 16},
		{"ragged", answer(func(r *wireResponse) { r.Data[1].Embedding = r.Data[1].Embedding[:7] }), false,
			[]string{"7 dimensions, want 8"}, 0},
		{"too few", answer(func(r *wireResponse) { r.Data = r.Data[:1] }), false, []string{"1 embeddings for 2 inputs"}, 0},
		{"too many", answer(func(r *wireResponse) { r.Data = append(r.Data, r.Data[0]) }), false,
			[]string{"3 embeddings for 2 inputs"}, 0},
		{"duplicate index", answer(func(r *wireResponse) { r.Data[1].Index = r.Data[0].Index }), false,
			[]string{"index 0 twice"}, 0},
		{"missing index", answer(func(r *wireResponse) { r.Data[1].Index = nil }), false, []string{"has no index"}, 0},
		{"index out of range", answer(func(r *wireResponse) { i := 2; r.Data[1].Index = &i }), false,
			[]string{"index 2, want 0 to 1"}, 0},
		{"NaN", raw(200, `{"data":[{"index":0,"embedding":[0.5,NaN]},{"index":1,"embedding":[1,2]}]}`), false,
			[]string{"non-finite"}, 0}, // as Python's json module writes it
		{"Infinity", raw(200, `{"data":[{"index":0,"embedding":[-Infinity,1]},{"index":1,"embedding":[1,2]}]}`), false,
			[]string{"non-finite"}, 0},
		{"unencodable NaN", answer(func(r *wireResponse) { r.Data[0].Embedding = []float32{nan} }), true,
			[]string{"not JSON", "(empty body)"}, 0}, // encoding/json refuses NaN, so the body is empty
		{"null embeddings", raw(200, `{"data":[{"index":0,"embedding":null},{"index":1,"embedding":null}]}`), false,
			[]string{"embedding 0 of the response is empty"}, 0},
		{"error in a 200", raw(200, `{"error":{"message":"backend crashed"}}`), false,
			[]string{"answered with an error", "backend crashed"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t, 8, testKey)
			f.setFallback(tc.act)
			o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.MaxRetries, c.Dimension = 2, tc.dimension })
			_, err := o.Embed(context.Background(), []string{"first", "second"})
			checkErr(t, err, nexus.EUnavailable, tc.parts...)
			want := 1
			if tc.retried {
				want = 3
			}
			if f.requests() != want {
				t.Errorf("%d requests, want %d", f.requests(), want)
			}
		})
	}
}

func TestOpenAI_Breaker(t *testing.T) {
	const cooldown = 400 * time.Millisecond
	f := newFakeServer(t, 8, testKey)
	f.setFallback(status(http.StatusInternalServerError, "database on fire"))
	o, logs := newOpenAI(t, f, func(c *embed.OpenAIConfig) {
		c.MaxRetries, c.BreakerFailures, c.BreakerCooldown = -1, 3, cooldown
	})
	ctx := context.Background()
	trip := func(t *testing.T) {
		t.Helper()
		for range 3 {
			_, err := o.Embed(ctx, []string{"a"})
			checkErr(t, err, nexus.EUnavailable, "database on fire")
		}
		if o.BreakerState() != "open" {
			t.Fatalf("breaker %s after 3 failures, want open", o.BreakerState())
		}
	}
	trip(t)
	sent := f.requests()
	_, err := o.Embed(ctx, []string{"a"})
	checkErr(t, err, nexus.EUnavailable, "embedding provider unavailable (circuit open", "next probe in", "database on fire")
	if f.requests() != sent {
		t.Errorf("a request went out while the circuit was open")
	}
	if st := o.Stats(); st.Rejected != 1 || st.Failures != 3 {
		t.Errorf("stats %+v, want 1 rejected and 3 failures", st)
	}

	t.Run("half-open probe fails", func(t *testing.T) {
		time.Sleep(cooldown + 50*time.Millisecond)
		if o.BreakerState() != "half-open" {
			t.Fatalf("breaker %s after the cooldown, want half-open", o.BreakerState())
		}
		_, err := o.Embed(ctx, []string{"a"})
		checkErr(t, err, nexus.EUnavailable, "database on fire")
		if o.BreakerState() != "open" {
			t.Fatalf("breaker %s after a failed probe, want open", o.BreakerState())
		}
	})
	t.Run("half-open probe succeeds", func(t *testing.T) {
		f.setFallback(nil)
		time.Sleep(cooldown + 50*time.Millisecond)
		if _, err := o.Embed(ctx, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if o.BreakerState() != "closed" {
			t.Fatalf("breaker %s after a good probe, want closed", o.BreakerState())
		}
		if _, err := o.Embed(ctx, texts(5)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("one probe at a time", func(t *testing.T) {
		f.setFallback(status(http.StatusInternalServerError, "database on fire"))
		trip(t)
		time.Sleep(cooldown + 50*time.Millisecond)
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		f.setFallback(func(f *fakeServer, w http.ResponseWriter, r *http.Request, in []string) {
			once.Do(func() { close(entered) })
			<-release
			answer(nil)(f, w, r, in)
		})
		probe := make(chan error, 1)
		go func() {
			_, err := o.Embed(ctx, []string{"probe"})
			probe <- err
		}()
		<-entered
		rejected := o.Stats().Rejected
		_, err := o.Embed(ctx, []string{"b"})
		checkErr(t, err, nexus.EUnavailable, "circuit half-open: a probe request is in flight", "database on fire")
		if o.Stats().Rejected != rejected+1 {
			t.Errorf("rejected %d, want %d", o.Stats().Rejected, rejected+1)
		}
		close(release)
		if err := <-probe; err != nil {
			t.Fatalf("probe: %v", err)
		}
		if o.BreakerState() != "closed" {
			t.Errorf("breaker %s after a good probe", o.BreakerState())
		}
		f.setFallback(nil)
	})
	t.Run("retries count", func(t *testing.T) {
		f.setFallback(status(http.StatusServiceUnavailable, "down"))
		defer f.setFallback(nil)
		o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.MaxRetries, c.BreakerFailures = 10, 4 })
		f.setScript()
		_, err := o.Embed(ctx, []string{"a"})
		checkErr(t, err, nexus.EUnavailable, "circuit open after 4 failed requests", "down")
		if f.requests() != 4 {
			t.Errorf("%d requests, want the retries to stop when the circuit opened after 4", f.requests())
		}
	})
	if !strings.Contains(logs.String(), "to=open") || !strings.Contains(logs.String(), "to=half-open") || !strings.Contains(logs.String(), "to=closed") {
		t.Errorf("breaker changes not logged:\n%s", logs)
	}
}

func TestOpenAI_Concurrent(t *testing.T) {
	f := newFakeServer(t, 16, testKey)
	f.shuffle = true
	f.setFallback(nil)
	f.setScript(status(503, "warming up"), status(503, "warming up"))
	o, _ := newOpenAI(t, f, func(c *embed.OpenAIConfig) { c.BatchSize, c.BreakerFailures = 3, 100 })
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			in := make([]string, 7)
			for i := range in {
				in[i] = fmt.Sprintf("goroutine %d text %d", g, i)
			}
			got, err := o.Embed(context.Background(), in)
			if err != nil {
				errs <- err
				return
			}
			want, _ := f.hashing.Embed(context.Background(), in)
			for i := range want {
				for j := range want[i] {
					if got[i][j] != want[i][j] {
						errs <- fmt.Errorf("goroutine %d: vector %d differs", g, i)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := o.Stats(); st.Requests != 8*3+2 {
		t.Errorf("stats %+v, want 26 requests", st)
	}
}

func TestNewOpenAI_Invalid(t *testing.T) {
	good := embed.OpenAIConfig{BaseURL: "http://localhost:11434", Model: "nomic-embed-text"}
	if _, err := embed.NewOpenAI(good); err != nil {
		t.Fatalf("NewOpenAI(%v) = %v", good, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*embed.OpenAIConfig)
		want string
	}{
		{"no URL", func(c *embed.OpenAIConfig) { c.BaseURL = " " }, "base URL is empty (set NEXUS_EMBED_URL)"},
		{"bad URL", func(c *embed.OpenAIConfig) { c.BaseURL = "http://[::1" }, "does not parse"},
		{"scheme", func(c *embed.OpenAIConfig) { c.BaseURL = "ftp://host/v1" }, "not http or https"},
		{"relative", func(c *embed.OpenAIConfig) { c.BaseURL = "localhost:11434" }, "not http or https"},
		{"no host", func(c *embed.OpenAIConfig) { c.BaseURL = "http:///v1" }, "has no host"},
		{"query", func(c *embed.OpenAIConfig) { c.BaseURL = "http://h/v1?key=" + testKey }, `"http://h/v1?…" has a query or fragment`},
		{"fragment", func(c *embed.OpenAIConfig) { c.BaseURL = "http://h/v1#" + testKey }, "query or fragment"},
		{"no model", func(c *embed.OpenAIConfig) { c.Model = "" }, "model is empty (set NEXUS_EMBED_MODEL)"},
		{"dimension", func(c *embed.OpenAIConfig) { c.Dimension = -1 }, "dimension is negative"},
		{"batch", func(c *embed.OpenAIConfig) { c.BatchSize = -1 }, "batch size is negative"},
		{"timeout", func(c *embed.OpenAIConfig) { c.Timeout = -time.Second }, "timeout is negative"},
		{"backoff", func(c *embed.OpenAIConfig) { c.RetryBase, c.RetryMax = time.Second, time.Millisecond }, "exceeds retry max"},
		{"cooldown", func(c *embed.OpenAIConfig) { c.BreakerCooldown = -1 }, "breaker cooldown is negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			cfg.APIKey = testKey
			tc.edit(&cfg)
			_, err := embed.NewOpenAI(cfg)
			checkErr(t, err, nexus.EInvalid, tc.want)
		})
	}
}

func TestOpenAIConfig_String(t *testing.T) {
	cfg := embed.OpenAIConfig{BaseURL: "https://user:pa55word@api.example.com/v1", Model: "m", APIKey: testKey}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), logged.String()} {
		if strings.Contains(s, testKey) || strings.Contains(s, "pa55word") {
			t.Errorf("the key or password is printed: %s", s)
		}
		if !strings.Contains(s, "APIKey:set") || !strings.Contains(s, "api.example.com") {
			t.Errorf("the description is missing: %s", s)
		}
	}
}

func TestOpenAIConfigFromEnv(t *testing.T) {
	for _, name := range []string{embed.EnvURL, embed.EnvModel, embed.EnvAPIKey, embed.EnvOpenAIKey, embed.EnvDimension} {
		t.Setenv(name, "")
	}
	t.Setenv(embed.EnvURL, " http://localhost:11434 ")
	t.Setenv(embed.EnvModel, "nomic-embed-text")
	t.Setenv(embed.EnvOpenAIKey, "sk-openai")
	t.Setenv(embed.EnvDimension, "768")
	cfg, err := embed.OpenAIConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BaseURL != "http://localhost:11434" || cfg.Model != "nomic-embed-text" || cfg.APIKey != "sk-openai" || cfg.Dimension != 768 {
		t.Errorf("config %#v", cfg)
	}
	t.Setenv(embed.EnvAPIKey, "sk-nexus")
	if cfg, _ := embed.OpenAIConfigFromEnv(); cfg.APIKey != "sk-nexus" {
		t.Errorf("NEXUS_EMBED_API_KEY does not take precedence")
	}
	for _, bad := range []string{"x", "-1", "1.5"} {
		t.Setenv(embed.EnvDimension, bad)
		_, err := embed.OpenAIConfigFromEnv()
		checkErr(t, err, nexus.EInvalid, "NEXUS_EMBED_DIM")
	}
}
