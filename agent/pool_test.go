package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/agent"
)

// fleet is n fake providers, alternately OpenAI and Anthropic, and an agent
// of each, named a1, a2, ...
func fleet(t *testing.T, n int, edit func(*agent.Config)) ([]*fakeProvider, []*agent.Runner) {
	t.Helper()
	fakes := make([]*fakeProvider, n)
	runners := make([]*agent.Runner, n)
	for i := range n {
		kind := agent.OpenAI
		if i%2 == 1 {
			kind = agent.Anthropic
		}
		fakes[i] = newFake(t, kind, testKey)
		runners[i], _ = newRunner(t, fakes[i], func(c *agent.Config) {
			c.ID, c.MaxRetries = fmt.Sprintf("a%d", i+1), -1
			if edit != nil {
				edit(c)
			}
		})
	}
	return fakes, runners
}

func TestPool_WeightedRoundRobin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes, rs := fleet(t, 3, nil)
		p, err := agent.NewPool("writers", nil, agent.Member{Agent: rs[0], Weight: 3}, agent.Member{Agent: rs[1]},
			agent.Member{Agent: rs[2], Backup: true})
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for range 8 {
			resp, err := p.Generate(context.Background(), "hi")
			if err != nil {
				t.Fatal(err)
			}
			order = append(order, resp.Provenance.FinalAgent)
		}
		// Smooth: the heavy agent's turns are spread, not bunched.
		if got := strings.Join(order, " "); got != "a1 a1 a2 a1 a1 a1 a2 a1" {
			t.Errorf("order %s", got)
		}
		if fakes[0].count() != 6 || fakes[1].count() != 2 || fakes[2].count() != 0 {
			t.Errorf("requests %d %d %d, want 6 2 0: backups only on failure", fakes[0].count(), fakes[1].count(), fakes[2].count())
		}
	})
}

func TestPool_Failover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		fakes, rs := fleet(t, 3, func(c *agent.Config) { c.BreakerFailures = 2 })
		p, err := agent.NewPool("writers", nil, agent.Member{Agent: rs[0]}, agent.Member{Agent: rs[1], Backup: true},
			agent.Member{Agent: rs[2], Backup: true})
		if err != nil {
			t.Fatal(err)
		}
		fakes[0].setAlways(status(500, "primary is down"))
		fakes[1].script(status(429, "backup is busy"))
		resp, err := p.Process(ctx, chain(2))
		if err != nil {
			t.Fatal(err)
		}
		pv := resp.Provenance
		if resp.Content != "reply 1" || pv.Agent != "writers" || pv.FinalAgent != "a3" || pv.Attempts != 3 || len(pv.Trail) != 3 {
			t.Fatalf("answer %q, provenance %+v", resp.Content, pv)
		}
		for i, want := range []agent.Attempt{
			{Agent: "a1", Requests: 1, Class: agent.ClassServer},
			{Agent: "a2", Requests: 1, Class: agent.ClassRateLimit},
			{Agent: "a3", Requests: 1},
		} {
			got := pv.Trail[i]
			if got.Agent != want.Agent || got.Requests != want.Requests || got.Class != want.Class || (got.Error == "") != (want.Class == "") {
				t.Errorf("trail[%d] = %+v, want %+v", i, got, want)
			}
		}

		// The next call goes to the first backup, which answers: the
		// second backup is not asked again.
		resp, err = p.Process(ctx, chain(2))
		if err != nil || resp.Provenance.FinalAgent != "a2" || fakes[2].count() != 1 {
			t.Fatalf("%+v, %v; backup 2 saw %d requests", resp, err, fakes[2].count())
		}

		// The primary's breaker is now open: it is skipped unsent.
		if st := rs[0].Status(); st.Breaker != "open" {
			t.Fatalf("primary breaker %s", st.Breaker)
		}
		sent := fakes[0].count()
		resp, err = p.Process(ctx, chain(2))
		if err != nil || fakes[0].count() != sent {
			t.Fatalf("%v; the primary saw %d new requests", err, fakes[0].count()-sent)
		}
		if tr := resp.Provenance.Trail; len(tr) != 2 || tr[0].Requests != 0 || tr[0].Class != agent.ClassUnavailable || resp.Provenance.Attempts != 1 {
			t.Errorf("trail %+v", tr)
		}

		// Back after the cooldown (the primary's half-open probe).
		fakes[0].setAlways(nil)
		time.Sleep(agent.DefaultBreakerCooldown + time.Millisecond)
		resp, err = p.Process(ctx, chain(2))
		if err != nil || resp.Provenance.FinalAgent != "a1" || rs[0].Status().Breaker != "closed" {
			t.Fatalf("after the cooldown: %+v, %v", resp, err)
		}
	})
}

