package linearize

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/nexus-mem/nexus"
)

// memStore is a store in memory behind one mutex: linearizable by
// construction. With lag > 0 it serves reads and listings from a replica
// that catches up with the primary only at every lag-th write, which is
// not linearizable.
type memStore struct {
	lag int

	mu      sync.Mutex
	gen     nexus.IDGenerator
	writes  int
	primary view
	replica view
}

// view is one copy of the data: contents by id and the ids of each
// namespace in id order.
type view struct {
	content map[nexus.ID]string
	ids     map[string][]nexus.ID
}

func newView() view {
	return view{content: make(map[nexus.ID]string), ids: make(map[string][]nexus.ID)}
}

func (v view) clone() view {
	c := newView()
	for id, s := range v.content {
		c.content[id] = s
	}
	for ns, ids := range v.ids {
		c.ids[ns] = slices.Clone(ids)
	}
	return c
}

func newMemStore(lag int) *memStore {
	return &memStore{lag: lag, primary: newView(), replica: newView()}
}

func (s *memStore) put(ns, content string) nexus.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.gen.New(time.Now())
	s.primary.content[id] = content
	s.primary.ids[ns] = append(s.primary.ids[ns], id)
	s.writes++
	if s.lag > 0 && s.writes%s.lag == 0 {
		s.replica = s.primary.clone()
	}
	return id
}

// served is the view reads and listings see.
func (s *memStore) served() view {
	if s.lag > 0 {
		return s.replica
	}
	return s.primary
}

func (s *memStore) get(id nexus.ID) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.served().content[id]
	return c, ok
}

// list returns the contexts of a namespace in id order; final lists the
// primary whatever the lag.
func (s *memStore) list(ns string, final bool) []Stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.served()
	if final {
		v = s.primary
	}
	out := make([]Stored, 0, len(v.ids[ns]))
	for _, id := range v.ids[ns] {
		out = append(out, Stored{ID: id, Namespace: ns, Content: v.content[id]})
	}
	return out
}

const (
	clients         = 16
	opsPerClient    = 200
	namespacesCount = 12
)

