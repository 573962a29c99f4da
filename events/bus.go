package events

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus-mem/nexus"
)

// Options configure a [Bus]. The zero value works.
type Options struct {
	// Ring is how many recent events the bus keeps in memory for the
	// subscribers that read them live; 0 means 4096. A subscriber that
	// falls further behind reads from the store instead.
	Ring int
	// RingBytes bounds the data of those events; 0 means 32 MiB.
	RingBytes int64
	// Marks is how many recent events other than contexts (restores,
	// published events) the bus keeps to replay them to subscribers that
	// resume; 0 means 1024.
	Marks int
	// Page is how many contexts are read from the store at a time; 0
	// means 256.
	Page int
	// Poll is how often the store is read when no [Bus.Notify] came; 0
	// means one second.
	Poll time.Duration
	// Now is the clock that numbers the marks of this process; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives store failures of the reader; nil discards.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Ring <= 0 {
		o.Ring = 4096
	}
	if o.RingBytes <= 0 {
		o.RingBytes = 32 << 20
	}
	if o.Marks <= 0 {
		o.Marks = 1024
	}
	if o.Page <= 0 {
		o.Page = 256
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// MaxEventData bounds the data of a published event.
const MaxEventData = 1 << 20

// Bus is the live event stream of a store. It implements
// [nexus.EventSource] and is safe for concurrent use.
type Bus struct {
	store nexus.Store
	opts  Options
	log   *slog.Logger
	kick  chan struct{} // Notify wakes the reader
	// handed wakes it for contexts handed over by Added, which it
	// publishes without reading the store.
	handed chan struct{}

	mu sync.Mutex
	// ring holds the last events published, oldest first; ring[0] has
	// sequence number first.
	ring      []*entry
	first     uint64
	ringBytes int64
	// marks holds the last marks published, oldest first; marks[0] has
	// number firstMark, the next one gets nextMark, the first of this
	// process got mark0. lastEvicted is the newest mark dropped.
	marks       []*entry
	firstMark   uint64
	nextMark    uint64
	mark0       uint64
	lastEvicted *entry
	// pos is the reader's position: the newest context published, or what
	// the last restore kept; head is the position after the last event.
	pos  nexus.ID
	head position
	// restores are restores reported and not yet published; restoreGen
	// counts the reports.
	restores   []Restore
	restoreGen uint64
	// added are the contexts the store's writer handed over ([Bus.Added])
	// and not published yet, batch by batch in commit order; addedLen
	// counts their contexts.
	added    []addedBatch
	addedLen int
	// wake is closed when events are published or the bus stops.
	wake    chan struct{}
	stopped bool
}

// addedBatch is the events of the contexts of one commit, which follow
// context prev.
type addedBatch struct {
	prev nexus.ID
	ents []*entry
}

var _ nexus.EventSource = (*Bus)(nil)

// entry is one event of the stream as the bus keeps it.
type entry struct {
	seq   uint64 // in the ring
	ev    nexus.Event
	about nexus.EventFilter
	after position // the position after the event
	// Marks only: prev is the reader's position when the mark was
	// published; gone is the range a restore rolled back.
	prev nexus.ID
	gone [2]nexus.ID
	size int64
}

// NewBus returns a bus for store. Its stream starts after the newest
// context store holds; [Bus.Run] makes it follow the store.
func NewBus(ctx context.Context, store nexus.Store, opts Options) (*Bus, error) {
	opts.setDefaults()
	p, err := store.List(ctx, nexus.Filter{Limit: 1})
	if err != nil {
		return nil, err
	}
	b := &Bus{store: store, opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), handed: make(chan struct{}, 1), first: 1, wake: make(chan struct{})}
	if len(p.Contexts) > 0 {
		b.pos = p.Contexts[0].ID
	}
	b.mark0 = max(uint64(opts.Now().UnixMicro()), 1)
	b.firstMark, b.nextMark = b.mark0, b.mark0
	b.head = position{ctx: b.pos, mark: b.mark0 - 1}
	return b, nil
}

