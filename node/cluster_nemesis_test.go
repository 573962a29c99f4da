package node_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/linearize"
	"github.com/nexus-mem/nexus/internal/netfault"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// The nemesis test's knobs. Its run lasts -nemesis.duration; without the
// flag, 30 s, or 150 s when the environment variable CI is set. Its faults
// and operations come from -nemesis.seed (0: a seed from the clock); the
// seed is logged, and a failing run is replayed with it (the schedule is
// the same, the interleaving of the nodes is not).
var (
	nemesisSeed     = flag.Uint64("nemesis.seed", 0, "seed of TestCluster_Nemesis (0: from the clock)")
	nemesisDuration = flag.Duration("nemesis.duration", 0, "how long TestCluster_Nemesis injects faults (0: 30s, 150s with CI set)")
)

const (
	nemesisClients    = 6
	nemesisNamespaces = 16
	nemesisOpTimeout  = 3 * time.Second
)

// TestCluster_Nemesis runs clients against a 3-node cluster while a
// nemesis isolates, partitions, pauses, kills and restarts nodes, then
// checks the whole history with the linearizability checker (every answer
// one a single atomic store could have given: reads and listings at
// linearizable consistency), and that the healed cluster lost no
// acknowledged write, stored none twice, and has one head and clean
// repositories everywhere.
func TestCluster_Nemesis(t *testing.T) {
	seed := *nemesisSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	dur := *nemesisDuration
	if dur == 0 {
		dur = 30 * time.Second
		if os.Getenv("CI") != "" {
			dur = 150 * time.Second
		}
	}
	t.Logf("nemesis: seed %d, duration %v (replay: go test -race -run TestCluster_Nemesis ./node -args -nemesis.seed=%d)", seed, dur, seed)

	fc := openFaultCluster(t, 3)
	urls := make([]string, len(fc.nodes))
	for i, n := range fc.nodes {
		urls[i] = n.URL // a restarted node serves on the same address
	}
	rec := linearize.NewRecorder()
	ack := newAcked()
	stop := make(chan struct{})
	var clients sync.WaitGroup
	pool := &idPool{}
	for c := range nemesisClients {
		clients.Go(func() { nemesisClient(rec, ack, pool, urls, seed, c, stop) })
	}
	faults := runNemesis(t, fc, seed, dur)
	close(stop)
	clients.Wait()

	// Heal, and list every namespace on the leader once the cluster has
	// settled: recorded (the listing must hold every acknowledged write)
	// and handed to Resolve (it places the writes whose outcome is unknown).
	if err := fc.mesh.Heal(); err != nil {
		t.Fatal(err)
	}
	for _, n := range fc.nodes {
		if n.Closed() {
			n.Restart(nil)
		}
	}
	nodetest.Converge(t, fc.nodes)
	hc := &http.Client{}
	for ns := range nemesisNamespaces {
		name := nemesisNS(ns)
		var op *linearize.Pending
		var stored []linearize.Stored
		// A loaded machine can starve the leader's heartbeats after the
		// heal too: a listing refused meanwhile (no quorum) is asked again
		// of whichever node leads then, for up to a minute.
		deadline := time.Now().Add(time.Minute)
		for {
			leader := nodetest.Leader(t, fc.nodes)
			op = rec.Begin(nemesisClients, linearize.List(name))
			var a answer
			stored, a = listNamespace(hc, leader.URL, name)
			if a.status == http.StatusOK {
				break
			}
			op.Fail()
			if time.Now().After(deadline) {
				t.Fatalf("final listing of %s: %s", name, a)
			}
			time.Sleep(100 * time.Millisecond)
		}
		tokens := make([]string, len(stored))
		for i, s := range stored {
			tokens[i] = s.Content
		}
		op.Ok(linearize.Listed(tokens...))
		if err := rec.Resolve(stored); err != nil {
			t.Errorf("namespace %s: %v", name, err)
		}
	}
	w, r, l := rec.Counts(linearize.KindWrite), rec.Counts(linearize.KindRead), rec.Counts(linearize.KindList)
	t.Logf("nemesis: faults %v", faults)
	t.Logf("nemesis: writes of unknown outcome: %v", unknownWrites.n)
	t.Logf("nemesis: writes %+v, reads %+v, lists %+v", w, r, l)
	if !linearize.Verify(t, rec.History(), 3*time.Minute) {
		t.Errorf("the history is not linearizable (seed %d)", seed)
	}
	checkHealed(t, fc.nodes, ack)
	if w.Ok < 300 {
		t.Errorf("only %d writes acknowledged: the run exercised too little", w.Ok)
	}
	if w.Unknown+w.Failed+r.Unknown+r.Failed+l.Unknown+l.Failed == 0 {
		t.Errorf("no operation failed or ended unknown with faults injected: the faults did not reach the clients")
	}
}

