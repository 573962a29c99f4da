package events

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/nexus-mem/nexus"
)

// subscription reads the stream for one subscriber: from the ring while it
// keeps up, from the store (merged with the marks) while it catches up.
type subscription struct {
	b    *Bus
	f    nexus.EventFilter
	life context.Context // bounds the subscription, and its store reads

	at     position // after the last event passed over
	next   uint64   // the ring's next entry to read, when not replaying
	replay *replay  // set while catching up from the store
	queue  []*entry // read and not yet passed over, oldest first
	qi     int

	closeOnce sync.Once
	closed    chan struct{}
}

// replay is the state of a subscriber catching up: it reads the contexts
// after ctx from the store, and puts each mark where it was published
// (after the contexts up to its prev), until it reaches the ring's entry
// tail, after which the ring takes over.
type replay struct {
	ctx   nexus.ID // contexts after it are still to be read
	mark  uint64   // the last mark passed
	marks []*entry // the marks still to pass, oldest first
	tp    nexus.ID // the reader's position at entry tail
	tail  uint64
}

// Subscribe implements [nexus.EventSource]. lastEventID is an id this
// stream sent, or "" to start with the next event.
func (b *Bus) Subscribe(ctx context.Context, f nexus.EventFilter, lastEventID string) (nexus.Subscription, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	s := &subscription{b: b, f: f, life: ctx, closed: make(chan struct{})}
	if lastEventID == "" {
		b.mu.Lock()
		s.next, s.at = b.first+uint64(len(b.ring)), b.head
		b.mu.Unlock()
		return s, nil
	}
	p, err := parsePosition(lastEventID)
	if err != nil {
		return nil, err
	}
	start, resync, err := b.resolve(ctx, p)
	if err != nil {
		return nil, err
	}
	// The position is the subscriber's until a resync says otherwise.
	s.at = start
	if resync != nil {
		s.at = p
		s.queue = append(s.queue, resync)
	}
	s.beginReplay(start)
	return s, nil
}

// Next implements [nexus.Subscription].
func (s *subscription) Next(ctx context.Context) (nexus.Event, error) {
	for {
		for s.qi < len(s.queue) {
			e := s.queue[s.qi]
			s.queue[s.qi] = nil
			s.qi++
			s.at = e.after
			if e.ev.Type != "" && s.f.Match(e.about) {
				return e.ev, nil
			}
		}
		s.queue, s.qi = s.queue[:0], 0
		if err := s.ended(); err != nil {
			return nexus.Event{}, err
		}
		if s.replay != nil {
			if err := s.replayStep(); err != nil {
				return nexus.Event{}, err
			}
			continue
		}
		wake, err := s.fromRing()
		if err != nil {
			return nexus.Event{}, err
		}
		if wake == nil {
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nexus.Event{}, ctx.Err()
		case <-s.life.Done():
		case <-s.closed:
		}
	}
}

// ended returns why the subscription is over, or nil.
func (s *subscription) ended() error {
	select {
	case <-s.closed:
		return nexus.Errorf(nexus.EUnavailable, "the subscription is closed")
	default:
	}
	return s.life.Err()
}

// Position implements [nexus.Subscription].
func (s *subscription) Position() string { return s.at.String() }

// Close implements [nexus.Subscription]; it may be called from any
// goroutine, and ends a Next that waits.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// fromRing queues the ring's entries after the subscriber's, or starts a
// replay if the ring no longer holds them; with nothing to read, it
// returns the channel to wait on.
func (s *subscription) fromRing() (<-chan struct{}, error) {
	b := s.b
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return nil, errStopped
	}
	if s.next < b.first {
		b.mu.Unlock()
		s.beginReplay(s.at)
		return nil, nil
	}
	end := b.first + uint64(len(b.ring))
	if s.next == end {
		w := b.wake
		b.mu.Unlock()
		return w, nil
	}
	n := min(end-s.next, uint64(b.opts.Page))
	i := s.next - b.first
	s.queue = append(s.queue, b.ring[i:i+n]...)
	s.next += n
	b.mu.Unlock()
	return nil, nil
}

// beginReplay starts catching up from p, an explicit position. If the
// marks after p are no longer all held, a resync event says so first.
func (s *subscription) beginReplay(p position) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &replay{ctx: p.ctx, mark: p.mark, tp: b.pos, tail: b.first + uint64(len(b.ring)) - 1}
	if p.mark+1 < b.firstMark {
		r.mark = b.firstMark - 1
		s.queue = append(s.queue, resyncEntry(position{ctx: p.ctx, mark: r.mark}, "dropped",
			fmt.Sprintf("events other than contexts published after your position are no longer held (the server keeps the last %d): re-read the state you derive from them; contexts follow without a gap", b.opts.Marks), nexus.ZeroID))
	}
	for _, m := range b.marks {
		if m.after.mark > r.mark {
			r.marks = append(r.marks, m)
		}
	}
	s.replay = r
}

