// Package chaos runs fault scenarios against a running node and measures
// each: when it was injected, when the node's /health noticed, when it
// was healthy again with a write acknowledged, the recovery steps it
// reported, and a data check after each (every acknowledged write reads
// back exactly, a deep fsck is clean). The faults themselves are
// injected by the node (POST /v1/admin/chaos), which must opt in with
// chaos.enabled; see docs/CHAOS.md.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// Options configure a run.
type Options struct {
	// Client reaches the target node as an admin.
	Client *httpapi.Client
	// Duration is how long injections are started for.
	Duration time.Duration
	// Seed makes the order of scenarios, their parameters and the waits
	// between them reproducible.
	Seed uint64
	// Scenarios restricts the run to these names; empty: every scenario
	// the node has available.
	Scenarios []string
	// IntervalMin and IntervalMax bound the random wait between the end
	// of one injection's measure and the next injection.
	IntervalMin, IntervalMax time.Duration
	// DryRun plans the injections without making any.
	DryRun bool
	// Progress receives a live progress line (carriage returns); nil: none.
	Progress io.Writer
	// Timeout bounds the wait for detection and for recovery of one
	// injection (default 2m).
	Timeout time.Duration
	// WriteEvery is the pace of the background writer (default 50ms).
	WriteEvery time.Duration
	// ClientFor makes a client of another member of the target's cluster
	// (its API URL), with the same credentials: the cluster scenarios
	// are injected into the leader. Nil: into the target.
	ClientFor func(url string) *httpapi.Client
	// Processes, when set, kills and restarts the member processes of
	// the target's cluster, which the run started itself (nexus chaos
	// --spawn): the kill_leader scenario needs it (and ClientFor).
	Processes Processes
}

// Processes controls the processes of a cluster's members.
type Processes interface {
	// Kill sends SIGKILL to the process serving the API at url and
	// returns once it exited.
	Kill(url string) error
	// Restart starts the process of url again, with the flags and data
	// directory it had, and returns once its API answers.
	Restart(ctx context.Context, url string) error
}

// KillLeader is the scenario the run injects itself, with Processes:
// SIGKILL to the leader's process, then a restart once another leader
// took a write.
const KillLeader = "kill_leader"

// Report is the outcome of a run.
type Report struct {
	Seed       uint64        `json:"seed"`
	Duration   time.Duration `json:"duration_ns"`
	DryRun     bool          `json:"dry_run"`
	Started    time.Time     `json:"started"`
	Ended      time.Time     `json:"ended"`
	Cluster    bool          `json:"cluster"`
	Scenarios  []Scenario    `json:"scenarios"`
	Injections []Injection   `json:"injections"`
	Writes     Writes        `json:"writes"`
	// Problems lists every failure of the run; empty when it passed.
	Problems []string `json:"problems"`
	Passed   bool     `json:"passed"`
}

// Scenario is one scenario of the node and whether the run used it.
type Scenario struct {
	Name      string `json:"name"`
	Component string `json:"component"`
	Selected  bool   `json:"selected"`
	Skipped   string `json:"skipped,omitempty"` // why it was not injected
	Injected  int    `json:"injected"`
}

// Injection is one measured fault.
type Injection struct {
	Scenario  string            `json:"scenario"`
	Component string            `json:"component"`
	Params    map[string]string `json:"params,omitempty"`
	// Node is the API URL of the node injected into (a cluster's leader
	// for the cluster scenarios), "" for the target.
	Node    string `json:"node,omitempty"`
	What    string `json:"what,omitempty"`
	FoundBy string `json:"found_by,omitempty"`
	// Until is when the node ended a held fault (ballast removed, memory
	// released): recovery cannot come before it.
	Until time.Time `json:"until,omitzero"`
	// Planned is the offset from the start the injection was planned at.
	Planned    time.Duration `json:"planned_ns"`
	InjectedAt time.Time     `json:"injected_at,omitzero"`
	DetectedAt time.Time     `json:"detected_at,omitzero"`
	// Detection is what /health showed: the status and error, or the
	// counter that moved.
	Detection   string    `json:"detection,omitempty"`
	RecoveredAt time.Time `json:"recovered_at,omitzero"`
	// Detect and Recover are the times from injection.
	Detect  time.Duration `json:"detect_ns"`
	Recover time.Duration `json:"recover_ns"`
	// Failover is, for kill_leader, the time from the kill to the first
	// write acknowledged after it (through a surviving member); Rejoin
	// the time from the restart of the killed member until it follows a
	// leader and has applied what was committed when it restarted.
	Failover time.Duration `json:"failover_ns,omitempty"`
	Rejoin   time.Duration `json:"rejoin_ns,omitempty"`
	// Steps are the recovery steps the node reported for the component.
	Steps []string  `json:"steps,omitempty"`
	Check DataCheck `json:"check"`
	Error string    `json:"error,omitempty"`
}