// reasons counts why writes ended unknown, by answer.
type reasons struct {
	mu sync.Mutex
	n  map[string]int
}

var unknownWrites = &reasons{n: map[string]int{}}

func (r *reasons) note(a answer) {
	why := fmt.Sprintf("%d %s", a.status, a.code)
	if a.err != nil {
		why = a.err.Error()
		if i := strings.LastIndex(why, ": "); i >= 0 {
			why = why[i+2:]
		}
	}
	r.mu.Lock()
	r.n[why]++
	r.mu.Unlock()
}

func nemesisNS(i int) string { return fmt.Sprintf("nem%d", i) }

// idPool is the ids the clients learned, to read them back.
type idPool struct {
	mu  sync.Mutex
	ids []nexus.ID
}

func (p *idPool) add(ids ...nexus.ID) {
	p.mu.Lock()
	p.ids = append(p.ids, ids...)
	p.mu.Unlock()
}

func (p *idPool) pick(rng *rand.Rand) (nexus.ID, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return nexus.ZeroID, false
	}
	return p.ids[rng.IntN(len(p.ids))], true
}

// nemesisClient sends random operations to random nodes until stop,
// recording each: writes of unique tokens, linearizable reads by id and
// linearizable listings of small namespaces.
func nemesisClient(rec *linearize.Recorder, ack *acked, pool *idPool, urls []string, seed uint64, c int, stop chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, uint64(c)+1))
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	var gen nexus.IDGenerator
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		base := urls[rng.IntN(len(urls))]
		ns := nemesisNS(rng.IntN(nemesisNamespaces))
		switch p := rng.IntN(100); {
		case p < 50:
			token := fmt.Sprintf("s%d-c%d-%d", seed, c, i)
			op := rec.Begin(c, linearize.Write(ns, token))
			a := call(hc, http.MethodPost, base, "/v1/contexts",
				nexus.Draft{Type: nexus.TypeObservation, Namespace: ns, Content: token}, nemesisOpTimeout)
			switch {
			case a.status == http.StatusCreated:
				var got nexus.Context
				if err := json.Unmarshal(a.body, &got); err != nil {
					op.Unknown()
					continue
				}
				op.Ok(linearize.Written(got.ID))
				ack.add(token, got.ID)
				pool.add(got.ID)
			case notMade(a):
				op.Fail()
			default:
				op.Unknown()
				unknownWrites.note(a)
			}
		case p < 80:
			id, ok := pool.pick(rng)
			if !ok || rng.IntN(10) == 0 {
				id = gen.New(time.Now()) // never written
			}
			op := rec.Begin(c, linearize.Read(id))
			a := call(hc, http.MethodGet, base, "/v1/contexts/"+id.String()+"?consistency=linearizable", nil, nemesisOpTimeout)
			switch {
			case a.status == http.StatusOK:
				var got nexus.Context
				if err := json.Unmarshal(a.body, &got); err != nil {
					op.Unknown()
					continue
				}
				op.Ok(linearize.Found(got.Content))
			case a.status == http.StatusNotFound && a.code == nexus.ENotFound:
				op.Ok(linearize.NotFound())
			case notMade(a):
				op.Fail()
			default:
				op.Unknown()
			}
		default:
			op := rec.Begin(c, linearize.List(ns))
			stored, a := listNamespace(hc, base, ns)
			switch {
			case a.status == http.StatusOK:
				tokens := make([]string, len(stored))
				ids := make([]nexus.ID, len(stored))
				for i, s := range stored {
					tokens[i], ids[i] = s.Content, s.ID
				}
				op.Ok(linearize.Listed(tokens...))
				pool.add(ids...)
			case notMade(a):
				op.Fail()
			default:
				op.Unknown()
			}
		}
	}
}

