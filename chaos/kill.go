package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// client is the node the writer writes through and the checks ask.
func (r *runner) client() *httpapi.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *runner) setClient(c *httpapi.Client) {
	r.mu.Lock()
	r.cur = c
	r.mu.Unlock()
}

// firstAckAfter is when the first write acknowledged after t was, or the
// zero time.
func (r *runner) firstAckAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.acked) - 1; i >= 0 && r.acked[i].at.After(t); i-- {
		if i == 0 || !r.acked[i-1].at.After(t) {
			return r.acked[i].at
		}
	}
	return time.Time{}
}

// killLeader SIGKILLs the process of the cluster's leader, the writer
// writing through a surviving member; measures the detection (the
// survivor's cluster component: no leader, or another one), the failover
// (the first write acknowledged after the kill), then restarts the
// process and measures its rejoin (it follows a leader and has applied
// everything committed when it restarted); recovered at the first write
// acknowledged after that. The data check then waits for every member,
// the restarted one included, to reach one head.
func (r *runner) killLeader(ctx context.Context) (inj Injection) {
	inj = Injection{Scenario: KillLeader, Component: nexus.ComponentCluster, FoundBy: "health"}
	st, err := r.client().ClusterStatus(ctx, true)
	if err != nil {
		inj.Error = "finding the leader: " + err.Error()
		return inj
	}
	leader, survivor := "", ""
	for _, m := range st.Members {
		switch {
		case m.ID == st.Leader:
			leader = m.APIURL
		case survivor == "":
			survivor = m.APIURL
		}
	}
	if st.Leader == "" || leader == "" || survivor == "" {
		inj.Error = fmt.Sprintf("no leader to kill and member to survive it (leader %q, %d members)", st.Leader, len(st.Members))
		return inj
	}
	inj.Node = leader
	sv := r.opts.ClientFor(survivor)
	r.setClient(sv) // from now on the writer and the checks go through the survivor
	if err := r.opts.Processes.Kill(leader); err != nil {
		inj.Error = "SIGKILL to the leader: " + err.Error()
		return inj
	}
	inj.InjectedAt = time.Now().UTC()
	inj.What = fmt.Sprintf("SIGKILL to the process of the leader %s (%s); writes go through %s", st.Leader, leader, survivor)
	r.progress(KillLeader + ": killed, waiting for detection")
	deadline := time.Now().Add(r.opts.Timeout)
	for inj.DetectedAt.IsZero() {
		if h, err := sv.Health(ctx); err == nil {
			c := h.Components[nexus.ComponentCluster]
			now, lead := time.Now().UTC(), fmt.Sprint(c.Details["leader"])
			switch {
			case nexus.Rank(c.Status) > 0:
				inj.DetectedAt, inj.Detection = now, c.Status+": "+c.Error
			case lead != st.Leader && lead != "" && lead != "<nil>":
				inj.DetectedAt, inj.Detection = now, fmt.Sprintf("leader %s -> %s", st.Leader, lead)
			}
		}
		if inj.DetectedAt.IsZero() {
			if time.Now().After(deadline) || ctx.Err() != nil {
				inj.Error = fmt.Sprintf("not detected within %s: %s kept %s as its leader", r.opts.Timeout, survivor, st.Leader)
				r.restart(ctx, &inj, leader)
				return inj
			}
			sleep(ctx, poll)
		}
	}
	inj.Detect = inj.DetectedAt.Sub(inj.InjectedAt)
	r.progress(KillLeader + ": waiting for failover")
	first, ok := r.waitAck(ctx, inj.InjectedAt, deadline)
	if !ok {
		inj.Error = fmt.Sprintf("no write acknowledged within %s of the kill: no failover", r.opts.Timeout)
		r.restart(ctx, &inj, leader)
		return inj
	}
	inj.Failover = first.Sub(inj.InjectedAt)
	inj.Steps = append(inj.Steps, fmt.Sprintf("failover: first write acknowledged %s after the kill", round(inj.Failover)))
	rejoined, ok := r.restart(ctx, &inj, leader)
	if !ok {
		return inj
	}
	r.progress(KillLeader + ": rejoined, waiting for a write")
	rec, ok := r.waitAck(ctx, rejoined, time.Now().Add(r.opts.Timeout))
	if !ok {
		inj.Error = fmt.Sprintf("no write acknowledged within %s of the rejoin", r.opts.Timeout)
		return inj
	}
	inj.RecoveredAt = rec.UTC()
	inj.Recover = inj.RecoveredAt.Sub(inj.InjectedAt)
	r.progress(KillLeader + ": recovered, checking the data")
	inj.Check = r.check(ctx)
	return inj
}

// waitAck waits until a write is acknowledged after t, up to deadline.
func (r *runner) waitAck(ctx context.Context, t, deadline time.Time) (time.Time, bool) {
	for {
		if at := r.firstAckAfter(t); !at.IsZero() {
			return at, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Time{}, false
		}
		sleep(ctx, poll)
	}
}

// restart starts the killed member again and waits until it follows a
// leader and has applied the commit index a survivor knew when it was
// restarted; it returns when that was, or records the error.
func (r *runner) restart(ctx context.Context, inj *Injection, url string) (time.Time, bool) {
	r.progress(KillLeader + ": restarting the killed member")
	var commit uint64
	if st, err := r.client().ClusterStatus(ctx, true); err == nil {
		commit = st.CommitIndex
	}
	at := time.Now()
	if err := r.opts.Processes.Restart(ctx, url); err != nil {
		inj.Error = joinErr(inj.Error, "restarting the killed member: "+err.Error())
		return time.Time{}, false
	}
	inj.Steps = append(inj.Steps, fmt.Sprintf("restarted %s after the kill; its API answered %s later", round(at.Sub(inj.InjectedAt)), round(time.Since(at))))
	back := r.opts.ClientFor(url)
	deadline := time.Now().Add(r.opts.Timeout)
	for {
		st, err := back.ClusterStatus(ctx, true)
		if err == nil && st.Leader != "" && st.AppliedIndex >= commit {
			now := time.Now()
			inj.Rejoin = now.Sub(at)
			inj.Until = now.UTC()
			inj.Steps = append(inj.Steps, fmt.Sprintf("rejoined %s after the restart: follows %s, applied index %d ≥ %d", round(inj.Rejoin), st.Leader, st.AppliedIndex, commit))
			return now, true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := "no answer"
			if err != nil {
				why = err.Error()
			} else if st != nil {
				why = fmt.Sprintf("leader %q, applied index %d of %d", st.Leader, st.AppliedIndex, commit)
			}
			inj.Error = joinErr(inj.Error, fmt.Sprintf("the restarted member did not rejoin within %s: %s", r.opts.Timeout, why))
			return time.Time{}, false
		}
		sleep(ctx, poll)
	}
}

func joinErr(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