// Notify tells the bus that the store committed. It never blocks; wire it
// to the store's commit hook (gitstore.Options.OnCommit).
func (b *Bus) Notify() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Added is a context a commit of the store added, for [Bus.Added].
type Added struct {
	ID        nexus.ID
	Namespace string
	Type      nexus.Type
	AgentID   string
	// JSON is the context as GET /v1/contexts/{id} returns it (a final
	// newline is left out of the event). It must not be modified.
	JSON []byte
}

// Added hands the bus the contexts a commit added, in commit order, and
// prev, the newest context the store held before it (zero: none). The
// bus publishes them as they are, without reading them back from the
// store, if it has published prev and nothing after it; otherwise it
// reads the store as after [Bus.Notify]. Call it from the store's writer,
// which sees the commits and restores in order (gitstore.Options.OnContexts);
// it wakes the bus and never blocks.
func (b *Bus) Added(prev nexus.ID, cs []Added) {
	if len(cs) == 0 {
		return
	}
	ents := make([]*entry, len(cs))
	last := prev
	for i, c := range cs {
		if c.ID.Compare(last) <= 0 {
			// Out of the store's order: reading the store places it.
			b.Notify()
			return
		}
		last = c.ID
		ents[i] = &entry{
			ev:    nexus.Event{Type: nexus.EventContext, ID: c.ID.String(), Data: bytes.TrimSuffix(c.JSON, []byte("\n"))},
			about: nexus.EventFilter{Namespace: c.Namespace, Type: c.Type, AgentID: c.AgentID},
			after: position{ctx: c.ID, implied: true},
		}
	}
	b.mu.Lock()
	if b.addedLen+len(ents) > b.opts.Ring {
		// The bus is that far behind: it reads the store instead.
		b.added, b.addedLen = nil, 0
	} else {
		b.added = append(b.added, addedBatch{prev: prev, ents: ents})
		b.addedLen += len(ents)
	}
	b.mu.Unlock()
	select {
	case b.handed <- struct{}{}:
	default:
	}
}

// Restore describes a point-in-time restore for [Bus.Restored].
type Restore struct {
	LastKept  nexus.ID // the newest context kept
	FirstGone nexus.ID // the first context rolled back
	LastGone  nexus.ID // the last context rolled back
	// Plan is the event's data: the restore plan, a JSON object.
	Plan json.RawMessage
}

// Restored reports a restore that moved the store back. Call it from the
// store's writer, before any later commit (gitstore.Options.OnRestore), so
// that the bus orders it exactly. It never blocks.
func (b *Bus) Restored(r Restore) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, r.Plan); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		buf.Reset()
		json.NewEncoder(&buf).Encode(map[string]nexus.ID{"last_kept": r.LastKept, "first_rolled_back": r.FirstGone, "last_rolled_back": r.LastGone})
	}
	r.Plan = bytes.TrimSpace(buf.Bytes())
	b.mu.Lock()
	// The contexts handed over before the restore may be gone: the
	// restore's publication reads the store for those it kept.
	b.added, b.addedLen = nil, 0
	b.restores = append(b.restores, r)
	b.restoreGen++
	b.mu.Unlock()
	b.Notify()
}

// Publish puts an event that is not a context on the stream, after
// everything published so far, and returns it with its id. e.Type names
// it (1 to 64 of a-z 0-9 _ . -, starting with a letter; not one of the
// types the memory publishes itself) and e.Data is JSON; e.ID must be
// empty. about says what the event concerns, for subscribers' filters: an
// agent's status would set AgentID. Published events are kept in memory
// only: see the package documentation.
func (b *Bus) Publish(e nexus.Event, about nexus.EventFilter) (nexus.Event, error) {
	if err := checkType(e.Type); err != nil {
		return e, err
	}
	if e.ID != "" {
		return e, nexus.Errorf(nexus.EInvalid, "a published event gets its id from the bus: leave ID empty")
	}
	if err := about.Validate(); err != nil {
		return e, err
	}
	if len(e.Data) > MaxEventData {
		return e, nexus.Errorf(nexus.ETooLarge, "event data is %d bytes, over the limit of %d", len(e.Data), MaxEventData)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, e.Data); err != nil {
		return e, nexus.Errorf(nexus.EInvalid, "event data is not valid JSON: %v", err)
	}
	en := &entry{ev: nexus.Event{Type: e.Type, Data: buf.Bytes()}, about: about}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return e, errStopped
	}
	b.publishMarkLocked(en, b.pos)
	b.broadcastLocked()
	return en.ev, nil
}