// DataCheck is the check after an injection.
type DataCheck struct {
	ReadBack int `json:"read_back"`
	// Heads is the head every member of a cluster reached ("" on a
	// single node); HeadsIdentical is false when they did not agree
	// within the timeout.
	Heads          string   `json:"heads,omitempty"`
	HeadsIdentical bool     `json:"heads_identical"`
	Lost           []string `json:"lost,omitempty"` // ids acknowledged that did not read back exactly
	FsckClean      bool     `json:"fsck_clean"`
	Fsck           string   `json:"fsck,omitempty"` // the problems, or why it failed
}

// Writes sums up the background writer.
type Writes struct {
	Acknowledged int `json:"acknowledged"`
	Failed       int `json:"failed"` // not acknowledged: no promise made
	Lost         int `json:"lost"`
}

// runner is one run.
type runner struct {
	opts  Options
	rng   *rand.Rand
	start time.Time

	// pause stops the writer while a data check runs (held for writing
	// by the check, for reading by each write), so that a cluster's
	// heads can agree.
	pause sync.RWMutex

	cluster bool

	mu     sync.Mutex
	cur    *httpapi.Client // the node written through and checked: the target, until kill_leader moves it
	acked  []acked
	failed int
	lastOK time.Time // when the last write was acknowledged
	status string    // the progress line's tail
}

type acked struct {
	id      nexus.ID
	content string
	at      time.Time
}

// Run runs the scenarios against the node for opts.Duration and returns
// the report; an error only when the run could not start (the node
// refused, unreachable).
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.WriteEvery <= 0 {
		opts.WriteEvery = 50 * time.Millisecond
	}
	if opts.IntervalMin <= 0 || opts.IntervalMax < opts.IntervalMin {
		return nil, fmt.Errorf("intervals: want 0 < min (%s) <= max (%s)", opts.IntervalMin, opts.IntervalMax)
	}
	st, err := opts.Client.ChaosScenarios(ctx)
	if err != nil {
		return nil, err
	}
	r := &runner{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x6e65787573)), cur: opts.Client}
	r.cluster = st.Cluster
	rep := &Report{Seed: opts.Seed, Duration: opts.Duration, DryRun: opts.DryRun, Cluster: st.Cluster, Problems: []string{}}
	var pool []string
	for _, s := range st.Scenarios {
		sc := Scenario{Name: s.Name, Component: s.Component, Selected: len(opts.Scenarios) == 0 || slices.Contains(opts.Scenarios, s.Name)}
		switch {
		case !sc.Selected:
			sc.Skipped = "not selected (--scenarios)"
		case !s.Available:
			sc.Skipped = s.Reason
		default:
			pool = append(pool, s.Name)
		}
		rep.Scenarios = append(rep.Scenarios, sc)
	}
	kl := Scenario{Name: KillLeader, Component: nexus.ComponentCluster, Selected: len(opts.Scenarios) == 0 || slices.Contains(opts.Scenarios, KillLeader)}
	switch {
	case !kl.Selected:
		kl.Skipped = "not selected (--scenarios)"
	case !st.Cluster:
		kl.Skipped = "not a node of a cluster"
	case opts.Processes == nil || opts.ClientFor == nil:
		kl.Skipped = "needs the cluster's processes: only a run that started them (nexus chaos --spawn) can SIGKILL the leader and restart it"
	default:
		pool = append(pool, KillLeader)
	}
	rep.Scenarios = append(rep.Scenarios, kl)
	for _, name := range opts.Scenarios {
		if name != KillLeader && !slices.ContainsFunc(st.Scenarios, func(s httpapi.ChaosScenario) bool { return s.Name == name }) {
			return nil, fmt.Errorf("unknown scenario %q: the node has %s, and the run %s", name, scenarioNames(st.Scenarios), KillLeader)
		}
	}
	if len(pool) == 0 {
		return nil, errors.New("no scenario to run: every one selected is unavailable on the node (see the reasons with --dry-run)")
	}
	r.start = time.Now()
	rep.Started = r.start.UTC()
	if opts.DryRun {
		r.plan(rep, pool)
		rep.Ended = time.Now().UTC()
		rep.Passed = true
		return rep, nil
	}
	wctx, stopWriter := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.write(wctx) })
	err = r.loop(ctx, rep, pool)
	stopWriter()
	wg.Wait()
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	r.finish(rep, r.check(ctx))
	return rep, nil
}

