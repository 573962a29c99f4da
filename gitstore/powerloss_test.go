package gitstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/crashfs"
)

// Power loss (docs/RECOVERY.md, recipe 2): a store on a file system that
// keeps only what was fsynced (internal/crashfs) takes writes from several
// goroutines until the power is cut at a random moment; the durable state
// must then open, hold every acknowledged context with its content (each
// once, and nothing that was never written), pass the store's deep fsck
// and `git fsck --full`. Each round starts from the previous round's
// durable state, so acknowledged writes must survive every later crash
// too, and every third round cuts the power while the store is opening
// (recovering from the previous crash). With MergePacks 2 the merger
// rewrites packs all the time, so crashes land inside merges.
func TestPowerLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"merging", Options{MergePacks: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPowerLoss(t, tc.opts)
			for round := 1; round <= 9; round++ {
				if round%3 == 0 {
					p.crashWhileOpening()
				} else {
					p.crashWhileWriting(1 + p.rng.IntN(40))
				}
				if probs := p.check(); len(probs) > 0 {
					t.Fatalf("round %d (%s): the durable state after the crash is wrong:\n%s", round, p.last, summary(probs))
				}
			}
			p.report()
		})
	}
}

// The checker notices a missing fsync: with syncDir (or syncTemp) a no-op
// in the second round, the same scenario loses acknowledged contexts or
// leaves a repository that does not open. This is what makes
// TestPowerLoss fail if the fsync is removed from the code.
func TestPowerLoss_DetectsMissingFsync(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func() (restore func())
	}{
		{"directory fsync", func() func() {
			saved := syncDir
			syncDir = func(string) error { return nil }
			return func() { syncDir = saved }
		}},
		{"file fsync", func() func() {
			saved := syncTemp
			syncTemp = func(*os.File) error { return nil }
			return func() { syncTemp = saved }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPowerLoss(t, Options{})
			p.crashWhileWriting(10)
			if probs := p.check(); len(probs) > 0 {
				t.Fatalf("with every fsync in place: %s", summary(probs))
			}
			p.without = tc.remove
			p.crashWhileWriting(20)
			probs := p.check()
			if len(probs) == 0 {
				t.Fatalf("without the %s the checker found nothing wrong after %d acknowledged writes: the file system layer does not model it", tc.name, len(p.acked))
			}
			t.Logf("without the %s the checker reports %d problems, first: %s", tc.name, len(probs), probs[0])
		})
	}
}

// powerLoss is the state of a sequence of crash rounds.
type powerLoss struct {
	t        *testing.T
	opts     Options
	rng      *rand.Rand
	backing  string        // the durable state the next round mounts ("" at first)
	last     string        // what the last round did
	openTook time.Duration // how long the last Open on the mount took

	mu      sync.Mutex
	acked   map[nexus.ID]string // every acknowledged context → its content
	written map[string]bool     // the content of every Put issued
	seq     int

	// without, if set, removes an fsync for the next writing round and
	// returns the function that puts it back.
	without func() (restore func())

	rounds, indeterminate, presentIndeterminate, packs int
}

func newPowerLoss(t *testing.T, opts Options) *powerLoss {
	return &powerLoss{
		t: t, opts: opts, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		acked: map[nexus.ID]string{}, written: map[string]bool{},
	}
}

// crashWhileWriting opens the store on a crashfs mount of the last
// durable state, writes from four goroutines and cuts the power once at
// least minAcked writes of this round were acknowledged (plus a random
// delay of up to 20 ms).
func (p *powerLoss) crashWhileWriting(minAcked int) {
	t := p.t
	fsys := crashfs.MountTest(t, p.backing)
	restore := func() {}
	if p.without != nil {
		restore = p.without()
	}
	start := time.Now()
	s, err := Open(filepath.Join(fsys.Dir(), "data"), p.opts)
	p.openTook = time.Since(start)
	if err != nil {
		restore()
		t.Fatalf("open on the mount: %v", err)
	}
	stop := make(chan struct{})
	ackedNow := make(chan struct{}, 1<<16)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.writer(s, w, stop, ackedNow)
		}()
	}
	deadline, n := time.After(30*time.Second), 0
wait:
	for ; n < minAcked; n++ {
		select {
		case <-ackedNow:
		case <-deadline:
			break wait
		}
	}
	time.Sleep(time.Duration(p.rng.IntN(20_000)) * time.Microsecond)
	p.crash(fsys)
	close(stop)
	wg.Wait()
	s.Close() // fails: the power is off
	restore()
	if err := fsys.Unmount(); err != nil {
		t.Fatal(err)
	}
	if n < minAcked {
		t.Fatalf("only %d writes acknowledged in 30 s", n)
	}
	p.last = fmt.Sprintf("crash after ≥ %d acknowledged writes", minAcked)
}

