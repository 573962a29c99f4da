package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// The tests below inject the faults of agent providers. They run in synctest
// bubbles against the fake provider on an in-memory network, so every
// wait is measured exactly on the bubble's clock and none is slept out.

func TestRunner_Hang(t *testing.T) {
	eachKind(t, func(t *testing.T, kind agent.Kind) {
		ctx := context.Background()
		f := newFake(t, kind, testKey)
		f.setAlways(hang)
		r, _ := newRunner(t, f, func(c *agent.Config) { c.Timeout, c.MaxRetries = 2*time.Second, 2 })
		start := time.Now()
		_, err := r.Generate(ctx, "hi")
		el := time.Since(start)
		e := wantErr(t, err, agent.ClassTimeout, "did not answer in time (attempt timeout 2s)", "3 attempts")
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("an attempt's timeout looks like the caller's deadline: %v", err)
		}
		// Three attempts of 2s and two backoffs, of at most 100ms and 200ms.
		if el < 6*time.Second || el > 6300*time.Millisecond || e.Attempts != 3 || f.count() != 3 {
			t.Errorf("took %v and %d requests (%d attempts); want 6s to 6.3s and 3", el, f.count(), e.Attempts)
		}

		// The caller's deadline ends the retries, whatever MaxRetries says.
		f.script()
		r, _ = newRunner(t, f, func(c *agent.Config) { c.Timeout, c.MaxRetries = 2*time.Second, 100 })
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start = time.Now()
		_, err = r.Generate(dctx, "hi")
		wantErr(t, err, agent.ClassCanceled, "stopped by the caller's deadline", "the last failure", "did not answer in time")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap the caller's context.DeadlineExceeded", err)
		}
		if el := time.Since(start); el != 5*time.Second {
			t.Errorf("returned after %v, want the caller's 5s", el)
		}

		// A hang, then an answer.
		f.script(hang)
		f.setAlways(nil)
		r, _ = newRunner(t, f, func(c *agent.Config) { c.Timeout = 2 * time.Second })
		resp, err := r.Generate(ctx, "hi")
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.Provenance; resp.Content != "reply 2" || p.Attempts != 2 || p.Latency < 2*time.Second || p.Latency > 2100*time.Millisecond {
			t.Errorf("answer %q after %d attempts in %v", resp.Content, p.Attempts, p.Latency)
		}
	})
}

func TestRunner_RetryAfter(t *testing.T) {
	eachKind(t, func(t *testing.T, kind agent.Kind) {
		ctx := context.Background()
		f := newFake(t, kind, testKey)
		check := func(name string, first action, want func(sent time.Time) time.Duration) {
			t.Helper()
			f.script(first)
			r, logs := newRunner(t, f, func(c *agent.Config) { c.RetryMax = 30 * time.Second })
			resp, err := r.Generate(ctx, "hi")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			reqs := f.requests()
			if len(reqs) != 2 || resp.Content != "reply 2" {
				t.Fatalf("%s: %d requests, answer %q", name, len(reqs), resp.Content)
			}
			if gap, w := reqs[1].at.Sub(reqs[0].at), want(reqs[0].at); gap != w {
				t.Errorf("%s: retried after %v, want exactly %v", name, gap, w)
			}
			if !strings.Contains(logs(), "retrying a failed call") {
				t.Errorf("%s: the retry is not logged:\n%s", name, logs())
			}
		}
		check("429 seconds", status(429, "Rate limit reached", "Retry-After", "7"),
			func(time.Time) time.Duration { return 7 * time.Second })
		when := time.Now().Add(12 * time.Second).UTC().Format(http.TimeFormat)
		check("429 HTTP date", status(429, "Rate limit reached", "Retry-After", when), func(sent time.Time) time.Duration {
			at, _ := http.ParseTime(when)
			return at.Sub(sent)
		})
		check("503 seconds", status(503, "loading the model", "Retry-After", "2"),
			func(time.Time) time.Duration { return 2 * time.Second })

		// Longer than the cap: not waited for, not retried.
		f.script(status(429, "slow down", "Retry-After", "3600"))
		r, _ := newRunner(t, f, func(c *agent.Config) { c.RetryMax = 30 * time.Second })
		start := time.Now()
		_, err := r.Generate(ctx, "hi")
		e := wantErr(t, err, agent.ClassRateLimit, "429 Too Many Requests", "slow down",
			"not retried: the provider asked to wait 1h0m0s, over the retry cap of 30s")
		if e.RetryAfter != time.Hour || time.Since(start) != 0 || f.count() != 1 {
			t.Errorf("Retry-After %v, waited %v, %d requests", e.RetryAfter, time.Since(start), f.count())
		}

		// Past the caller's deadline: not waited for either.
		f.script(status(429, "slow down", "Retry-After", "10"))
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start = time.Now()
		_, err = r.Generate(dctx, "hi")
		wantErr(t, err, agent.ClassRateLimit, "not retried: the next attempt would start after the deadline")
		if time.Since(start) != 0 || f.count() != 1 {
			t.Errorf("waited %v, %d requests", time.Since(start), f.count())
		}
	})
}