func TestPool_AllFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes, rs := fleet(t, 2, nil)
		p, err := agent.NewPool("writers", nil, agent.Member{Agent: rs[0]}, agent.Member{Agent: rs[1]})
		if err != nil {
			t.Fatal(err)
		}
		fakes[0].setAlways(status(503, "overloaded", "Retry-After", "120"))
		fakes[1].setAlways(status(400, "bad prompt"))
		_, err = p.Generate(context.Background(), "hi")
		e := wantErr(t, err, agent.ClassUnavailable, "agent writers: unavailable: no agent of the pool answered: agent a1: overload:",
			"503 Service Unavailable: overloaded", "; agent a2: bad_request:", "400 Bad Request: bad prompt")
		if e.Attempts != 2 || e.RetryAfter != 2*time.Minute {
			t.Errorf("attempts %d, Retry-After %v", e.Attempts, e.RetryAfter)
		}
		var first *agent.Error
		if !errors.As(e.Err, &first) || first.Agent != "a1" {
			t.Errorf("the members' errors are not wrapped: %v", e.Err)
		}

		// All of one class: that class.
		fakes[0].setAlways(status(400, "bad prompt"))
		_, err = p.Generate(context.Background(), "hi")
		wantErr(t, err, agent.ClassBadRequest, "no agent of the pool answered")

		// The caller's cancellation stops the failover.
		fakes[0].setAlways(hang)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		before := fakes[1].count()
		_, err = p.Generate(ctx, "hi")
		wantErr(t, err, agent.ClassCanceled, "stopped by the caller's deadline")
		if fakes[1].count() != before {
			t.Errorf("failed over after the caller's deadline")
		}
	})
}

// An agent over its own rate limit is skipped, unsent, for the others.
func TestPool_RateLimitedMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fakes, rs := fleet(t, 2, func(c *agent.Config) { c.RequestsPerMinute = 1 })
		p, err := agent.NewPool("writers", nil, agent.Member{Agent: rs[0]}, agent.Member{Agent: rs[1], Backup: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, want := range []string{"a1", "a2"} {
			resp, err := p.Generate(ctx, "hi")
			if err != nil || resp.Provenance.FinalAgent != want {
				t.Fatalf("want %s: %+v, %v", want, resp, err)
			}
		}
		if fakes[0].count() != 1 || rs[0].Status().Rejected != 1 {
			t.Errorf("primary: %d requests, status %+v", fakes[0].count(), rs[0].Status())
		}
	})
}

func TestPool_State(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rs := fleet(t, 2, nil)
		p, err := agent.NewPool("writers", nil, agent.Member{Agent: rs[0]}, agent.Member{Agent: rs[1], Backup: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Process(context.Background(), chain(1)); err != nil {
			t.Fatal(err)
		}
		state, err := p.State()
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Pool    string
			Members map[string]struct{ Answers int }
		}
		if err := json.Unmarshal(state, &s); err != nil || s.Pool != "writers" || s.Members["a1"].Answers != 1 || len(s.Members) != 2 {
			t.Fatalf("state %s: %v", state, err)
		}
		_, fresh := fleet(t, 2, nil)
		q, _ := agent.NewPool("writers", nil, agent.Member{Agent: fresh[0]}, agent.Member{Agent: fresh[1]})
		if err := q.Restore(state); err != nil {
			t.Fatal(err)
		}
		if again, _ := q.State(); string(again) != string(state) {
			t.Errorf("restored\n%s\nwant\n%s", again, state)
		}
		// One bad member state: nothing is restored.
		bad := strings.Replace(string(state), `"agent":"a2"`, `"agent":"zz"`, 1)
		_, other := fleet(t, 2, nil)
		o, _ := agent.NewPool("writers", nil, agent.Member{Agent: other[0]}, agent.Member{Agent: other[1]})
		if err := o.Restore([]byte(bad)); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Errorf("Restore of a bad member state = %v", err)
		}
		if st, _ := other[0].State(); strings.Contains(string(st), `"answers":1`) {
			t.Errorf("a member was restored from a refused pool state: %s", st)
		}
		for in, want := range map[string]string{`{"version":1,"pool":"other"}`: `pool "other"`, `[]`: "not a pool state"} {
			if err := o.Restore([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Restore(%s) = %v", in, err)
			}
		}
	})
}

func TestNewPool_Invalid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rs := fleet(t, 2, nil)
		for _, tc := range []struct {
			id      string
			members []agent.Member
			want    string
		}{
			{"", []agent.Member{{Agent: rs[0]}}, "invalid agent_id"},
			{"p", nil, "pool p has no primary member"},
			{"p", []agent.Member{{Agent: rs[0], Backup: true}}, "pool p has no primary member"},
			{"p", []agent.Member{{}}, "pool p: member 1 has no agent"},
			{"p", []agent.Member{{Agent: rs[0]}, {Agent: rs[0], Backup: true}}, "agent a1 is named twice"},
			{"a1", []agent.Member{{Agent: rs[0]}}, "agent a1 is named twice (or names the pool)"},
			{"p", []agent.Member{{Agent: rs[0], Weight: -1}}, "negative weight"},
			{"p", []agent.Member{{Agent: rs[0]}, {Agent: rs[1], Weight: 2, Backup: true}}, "backups are asked in order"},
		} {
			_, err := agent.NewPool(tc.id, nil, tc.members...)
			if nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPool(%q, %d members) = %v, want %q", tc.id, len(tc.members), err, tc.want)
			}
		}
	})
}