var errStopped = nexus.Errorf(nexus.EUnavailable, "the event stream has stopped: the server is shutting down")

func checkType(t string) error {
	switch t {
	case nexus.EventContext, nexus.EventRestore, nexus.EventResync:
		return nexus.Errorf(nexus.EInvalid, "event type %q is reserved for the memory's own events", t)
	}
	ok := len(t) >= 1 && len(t) <= 64 && t[0] >= 'a' && t[0] <= 'z'
	for i := 0; ok && i < len(t); i++ {
		c := t[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
	}
	if !ok {
		return nexus.Errorf(nexus.EInvalid, "invalid event type %q: want 1-64 of a-z 0-9 _ . -, starting with a letter", clip(t, 80))
	}
	return nil
}

// Run follows the store until ctx is done: after each Notify, and every
// Poll interval, it publishes the contexts committed since, and the
// restores reported, in commit order. When it returns, every
// subscription ends.
func (b *Bus) Run(ctx context.Context) error {
	defer b.stop()
	tick := time.NewTicker(b.opts.Poll)
	defer tick.Stop()
	read := true
	for {
		more, err := b.step(ctx, read)
		if err != nil && ctx.Err() == nil {
			b.log.Warn("events: reading the store failed; retrying", "err", err)
			more = false
		}
		if read = more; more {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.kick:
			read = true
		case <-b.handed:
		case <-tick.C:
			read = true
		}
	}
}

func (b *Bus) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	b.broadcastLocked()
}

// step publishes the first restore reported, if any, or else the
// contexts handed over that follow the reader's position and, if read or
// they do not follow it, one page of the contexts after it from the
// store. more says whether there may be more to publish at once.
func (b *Bus) step(ctx context.Context, read bool) (more bool, err error) {
	b.mu.Lock()
	var r *Restore
	if len(b.restores) > 0 {
		r = &b.restores[0]
	}
	if r == nil && !b.publishAddedLocked() && !read {
		b.mu.Unlock()
		return false, nil
	}
	gen, pos := b.restoreGen, b.pos
	b.mu.Unlock()
	if r != nil {
		return true, b.publishRestore(ctx, *r)
	}
	cs, err := b.page(ctx, pos, nexus.EventFilter{})
	if err != nil {
		return false, err
	}
	ents, err := contextEntries(cs)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.restoreGen != gen {
		// A restore was reported while the page was read: the page may
		// hold contexts committed after it, which must come after it.
		return true, nil
	}
	b.publishContextsLocked(ents)
	return len(cs) == b.opts.Page, nil
}

// publishRestore publishes the contexts the restore kept that are not
// published yet, then the restore, whose position is what it kept.
func (b *Bus) publishRestore(ctx context.Context, r Restore) error {
	for {
		b.mu.Lock()
		pos := b.pos
		b.mu.Unlock()
		cs, err := b.page(ctx, pos, nexus.EventFilter{})
		if err != nil {
			return err
		}
		n := len(cs)
		for len(cs) > 0 && cs[len(cs)-1].ID.Compare(r.LastKept) > 0 {
			cs = cs[:len(cs)-1]
		}
		ents, err := contextEntries(cs)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.publishContextsLocked(ents)
		if len(cs) == b.opts.Page && n == len(cs) {
			b.mu.Unlock()
			continue
		}
		en := &entry{ev: nexus.Event{Type: nexus.EventRestore, Data: r.Plan}, gone: [2]nexus.ID{r.FirstGone, r.LastGone}}
		prev := b.pos
		b.pos = r.LastKept
		b.publishMarkLocked(en, prev)
		b.restores = b.restores[1:]
		b.broadcastLocked()
		b.mu.Unlock()
		return nil
	}
}