func TestRunner_AuthFailed(t *testing.T) {
	eachKind(t, func(t *testing.T, kind agent.Kind) {
		ctx := context.Background()
		f := newFake(t, kind, testKey)
		secrets := filepath.Join(t.TempDir(), "secrets")
		if err := os.WriteFile(secrets, []byte("sk-wrong-key-0123456789\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var changes []string
		r, _ := newRunner(t, f, func(c *agent.Config) {
			c.APIKey, c.Key = agent.Secret{}, agent.KeySource{File: secrets}
			c.OnChange = func(id string, from, to agent.Condition) {
				changes = append(changes, fmt.Sprintf("%s %s>%s", id, from, to))
			}
		})
		_, err := r.Generate(ctx, "hi")
		wantErr(t, err, agent.ClassAuth, "401 Unauthorized", "invalid api key: [redacted]", "check the secrets file "+secrets)
		if st := r.Status(); st.Condition != agent.AuthFailed || st.Breaker != "closed" {
			t.Errorf("status %+v", st)
		}
		// Marked: nothing more is sent, calls or heartbeats.
		_, err = r.Generate(ctx, "hi")
		wantErr(t, err, agent.ClassAuth, "marked auth_failed, not sent", "401 Unauthorized")
		wantErr(t, r.Heartbeat(ctx), agent.ClassAuth, "marked auth_failed")
		if f.count() != 1 || len(f.beatTimes()) != 0 || r.Status().Rejected != 1 {
			t.Errorf("%d requests and %d heartbeats sent, %d rejected; want 1, 0, 1", f.count(), len(f.beatTimes()), r.Status().Rejected)
		}

		// The key is fixed; Reset reads it again.
		if err := os.WriteFile(secrets, []byte(testKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.Reset(); err != nil {
			t.Fatal(err)
		}
		if resp, err := r.Generate(ctx, "hi"); err != nil || resp.Content != "reply 2" {
			t.Fatalf("after Reset: %v, %v", resp, err)
		}
		if want := "a1 healthy>auth_failed,a1 auth_failed>healthy"; strings.Join(changes, ",") != want {
			t.Errorf("changes %q, want %q", changes, want)
		}
		// A key that cannot be read is reported by Reset, which then resets nothing.
		os.Remove(secrets)
		if err := r.Reset(); err == nil || !strings.Contains(err.Error(), "cannot read the secrets file") {
			t.Errorf("Reset without a secrets file: %v", err)
		}
	})
}

func TestRunner_ServerErrors(t *testing.T) {
	eachKind(t, func(t *testing.T, kind agent.Kind) {
		ctx := context.Background()
		f := newFake(t, kind, testKey)
		for _, tc := range []struct {
			act   action
			class agent.Class
		}{
			{status(500, "internal error"), agent.ClassServer},
			{raw(502, "<html><body>502 Bad Gateway</body></html>"), agent.ClassServer},
			{status(503, "overloaded"), agent.ClassOverload},
			{status(529, "Overloaded"), agent.ClassOverload},
			{status(504, "upstream timed out"), agent.ClassServer},
			{status(408, "request timeout"), agent.ClassTimeout},
		} {
			f.script(tc.act)
			r, logs := newRunner(t, f, nil)
			resp, err := r.Generate(ctx, "hi")
			if err != nil || resp.Content != "reply 2" || resp.Provenance.Attempts != 2 {
				t.Fatalf("%s: %+v, %v", tc.class, resp, err)
			}
			if st := r.Status(); st.Retries != 1 || st.Failures != 1 || st.Requests != 2 || st.Condition != agent.Healthy {
				t.Errorf("%s: status %+v", tc.class, st)
			}
			if by := r.FailuresByClass(); len(by) != 1 || by[tc.class] != 1 {
				t.Errorf("%s: failures by class %v", tc.class, by)
			}
			if !strings.Contains(logs(), "class="+string(tc.class)) {
				t.Errorf("%s: the retry's class is not logged:\n%s", tc.class, logs())
			}
		}

		f.script()
		f.setAlways(raw(502, "<html><body>502 Bad Gateway</body></html>"))
		r, _ := newRunner(t, f, func(c *agent.Config) { c.MaxRetries = 2 })
		_, err := r.Generate(ctx, "hi")
		wantErr(t, err, agent.ClassServer, "502 Bad Gateway", "<html>", "(3 attempts)")
		if st := r.Status(); f.count() != 3 || st.Condition != agent.Degraded || st.ConsecutiveFailures != 3 {
			t.Errorf("%d requests, status %+v", f.count(), st)
		}

		f.script()
		f.setAlways(status(529, "Overloaded"))
		r, _ = newRunner(t, f, func(c *agent.Config) { c.MaxRetries = -1 })
		_, err = r.Generate(ctx, "hi")
		if e := wantErr(t, err, agent.ClassOverload, "529 Overloaded", "Overloaded"); e.Status != 529 {
			t.Errorf("status %d", e.Status)
		}
	})
}

func TestRunner_ConnectionReset(t *testing.T) {
	// A cut answer, then malformed JSON, then an answer; then cuts only.
	check := func(t *testing.T, f *fakeProvider, parts ...string) {
		f.script(cut, raw(200, `{"choices":[{"message":{"content":"hel`))
		r, _ := newRunner(t, f, nil)
		resp, err := r.Generate(context.Background(), "hi")
		if err != nil || resp.Content != "reply 3" || f.count() != 3 {
			t.Fatalf("%v, %v after %d requests", resp, err, f.count())
		}
		f.script()
		f.setAlways(cut)
		r, _ = newRunner(t, f, func(c *agent.Config) { c.MaxRetries = 1 })
		_, err = r.Generate(context.Background(), "hi")
		wantErr(t, err, agent.ClassNetwork, append(parts, "while reading the answer", "(2 attempts)")...)
	}
	eachKind(t, func(t *testing.T, kind agent.Kind) { check(t, newFake(t, kind, testKey)) })
	t.Run("tcp", func(t *testing.T) { check(t, newFakeTCP(t, agent.OpenAI, testKey), "connection reset by peer") })
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		log, _ := logger(t)
		r, err := agent.New(agent.Config{ID: "a1", Provider: agent.OpenAI, Model: "m", BaseURL: "http://" + addr + "/v1",
			MaxRetries: 2, RetryBase: time.Millisecond, RetryMax: time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Generate(context.Background(), "hi")
		wantErr(t, err, agent.ClassNetwork, "connection refused", "(3 attempts)")
	})
}

func TestRunner_Breaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := newFake(t, agent.OpenAI, testKey)
		f.setAlways(status(500, "database on fire"))
		var changes []string
		r, logs := newRunner(t, f, func(c *agent.Config) {
			c.MaxRetries, c.BreakerFailures, c.BreakerCooldown = -1, 3, 10*time.Second
			c.OnChange = func(_ string, from, to agent.Condition) { changes = append(changes, string(to)) }
		})
		trip := func() {
			t.Helper()
			for range 3 {
				_, err := r.Generate(ctx, "hi")
				wantErr(t, err, agent.ClassServer, "database on fire")
			}
			if st := r.Status(); st.Breaker != "open" || st.Condition != agent.Unhealthy {
				t.Fatalf("after 3 failures: %+v", st)
			}
		}
		trip()
		sent := f.count()
		_, err := r.Generate(ctx, "hi")
		wantErr(t, err, agent.ClassUnavailable, "circuit open; next probe in 10s", "last error: openai at")
		if f.count() != sent {
			t.Errorf("a request went out while the circuit was open")
		}

		time.Sleep(10*time.Second + time.Millisecond) // the breaker turns half-open after the cooldown
		if st := r.Status(); st.Breaker != "half-open" || st.Condition != agent.Unhealthy {
			t.Fatalf("after the cooldown: %+v", st)
		}
		_, err = r.Generate(ctx, "hi") // the probe fails
		wantErr(t, err, agent.ClassServer, "database on fire")
		if st := r.Status(); st.Breaker != "open" {
			t.Fatalf("breaker %s after a failed probe, want open", st.Breaker)
		}

		// One probe at a time: a second call during a slow probe is refused.
		time.Sleep(10*time.Second + time.Millisecond)
		f.setAlways(slow(time.Second, answer))
		probe := make(chan error, 1)
		go func() {
			_, err := r.Generate(ctx, "probe")
			probe <- err
		}()
		synctest.Wait()
		_, err = r.Generate(ctx, "hi")
		wantErr(t, err, agent.ClassUnavailable, "circuit half-open: a probe is in flight")
		if err := <-probe; err != nil {
			t.Fatalf("probe: %v", err)
		}
		if st := r.Status(); st.Breaker != "closed" || st.Condition != agent.Healthy || st.ConsecutiveFailures != 0 || st.Rejected != 2 {
			t.Fatalf("after a good probe: %+v", st)
		}
		if want := "degraded,unhealthy,healthy"; strings.Join(changes, ",") != want {
			t.Errorf("condition changes %q, want %s", changes, want)
		}
		for _, s := range []string{"to=open", "to=half-open", "to=closed"} {
			if !strings.Contains(logs(), s) {
				t.Errorf("breaker change %s not logged", s)
			}
		}

		// Retries count toward the breaker, and stop when it opens.
		f.script()
		f.setAlways(status(503, "down"))
		r, _ = newRunner(t, f, func(c *agent.Config) { c.MaxRetries, c.BreakerFailures = 10, 4 })
		_, err = r.Generate(ctx, "hi")
		wantErr(t, err, agent.ClassUnavailable, "circuit open", "the last failure", "503 Service Unavailable", "(4 attempts)")
		if f.count() != 4 {
			t.Errorf("%d requests, want the retries to stop when the circuit opened after 4", f.count())
		}
	})
}

// No request that got an answer is sent again: under concurrent calls and
// a mix of failures, each prompt is answered exactly once, by its last
// request.
func TestRunner_NoDuplicateSideEffects(t *testing.T) {
	eachKind(t, func(t *testing.T, kind agent.Kind) {
		f := newFake(t, kind, testKey)
		f.setAlways(func(f *fakeProvider, w http.ResponseWriter, r *http.Request, n int) {
			switch n % 7 {
			case 1:
				status(503, "busy")(f, w, r, n)
			case 3:
				cut(f, w, r, n)
			case 5:
				raw(200, `{"content":[{"type":"text","text":"cut`)(f, w, r, n)
			case 6:
				slow(1900*time.Millisecond, answer)(f, w, r, n) // just inside the timeout
			default:
				answer(f, w, r, n)
			}
		})
		r, _ := newRunner(t, f, func(c *agent.Config) { c.Timeout, c.MaxRetries, c.BreakerFailures = 2*time.Second, 20, 1000 })
		const calls = 40
		var wg sync.WaitGroup
		answers := make([]string, calls)
		for i := range calls {
			wg.Go(func() {
				resp, err := r.Generate(context.Background(), fmt.Sprintf("prompt %d", i))
				if err != nil {
					t.Errorf("call %d: %v", i, err)
					return
				}
				answers[i] = resp.Content
			})
		}
		wg.Wait()
		byPrompt := map[string][]*fakeReq{}
		for _, q := range f.requests() {
			byPrompt[q.prompt] = append(byPrompt[q.prompt], q)
		}
		seen := map[string]bool{}
		for i := range calls {
			reqs := byPrompt[fmt.Sprintf("prompt %d", i)]
			for j, q := range reqs {
				if q.answered != (j == len(reqs)-1) {
					t.Errorf("prompt %d: request %d of %d answered=%v: a prompt must be answered once, by its last request", i, j+1, len(reqs), q.answered)
				}
			}
			if seen[answers[i]] {
				t.Errorf("answer %q given twice", answers[i])
			}
			seen[answers[i]] = true
		}
		if st := r.Status(); st.Calls != calls || st.Requests != uint64(f.count()) || st.Retries != st.Requests-calls {
			t.Errorf("status %+v for %d server requests", st, f.count())
		}
	})
}

func TestRunner_RateLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		f := newFake(t, agent.OpenAI, testKey)
		offsets := func(n int) []time.Duration {
			reqs := f.requests()
			out := make([]time.Duration, len(reqs))
			for i, q := range reqs {
				out[i] = q.at.Sub(reqs[0].at).Round(time.Millisecond)
			}
			return out
		}
		run := func(name string, edit func(*agent.Config), n int, want string) {
			t.Helper()
			f.script()
			r, _ := newRunner(t, f, edit)
			for range n {
				if _, err := r.Generate(ctx, "hi"); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			if got := fmt.Sprint(offsets(n)); got != want {
				t.Errorf("%s: requests at %s, want %s", name, got, want)
			}
		}
		run("per second", func(c *agent.Config) { c.RequestsPerSecond = 2 }, 5, "[0s 500ms 1s 1.5s 2s]")
		run("per minute", func(c *agent.Config) { c.RequestsPerMinute = 3 }, 4, "[0s 0s 0s 20s]")

		// 600 tokens a minute: the first call is estimated at 400 and
		// counted at 600, so the second waits 40s for its 400.
		f.usage = func(string) (int, int) { return 400, 200 }
		prompt := strings.Repeat("a", 1592) // 400 tokens by the estimate
		f.script()
		r, _ := newRunner(t, f, func(c *agent.Config) { c.TokensPerMinute = 600 })
		for range 2 {
			if _, err := r.Generate(ctx, prompt); err != nil {
				t.Fatal(err)
			}
		}
		if got := fmt.Sprint(offsets(2)); got != "[0s 40s]" {
			t.Errorf("tokens: requests at %s, want [0s 40s]", got)
		}
		// A wait past the caller's deadline fails at once, unsent.
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := r.Generate(dctx, prompt)
		e := wantErr(t, err, agent.ClassRateLimit, "the agent's own limit of tokens per minute would delay the call past its deadline")
		if time.Since(start) != 0 || f.count() != 2 || r.Status().Rejected != 1 {
			t.Errorf("waited %v, %d requests, status %+v", time.Since(start), f.count(), r.Status())
		}
		// The refusal says how long to wait: the second call left the
		// bucket 200 tokens in debt, so 400 more take 60s. The refused
		// call took nothing: after those 60s it is sent at once.
		if e.RetryAfter != 60*time.Second {
			t.Errorf("RetryAfter %v, want 1m0s", e.RetryAfter)
		}
		time.Sleep(e.RetryAfter)
		dctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start = time.Now()
		if _, err := r.Generate(dctx, prompt); err != nil || time.Since(start) != 0 {
			t.Errorf("after the wait it refused: %v, waited %v", err, time.Since(start))
		}
	})
}