func scenarioNames(ss []httpapi.ChaosScenario) string {
	var names []string
	for _, s := range ss {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// next is the next scenario: a seeded shuffle of the pool, reshuffled at
// each round, so that every scenario comes once per round.
type order struct {
	pool  []string
	round []string
}

func (o *order) next(rng *rand.Rand) string {
	if len(o.round) == 0 {
		o.round = slices.Clone(o.pool)
		rng.Shuffle(len(o.round), func(i, j int) { o.round[i], o.round[j] = o.round[j], o.round[i] })
	}
	s := o.round[0]
	o.round = o.round[1:]
	return s
}

func (r *runner) wait() time.Duration {
	span := r.opts.IntervalMax - r.opts.IntervalMin
	if span <= 0 {
		return r.opts.IntervalMin
	}
	return r.opts.IntervalMin + time.Duration(r.rng.Int64N(int64(span)+1))
}

// params are the seeded parameters of an injection.
func (r *runner) params(scenario string) map[string]string {
	switch scenario {
	case "index_damage":
		return map[string]string{"mode": []string{"delete", "damage"}[r.rng.IntN(2)]}
	}
	return nil
}

// plan fills a dry run's report: the injections as they would be
// planned if each took no time.
func (r *runner) plan(rep *Report, pool []string) {
	o := &order{pool: pool}
	for at := r.wait(); at < r.opts.Duration; at += r.wait() {
		s := o.next(r.rng)
		rep.Injections = append(rep.Injections, Injection{Scenario: s, Component: component(rep, s), Params: r.params(s), Planned: at})
	}
}

func component(rep *Report, name string) string {
	for _, s := range rep.Scenarios {
		if s.Name == name {
			return s.Component
		}
	}
	return ""
}

// loop injects until the duration is over.
func (r *runner) loop(ctx context.Context, rep *Report, pool []string) error {
	o := &order{pool: pool}
	deadline := r.start.Add(r.opts.Duration)
	for {
		at := time.Now().Add(r.wait())
		if !at.Before(deadline) {
			return nil
		}
		if err := r.sleepUntil(ctx, at); err != nil {
			return err
		}
		s := o.next(r.rng)
		var inj Injection
		if s == KillLeader {
			inj = r.killLeader(ctx)
		} else {
			inj = r.inject(ctx, s, r.params(s))
		}
		inj.Planned = at.Sub(r.start)
		rep.Injections = append(rep.Injections, inj)
		for i := range rep.Scenarios {
			if rep.Scenarios[i].Name == s && inj.Error == "" {
				rep.Scenarios[i].Injected++
			}
		}
		r.progress(fmt.Sprintf("%s: %s", s, summary(inj)))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func summary(inj Injection) string {
	switch {
	case inj.Error != "":
		return "ERROR " + inj.Error
	case inj.RecoveredAt.IsZero():
		return "not recovered"
	}
	return fmt.Sprintf("detected %s, recovered %s", round(inj.Detect), round(inj.Recover))
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// sleepUntil waits until t, updating the progress line every second.
func (r *runner) sleepUntil(ctx context.Context, t time.Time) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return nil
		case <-tick.C:
			r.progress("")
		}
	}
}

// progress prints the live line: elapsed, injections, writes.
func (r *runner) progress(status string) {
	if r.opts.Progress == nil {
		return
	}
	r.mu.Lock()
	if status != "" {
		r.status = status
	}
	n, failed, last := len(r.acked), r.failed, r.status
	r.mu.Unlock()
	el := time.Since(r.start).Truncate(time.Second)
	fmt.Fprintf(r.opts.Progress, "\r\033[Kchaos %s/%s  writes %d acked, %d refused  last: %s", el, r.opts.Duration, n, failed, last)
}
