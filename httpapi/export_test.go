package httpapi

import (
	"bytes"
	"io"
	"net/http"

	"github.com/nexus-mem/nexus"
)

// DecodeDraft exposes the request decoder to the fuzz test;
// DecodeDraftStrict its strict path alone, which its fast path must equal.
var (
	DecodeDraft       = decodeDraft
	DecodeDraftStrict = decodeDraftStrict
)

// DecodeSearch exposes the search request decoder to the fuzz test.
func DecodeSearch(body []byte) (nexus.SearchRequest, error) {
	var req nexus.SearchRequest
	err := decodeObject(body, &req, searchFields)
	return req, err
}

// EventsRequest exposes the GET /v1/events request decoder to the fuzz test.
var EventsRequest = eventsRequest

// FormatEvent returns ev in the text/event-stream format.
func FormatEvent(ev nexus.Event) []byte {
	var buf bytes.Buffer
	appendEvent(&buf, ev)
	return buf.Bytes()
}

// ReadSSE reads a whole event stream as the client does: its events (an
// id record is an event without a type) and the id it would resume from.
func ReadSSE(r io.Reader) (evs []nexus.Event, lastID string, err error) {
	sr := newSSEReader(r)
	for {
		it, err := sr.next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return evs, sr.lastID, err
		}
		if it.idOnly {
			it.ev.Type = ""
		}
		evs = append(evs, it.ev)
	}
}

// Patterns returns the patterns s registered with its mux, in order.
func Patterns(s *Server) []string { return s.patterns }

// MatchedPattern returns the pattern of s's mux that r reaches, or "".
func MatchedPattern(s *Server, r *http.Request) string {
	_, p := s.mux.Handler(r)
	return p
}

// Codes is every error code; StatusOf its HTTP status; CodeOf the code
// a client reads from a bare status.
var (
	Codes    = codes
	StatusOf = statusOf
	CodeOf   = codeOf
)

// SessionCount is how many sessions s holds.
func SessionCount(s *Server) int { return s.sessions.len() }

// DecodeSessionRequest exposes the login's decoder to the fuzz test.
var DecodeSessionRequest = decodeSessionRequest