// writer puts contexts until stop or the first error (the power is cut),
// recording each as acknowledged (nil error) or indeterminate. Half of the
// contexts have a parent: an earlier acknowledged context of the writer.
func (p *powerLoss) writer(s *Store, w int, stop <-chan struct{}, acked chan<- struct{}) {
	ns := fmt.Sprintf("ns%d", w%2)
	var mine []nexus.ID
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		p.mu.Lock()
		p.seq++
		content := fmt.Sprintf("context %d from writer %d: %s", p.seq, w, strings.Repeat("x", p.seq%300))
		p.written[content] = true
		p.mu.Unlock()
		d := nexus.Draft{Namespace: ns, Type: nexus.TypeMemory, Content: content, AgentID: fmt.Sprint("writer-", w)}
		if len(mine) > 0 && i%2 == 0 {
			d.ParentID = mine[i%len(mine)]
		}
		c, err := s.Put(context.Background(), d)
		if err != nil { // the power is off: this one may or may not be committed
			p.mu.Lock()
			p.indeterminate++
			p.mu.Unlock()
			return
		}
		mine = append(mine, c.ID)
		p.mu.Lock()
		p.acked[c.ID] = content
		p.mu.Unlock()
		acked <- struct{}{}
	}
}

// crashWhileOpening cuts the power while a store opens on the last
// durable state, i.e. during recovery from the previous crash: at a random
// moment within the time the last Open took.
func (p *powerLoss) crashWhileOpening() {
	fsys := crashfs.MountTest(p.t, p.backing)
	opened := make(chan *Store, 1)
	go func() {
		s, _ := Open(filepath.Join(fsys.Dir(), "data"), p.opts)
		opened <- s
	}()
	delay := time.Duration(p.rng.Int64N(int64(p.openTook) + 1))
	time.Sleep(delay)
	p.crash(fsys)
	if s := <-opened; s != nil {
		s.Close()
	}
	if err := fsys.Unmount(); err != nil {
		p.t.Fatal(err)
	}
	p.last = fmt.Sprintf("crash %v into opening the store", delay.Round(time.Microsecond))
}

func (p *powerLoss) crash(fsys *crashfs.FS) {
	dst := p.t.TempDir()
	if err := fsys.Crash(dst); err != nil {
		p.t.Fatal(err)
	}
	p.backing = dst
	p.rounds++
}

// check opens a store on the durable state (as the next boot would) and
// returns what is wrong with it.
func (p *powerLoss) check() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	data := filepath.Join(p.backing, "data")
	s, err := Open(data, Options{})
	if err != nil {
		return []string{fmt.Sprintf("the store does not open: %v", err)}
	}
	probs := p.checkStore(s)
	if err := s.Close(); err != nil {
		probs = append(probs, fmt.Sprintf("close: %v", err))
	}
	// After Close: stock git must not race the merger.
	if out, err := exec.Command("git", "--git-dir", filepath.Join(data, "repo.git"), "fsck", "--full").CombinedOutput(); err != nil {
		probs = append(probs, fmt.Sprintf("git fsck --full: %v\n%s", err, out))
	}
	return probs
}

// checkStore runs the store's checks and reads every context.
func (p *powerLoss) checkStore(s *Store) []string {
	p.packs = s.packCount()
	var probs []string
	for _, deep := range []bool{false, true} {
		rep, err := s.Fsck(context.Background(), deep)
		if err != nil {
			return append(probs, fmt.Sprintf("fsck (deep %v): %v", deep, err))
		}
		for _, pr := range rep.Problems {
			probs = append(probs, fmt.Sprintf("fsck (deep %v): %s", deep, pr))
		}
	}
	lost := 0
	for id, content := range p.acked {
		c, err := s.Get(context.Background(), id)
		switch {
		case err != nil:
			lost++
			probs = append(probs, fmt.Sprintf("acknowledged context %s is lost: %v", id, err))
		case c.Content != content:
			probs = append(probs, fmt.Sprintf("acknowledged context %s has content %.40q, want %.40q", id, c.Content, content))
		}
	}
	probs = append(probs, p.checkStored(s)...)
	if lost > 0 {
		probs = append([]string{fmt.Sprintf("%d of %d acknowledged contexts lost", lost, len(p.acked))}, probs...)
	}
	return probs
}

// checkStored verifies that every stored context was written by the test,
// once; it counts the indeterminate writes that were committed.
func (p *powerLoss) checkStored(s *Store) []string {
	s.cat.mu.RLock()
	ids := make([]nexus.ID, 0, len(s.cat.ordered))
	for _, e := range s.cat.ordered {
		ids = append(ids, e.id)
	}
	s.cat.mu.RUnlock()
	var probs []string
	seen := map[string]nexus.ID{}
	p.presentIndeterminate = 0
	for _, id := range ids {
		c, err := s.Get(context.Background(), id)
		if err != nil {
			probs = append(probs, fmt.Sprintf("stored context %s is unreadable: %v", id, err))
			continue
		}
		if other, dup := seen[c.Content]; dup {
			probs = append(probs, fmt.Sprintf("content of %s stored twice (also %s)", id, other))
		}
		seen[c.Content] = id
		if !p.written[c.Content] {
			probs = append(probs, fmt.Sprintf("stored context %s was never written: %.40q", id, c.Content))
		}
		if _, ok := p.acked[id]; !ok {
			p.presentIndeterminate++
		}
	}
	return probs
}

func (p *powerLoss) report() {
	p.t.Logf("%d crashes; %d acknowledged contexts, each checked after every later crash: 0 lost, 0 duplicated; %d writes cut off by a crash, %d of them committed anyway; %d packs at the end",
		p.rounds, len(p.acked), p.indeterminate, p.presentIndeterminate, p.packs)
}

// summary shows the first problems of a list.
func summary(probs []string) string {
	const show = 8
	if len(probs) <= show {
		return strings.Join(probs, "\n")
	}
	return fmt.Sprintf("%s\n... and %d more", strings.Join(probs[:show], "\n"), len(probs)-show)
}
