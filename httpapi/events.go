package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nexus-mem/nexus"
)

// DefaultKeepAlive is how often an idle event stream gets a comment,
// unless Options say otherwise.
const DefaultKeepAlive = 15 * time.Second

// eventsRequest reads the filter and the id to resume from of a
// GET /v1/events request. The Last-Event-ID header wins over the
// last_event_id parameter: a browser's EventSource sends the header when
// it reconnects, with the URL it was first given.
func eventsRequest(r *http.Request) (nexus.EventFilter, string, error) {
	q, err := parseQuery(r, "namespace", "type", "agent", "last_event_id")
	if err != nil {
		return nexus.EventFilter{}, "", err
	}
	f := nexus.EventFilter{Namespace: q["namespace"], Type: nexus.Type(q["type"]), AgentID: q["agent"]}
	if err := f.Validate(); err != nil {
		return f, "", err
	}
	last := q["last_event_id"]
	switch hs := r.Header.Values("Last-Event-ID"); len(hs) {
	case 0:
	case 1:
		last = hs[0]
	default:
		return f, "", nexus.Errorf(nexus.EInvalid, "header Last-Event-ID is given %d times", len(hs))
	}
	return f, last, nil
}

func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) error {
	if s.events == nil {
		return nexus.Errorf(nexus.ENotFound, "events are not enabled on this server")
	}
	f, last, err := eventsRequest(r)
	if err != nil {
		return err
	}
	release, err := s.limits.openStream(principalName(r.Context()))
	if err != nil {
		if nexus.ErrorCode(err) == nexus.EUnavailable {
			retryAfter(w, time.Second)
		}
		return err
	}
	defer release()
	sub, err := s.events.Subscribe(r.Context(), f, last)
	if err != nil {
		return err
	}
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // tell proxies not to buffer the stream
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	s.stream(r.Context(), w, sub, last)
	return nil
}

// stream writes sub's events to w until the client goes or the
// subscription ends. Each write gets its own deadline, so the server's
// WriteTimeout does not cut the stream (its ReadTimeout does not either:
// net/http clears the read deadline once a request without a body is
// read), and a client that stops reading is dropped after twice the
// keep-alive interval; it resumes from its last event id.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, sub nexus.Subscription, last string) {
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	buf.WriteString("retry: 1000\n")
	lastID := sub.Position()
	if last == "" {
		// A client that connected without an id gets one at once, so that
		// it resumes from here should it lose the connection before the
		// first event.
		buf.WriteString("id: " + lastID + "\n")
	}
	buf.WriteString("\n")
	flush := func() bool {
		rc.SetWriteDeadline(time.Now().Add(2 * s.beat))
		_, err := w.Write(buf.Bytes())
		if err == nil {
			err = rc.Flush()
		}
		buf.Reset()
		return err == nil
	}
	if !flush() {
		return
	}
	polled, cancel := context.WithCancel(ctx)
	cancel() // Next with a done context returns only what is waiting
	for {
		wait, stop := context.WithTimeout(ctx, s.beat)
		ev, err := sub.Next(wait)
		stop()
		switch {
		case err == nil:
			for err == nil && buf.Len() < 32<<10 { // each write gets its deadline: a slow reader keeps up
				appendEvent(&buf, ev)
				lastID = ev.ID
				ev, err = sub.Next(polled)
			}
			if err == nil {
				appendEvent(&buf, ev)
				lastID = ev.ID
			}
		case ctx.Err() != nil:
			return
		case errors.Is(err, context.DeadlineExceeded):
			buf.WriteString(": keep-alive\n")
			if p := sub.Position(); p != lastID {
				// Filtered-out events moved the position: an id record
				// (no data, so no event) keeps the client's up to date.
				buf.WriteString("id: " + p + "\n")
				lastID = p
			}
			buf.WriteString("\n")
		default:
			// The stream ended (server shutting down, store failing): the
			// client reconnects and resumes.
			if nexus.ErrorCode(err) == nexus.EInternal {
				s.log.Error("event stream failed", "err", err)
			}
			buf.WriteString(": stream ended: " + oneLine(nexus.ErrorMessage(err)) + "\n\n")
			flush()
			return
		}
		if !flush() {
			return
		}
	}
}

// oneLine keeps a message on one line of an event stream.
func oneLine(s string) string {
	return string(bytes.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, []byte(s)))
}