// run drives the store from 16 clients with random operations, recording
// them, then lists every namespace once (recorded, and given to Resolve).
// Writes sometimes fail (not applied, Fail) or end unknown (applied or not,
// Unknown); after its own write a client often reads it back or lists its
// namespace at once.
func run(t *testing.T, s *memStore, seed uint64) *Recorder {
	t.Helper()
	r := NewRecorder()
	var (
		poolMu sync.Mutex
		pool   []nexus.ID // ids the clients learned
	)
	learn := func(ids ...nexus.ID) {
		poolMu.Lock()
		pool = append(pool, ids...)
		poolMu.Unlock()
	}
	pick := func(rng *rand.Rand) (nexus.ID, bool) {
		poolMu.Lock()
		defer poolMu.Unlock()
		if len(pool) == 0 {
			return nexus.ZeroID, false
		}
		return pool[rng.IntN(len(pool))], true
	}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			for i := range opsPerClient {
				ns := fmt.Sprintf("ns%d", rng.IntN(namespacesCount))
				switch p := rng.IntN(100); {
				case p < 45:
					tok := fmt.Sprintf("c%d-%d", c, i)
					op := r.Begin(c, Write(ns, tok))
					switch q := rng.IntN(100); {
					case q < 3:
						op.Fail()
					case q < 6:
						if q%2 == 0 {
							s.put(ns, tok)
						}
						op.Unknown()
					default:
						id := s.put(ns, tok)
						op.Ok(Written(id))
						learn(id)
						switch rng.IntN(4) {
						case 0, 1:
							rd := r.Begin(c, Read(id))
							content, found := s.get(id)
							rd.Ok(readOutput(content, found))
						case 2:
							l := r.Begin(c, List(ns))
							l.Ok(listOutput(s.list(ns, false)))
						}
					}
				case p < 75:
					id, ok := pick(rng)
					if !ok || rng.IntN(10) == 0 {
						id = idGen.New(time.Now()) // never written
					}
					rd := r.Begin(c, Read(id))
					content, found := s.get(id)
					rd.Ok(readOutput(content, found))
				default:
					l := r.Begin(c, List(ns))
					listing := s.list(ns, false)
					l.Ok(listOutput(listing))
					for _, st := range listing {
						learn(st.ID)
					}
				}
			}
		})
	}
	wg.Wait()
	for n := range namespacesCount {
		ns := fmt.Sprintf("ns%d", n)
		l := r.Begin(clients, List(ns))
		listing := s.list(ns, true)
		l.Ok(listOutput(listing))
		if err := r.Resolve(listing); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func readOutput(content string, found bool) Output {
	if found {
		return Found(content)
	}
	return NotFound()
}

func listOutput(listing []Stored) Output {
	tokens := make([]string, len(listing))
	for i, s := range listing {
		tokens[i] = s.Content
	}
	return Listed(tokens...)
}

func TestConcurrentLinearizableStore(t *testing.T) {
	r := run(t, newMemStore(0), 1)
	h := r.History()
	writes := r.Counts(KindWrite)
	t.Logf("%d operations; writes %+v, reads %+v, lists %+v", len(h), writes, r.Counts(KindRead), r.Counts(KindList))
	if writes.Unknown == 0 || writes.Failed == 0 || writes.Pending != 0 {
		t.Fatalf("the run did not exercise unknown and failed writes: %+v", writes)
	}
	var resolved, unresolved int
	for _, op := range h {
		if in := op.Input.(Input); op.Output.(Output).Unknown {
			if in.ID.IsZero() {
				unresolved++
			} else {
				resolved++
			}
		}
	}
	if resolved == 0 || unresolved == 0 || resolved+unresolved != writes.Unknown {
		t.Fatalf("%d unknown writes: %d resolved to an id, %d found nowhere; want some of each", writes.Unknown, resolved, unresolved)
	}
	start := time.Now()
	Verify(t, h, 5*time.Minute)
	t.Logf("checked in %v", time.Since(start))
}

func TestConcurrentStaleReplicaIsIllegal(t *testing.T) {
	r := run(t, newMemStore(32), 2)
	h := r.History()
	staleReads, staleLists := staleByRealTime(h)
	t.Logf("%d operations; %d reads and %d listings began after a write they missed had returned", len(h), staleReads, staleLists)
	// The replica lags by up to 31 writes, and a client reads back or
	// lists most of its own writes at once: stale answers are certain in
	// practice. Without them this test would prove nothing.
	if staleReads == 0 || staleLists == 0 {
		t.Fatal("the stale replica served no stale read or listing")
	}
	start := time.Now()
	for name, m := range map[string]porcupine.Model{"registers": RegisterModel(), "namespaces": NamespaceModel()} {
		res, _ := Check(m, h, 5*time.Minute)
		if res != porcupine.Illegal {
			t.Errorf("%s model: %s, want %s", name, res, porcupine.Illegal)
		}
	}
	t.Logf("checked in %v", time.Since(start))
}

// staleByRealTime counts, without the checker, the reads that found
// nothing under an id whose write had returned before they were called,
// and the listings missing a token whose write had returned before they
// were called: each alone makes a history not linearizable.
func staleByRealTime(h []porcupine.Operation) (reads, lists int) {
	type write struct {
		ns, token string
		ret       int64
	}
	byID := make(map[nexus.ID]write)
	var acked []write
	for _, op := range h {
		in := op.Input.(Input)
		if in.Kind == KindWrite && op.Return != Never {
			w := write{in.Namespace, in.Token, op.Return}
			byID[in.ID] = w
			acked = append(acked, w)
		}
	}
	for _, op := range h {
		in, out := op.Input.(Input), op.Output.(Output)
		switch in.Kind {
		case KindRead:
			if w, ok := byID[in.ID]; ok && !out.Found && w.ret < op.Call {
				reads++
			}
		case KindList:
			for _, w := range acked {
				if w.ns == in.Namespace && w.ret < op.Call && !slices.Contains(out.Tokens, w.token) {
					lists++
					break
				}
			}
		}
	}
	return reads, lists
}