// replayStep queues the next stretch of the replay: up to a page of the
// contexts before the next mark (or before the reader's position), or the
// mark, or, at the end, switches to the ring.
func (s *subscription) replayStep() error {
	r := s.replay
	bound := r.tp
	if len(r.marks) > 0 {
		bound = r.marks[0].prev
	}
	if r.ctx.Compare(bound) < 0 {
		cs, err := s.b.page(s.life, r.ctx, s.f)
		if err != nil {
			return err
		}
		full := len(cs) == s.b.opts.Page
		for len(cs) > 0 && cs[len(cs)-1].ID.Compare(bound) > 0 {
			cs, full = cs[:len(cs)-1], false
		}
		ents, err := contextEntries(cs)
		if err != nil {
			return err
		}
		for _, e := range ents {
			e.after.mark = r.mark
		}
		s.queue = append(s.queue, ents...)
		if full {
			r.ctx = cs[len(cs)-1].ID
			return nil
		}
		// Whatever the filter left out up to bound is passed over too.
		r.ctx = bound
		s.queue = append(s.queue, &entry{after: position{ctx: bound, mark: r.mark}})
		return nil
	}
	if len(r.marks) > 0 {
		m := r.marks[0]
		r.marks = r.marks[1:]
		r.ctx, r.mark = m.after.ctx, m.after.mark
		s.queue = append(s.queue, m)
		return nil
	}
	s.replay, s.next = nil, r.tail+1
	return nil
}

// resolve turns the id a subscriber resumes from into an explicit
// position to replay from, with a resync event to send first when the
// stream cannot be resumed exactly.
func (b *Bus) resolve(ctx context.Context, p position) (position, *entry, error) {
	if p.implied {
		return b.resolveContext(ctx, p.ctx)
	}
	b.mu.Lock()
	exact := p.mark+1 >= b.firstMark && p.mark < b.nextMark
	restarted := p.mark+1 < b.mark0
	dropped := !restarted && p.mark < b.nextMark
	b.mu.Unlock()
	if exact {
		return p, nil, nil
	}
	start, resync, err := b.resolveContext(ctx, p.ctx)
	switch {
	case err != nil || resync != nil:
		return start, resync, err
	case dropped:
		return p, nil, nil // beginReplay says what was dropped
	case restarted:
		return start, resyncEntry(start, "restart", "the server restarted after this id: events other than contexts that the previous server published are not replayed; contexts follow without a gap", nexus.ZeroID), nil
	}
	return start, resyncEntry(start, "unknown", "this id names no event of this stream; contexts follow without a gap", nexus.ZeroID), nil
}

// resolveContext finds where a subscriber whose last event was context id
// (or the zero id: nothing yet) resumes. The marks after it are those
// published while the reader's position was at or after id; if id is not
// in the memory any more, a restore the bus holds explains it, or else the
// subscriber is told to resync after the newest context before id.
func (b *Bus) resolveContext(ctx context.Context, id nexus.ID) (position, *entry, error) {
	live := id.IsZero()
	if !live {
		_, err := b.store.Get(ctx, id)
		switch nexus.ErrorCode(err) {
		case "":
			live = true
		case nexus.ENotFound:
		default:
			return position{}, nil, err
		}
	}
	b.mu.Lock()
	mark, covered := b.marksAfterLocked(id)
	b.mu.Unlock()
	if live || covered {
		return position{ctx: id, mark: mark}, nil, nil
	}
	p, err := b.store.List(ctx, nexus.Filter{Order: nexus.Newest, Cursor: id.String(), Limit: 1})
	if err != nil {
		return position{}, nil, err
	}
	var kept nexus.ID
	if len(p.Contexts) > 0 {
		kept = p.Contexts[0].ID
	}
	b.mu.Lock()
	mark, _ = b.marksAfterLocked(kept)
	b.mu.Unlock()
	start := position{ctx: kept, mark: mark}
	msg := fmt.Sprintf("context %s is not in the memory and this server holds no restore that rolled it back (it was restored away while the server was down, or never written): drop what you hold after %s", id, kept)
	if kept.IsZero() {
		msg = fmt.Sprintf("context %s is not in the memory and this server holds no restore that rolled it back: drop everything you hold; every context follows", id)
	}
	return start, resyncEntry(start, "not_in_memory", msg, kept), nil
}

// marksAfterLocked returns the number of the last mark before context id
// in the stream (the marks after it were published while the reader's
// position was at or after id), and whether a restore the bus holds
// rolled id back.
func (b *Bus) marksAfterLocked(id nexus.ID) (mark uint64, covered bool) {
	mark = b.nextMark - 1
	found := false
	for _, m := range b.marks {
		if !found && m.prev.Compare(id) >= 0 {
			mark, found = m.after.mark-1, true
		}
		if m.ev.Type == nexus.EventRestore && m.gone[0].Compare(id) <= 0 && id.Compare(m.gone[1]) <= 0 {
			covered = true
		}
	}
	if b.lastEvicted != nil && b.lastEvicted.prev.Compare(id) >= 0 {
		mark = b.firstMark - 2 // beginReplay reports the marks dropped after id
	}
	return mark, covered
}

// resyncEntry builds a resync event whose id is the position p it leaves
// the subscriber at.
func resyncEntry(p position, reason, msg string, kept nexus.ID) *entry {
	data, _ := json.Marshal(struct {
		Reason   string   `json:"reason"`
		Message  string   `json:"message"`
		LastKept nexus.ID `json:"last_kept,omitzero"`
	}{reason, msg, kept})
	p.implied = false
	return &entry{ev: nexus.Event{Type: nexus.EventResync, ID: p.String(), Data: data}, after: p}
}