// RequestsPerSecond spreads requests evenly: calls made all at once reach
// the provider 1/r apart, the first at once, never several together.
func TestRunner_RequestsPerSecondEven(t *testing.T) {
	for _, c := range []struct {
		rps  float64
		n    int
		want string
	}{
		{4, 4, "[0s 250ms 500ms 750ms]"},
		{2.5, 4, "[0s 400ms 800ms 1.2s]"},
		{0.5, 3, "[0s 2s 4s]"},
	} {
		t.Run(fmt.Sprint(c.rps), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake(t, agent.OpenAI, testKey)
				r, _ := newRunner(t, f, func(cfg *agent.Config) { cfg.RequestsPerSecond = c.rps })
				start := time.Now()
				var wg sync.WaitGroup
				for range c.n {
					wg.Go(func() {
						if _, err := r.Generate(context.Background(), "hi"); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
				var got []time.Duration
				for _, q := range f.requests() {
					got = append(got, q.at.Sub(start))
				}
				if fmt.Sprint(got) != c.want {
					t.Errorf("%d calls at once at %v a second reach the provider at %v, want %s", c.n, c.rps, got, c.want)
				}
			})
		})
	}
}

func TestRunner_State(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, agent.Anthropic, testKey)
		r, _ := newRunner(t, f, nil)
		ch := chain(3)
		for _, c := range [][]*nexus.Context{ch[1:], ch} {
			if _, err := r.Process(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		state, err := r.State()
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(state, &got); err != nil {
			t.Fatal(err)
		}
		if got["version"] != 1.0 || got["agent"] != "a1" || got["provider"] != "anthropic" || got["answers"] != 2.0 ||
			got["last_context"] != ch[0].ID.String() || got["tokens_out"] != 4.0 {
			t.Errorf("state %s", state)
		}
		r2, _ := newRunner(t, f, nil)
		if err := r2.Restore(state); err != nil {
			t.Fatal(err)
		}
		if again, _ := r2.State(); string(again) != string(state) {
			t.Errorf("restored state\n%s\nwant\n%s", again, state)
		}
		other, _ := newRunner(t, f, func(c *agent.Config) { c.ID = "a2" })
		for in, want := range map[string]string{
			string(state):                `agent a2: the state is agent "a1"'s`,
			`{"version":9,"agent":"a2"}`: "state version 9, want 1",
			`not json`:                   "the state is not an agent state",
		} {
			if err := other.Restore([]byte(in)); nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), want) {
				t.Errorf("Restore(%.30s) = %v, want %q", in, err, want)
			}
		}
		if _, err := r.Process(context.Background(), nil); err == nil || nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("Process(nil) = %v", err)
		}
		if _, err := r.Generate(context.Background(), " \n"); err == nil || nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("Generate(blank) = %v", err)
		}
	})
}