// notMade reports whether a says the request was not carried out: 503
// no_quorum, 429 rate_limited, a 400, or a connection refused (the node is
// down; nothing was sent).
func notMade(a answer) bool {
	if a.err != nil {
		return errors.Is(a.err, syscall.ECONNREFUSED)
	}
	// A request over its principal's rate is refused (429 rate_limited)
	// before anything else runs, forwarding to the leader included
	// (httpapi.Server.ServeHTTP): counted unknown, thousands of them made
	// a history the checker could not finish in its 3 minutes.
	return (a.status == http.StatusServiceUnavailable && a.code == nexus.ENoQuorum) || a.status == http.StatusBadRequest ||
		(a.status == http.StatusTooManyRequests && a.code == nexus.ERateLimited)
}

// listNamespace lists ns at linearizable consistency in one page; a
// namespace that needs a second page is a mistake of the test.
func listNamespace(hc *http.Client, base, ns string) ([]linearize.Stored, answer) {
	q := url.Values{"namespace": {ns}, "consistency": {"linearizable"}, "limit": {"1000"}}
	a := call(hc, http.MethodGet, base, "/v1/contexts?"+q.Encode(), nil, nemesisOpTimeout)
	if a.status != http.StatusOK {
		return nil, a
	}
	var page struct {
		Contexts   []*nexus.Context `json:"contexts"`
		NextCursor string           `json:"next_cursor"`
	}
	if err := json.Unmarshal(a.body, &page); err != nil {
		a.status, a.err = 0, err
		return nil, a
	}
	if page.NextCursor != "" {
		panic(fmt.Sprintf("namespace %s holds more than 1000 contexts: use more namespaces", ns))
	}
	out := make([]linearize.Stored, len(page.Contexts))
	for i, c := range page.Contexts {
		out[i] = linearize.Stored{ID: c.ID, Namespace: c.Namespace, Content: c.Content}
	}
	return out, a
}

// runNemesis injects one fault at a time for dur: it holds each 1–3 s,
// then removes it (a killed node is restarted), and returns how many of
// each kind it injected.
func runNemesis(t *testing.T, fc *faultCluster, seed uint64, dur time.Duration) map[string]int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0))
	done := map[string]int{}
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		i := rng.IntN(len(fc.nodes))
		hold := time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		var faults []*netfault.Fault
		var killed *nodetest.Node
		var what string
		kind := rng.IntN(5)
		switch kind {
		case 0:
			what = fmt.Sprintf("isolate n%d", i+1)
			f, err := fc.mesh.Isolate(i)
			if err != nil {
				t.Fatal(err)
			}
			faults = append(faults, f)
		case 1:
			// A minority cut off from part of the cluster: node i from j
			// only, the third node bridging both (it reaches each).
			j := (i + 1 + rng.IntN(len(fc.nodes)-1)) % len(fc.nodes)
			what = fmt.Sprintf("partition {n%d} from {n%d}", i+1, j+1)
			f, err := fc.mesh.Partition([]int{i}, []int{j})
			if err != nil {
				t.Fatal(err)
			}
			faults = append(faults, f)
		case 2:
			l := -1
			for k, n := range fc.nodes {
				if !n.Closed() && n.Cluster().IsLeader() {
					l = k
				}
			}
			if l < 0 {
				what = "pause the leader (none)"
				break
			}
			what = fmt.Sprintf("pause the leader n%d", l+1)
			faults = fc.linksOf(t, l, (*netfault.Link).Pause)
		case 3:
			what = fmt.Sprintf("kill n%d", i+1)
			killed = fc.nodes[i]
			killed.Close()
		default:
			what = "heal"
		}
		t.Logf("nemesis: %s for %v", what, hold)
		done[[]string{"isolate", "partition", "pause", "kill", "heal"}[kind]]++
		time.Sleep(hold) // the schedule of the faults: a fault lasts this long
		remove(t, faults...)
		if killed != nil {
			killed.Restart(nil)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(time.Second)))) // the cluster runs healed for a while
	}
	return done
}