// page reads up to Page contexts after id (zero: from the first) that f
// selects, oldest first.
func (b *Bus) page(ctx context.Context, after nexus.ID, f nexus.EventFilter) ([]*nexus.Context, error) {
	lf := nexus.Filter{Namespace: f.Namespace, Type: f.Type, AgentID: f.AgentID, Order: nexus.Oldest, Limit: b.opts.Page}
	if !after.IsZero() {
		lf.Cursor = after.String()
	}
	p, err := b.store.List(ctx, lf)
	if err != nil {
		return nil, err
	}
	return p.Contexts, nil
}

// contextEntries renders contexts as events, their data as
// GET /v1/contexts/{id} returns them.
func contextEntries(cs []*nexus.Context) ([]*entry, error) {
	ents := make([]*entry, len(cs))
	for i, c := range cs {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(c); err != nil {
			return nil, nexus.WrapError(nexus.EInternal, err, "encoding context %s", c.ID)
		}
		ents[i] = &entry{
			ev:    nexus.Event{Type: nexus.EventContext, ID: c.ID.String(), Data: bytes.TrimSuffix(buf.Bytes(), []byte("\n"))},
			about: nexus.EventFilter{Namespace: c.Namespace, Type: c.Type, AgentID: c.AgentID},
			after: position{ctx: c.ID, implied: true},
		}
	}
	return ents, nil
}

// publishAddedLocked publishes the contexts handed over by [Bus.Added]
// that follow the reader's position, dropping those it has published
// already. It reports whether it stopped at a gap, which the store fills.
func (b *Bus) publishAddedLocked() (gap bool) {
	for len(b.added) > 0 {
		a := b.added[0]
		switch {
		case a.prev == b.pos:
			b.publishContextsLocked(a.ents)
		case a.ents[len(a.ents)-1].after.ctx.Compare(b.pos) > 0:
			return true
		}
		b.added[0] = addedBatch{}
		b.added = b.added[1:]
		b.addedLen -= len(a.ents)
	}
	return false
}

func (b *Bus) publishContextsLocked(ents []*entry) {
	for _, e := range ents {
		e.after.mark = b.nextMark - 1
		b.pos = e.after.ctx
		b.pushLocked(e)
	}
	if len(ents) > 0 {
		b.broadcastLocked()
	}
}

// publishMarkLocked numbers the mark e, whose position in the contexts is
// b.pos (for a restore, what it kept), and publishes it.
func (b *Bus) publishMarkLocked(e *entry, prev nexus.ID) {
	e.prev = prev
	e.after = position{ctx: b.pos, mark: b.nextMark}
	e.ev.ID = e.after.String()
	b.nextMark++
	b.marks = append(b.marks, e)
	if len(b.marks) > b.opts.Marks {
		b.lastEvicted = b.marks[0]
		b.marks[0] = nil
		b.marks = b.marks[1:]
		b.firstMark++
	}
	b.pushLocked(e)
}

// pushLocked appends e to the ring, dropping the oldest events beyond
// its bounds.
func (b *Bus) pushLocked(e *entry) {
	e.seq = b.first + uint64(len(b.ring))
	e.size = int64(len(e.ev.Data) + len(e.ev.ID) + len(e.ev.Type) + 64)
	b.ring = append(b.ring, e)
	b.ringBytes += e.size
	b.head = e.after
	b.head.implied = false
	for len(b.ring) > 1 && (len(b.ring) > b.opts.Ring || b.ringBytes > b.opts.RingBytes) {
		b.ringBytes -= b.ring[0].size
		b.ring[0] = nil
		b.ring = b.ring[1:]
		b.first++
	}
}

func (b *Bus) broadcastLocked() {
	close(b.wake)
	b.wake = make(chan struct{})
}
