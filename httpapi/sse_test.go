package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

func TestReadSSE(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		want         []nexus.Event
		lastID       string
	}{
		{"two events", "retry: 10\nid: 0.1\n\nevent: context\nid: A\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: restore\nid: B\ndata: {}\n\n",
			[]nexus.Event{{ID: "0.1"}, {Type: "context", ID: "A", Data: json.RawMessage(`{"a":1}`)}, {Type: "restore", ID: "B", Data: json.RawMessage(`{}`)}}, "B"},
		{"cut inside an event: its id does not count", "event: context\nid: A\ndata: 1\n\nevent: context\nid: B\ndata: 2\n",
			[]nexus.Event{{Type: "context", ID: "A", Data: json.RawMessage(`1`)}}, "A"},
		{"CR and CRLF line ends, BOM, multi-line data", "\uFEFFid: A\r\ndata: [1,\rdata: 2]\r\n\r\n",
			[]nexus.Event{{Type: "message", ID: "A", Data: json.RawMessage("[1,\n2]")}}, "A"},
		{"the id persists, a NUL id is ignored, no space after the colon", "id:X\ndata:1\n\nid: Y\x00\ndata: 2\n\n",
			[]nexus.Event{{Type: "message", ID: "X", Data: json.RawMessage(`1`)}, {Type: "message", ID: "X", Data: json.RawMessage(`2`)}}, "X"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, last, err := httpapi.ReadSSE(strings.NewReader(tc.stream))
			if err != nil || last != tc.lastID || !slices.EqualFunc(evs, tc.want, sameEvent) {
				t.Errorf("got %+v, last id %q, %v; want %+v, %q", evs, last, err, tc.want, tc.lastID)
			}
		})
	}
	if _, _, err := httpapi.ReadSSE(strings.NewReader("data: not json\n\n")); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Errorf("data that is not JSON: %v", err)
	}
}

func sameEvent(a, b nexus.Event) bool {
	return a.Type == b.Type && a.ID == b.ID && bytes.Equal(a.Data, b.Data)
}

// The stream reader never fails but on data that is not JSON, and what it
// reads, written again, reads the same.
func FuzzReadSSE(f *testing.F) {
	for _, seed := range []string{
		"event: context\nid: 01KB2W3G6T0Q5A9QYQ7M3N8C2D\ndata: {\"a\":\"b\"}\n\n",
		"retry: 1000\nid: 0.5\n\n: keep-alive\n\n", "data: 1\rdata: 2\r\n\r\n", "\uFEFFdata:[]\n\n",
		"id: \x00\n\n", "event:\ndata: null\n\n", "data: {\n\ndata: }\n\n", "data", ":\n\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		evs, _, err := httpapi.ReadSSE(bytes.NewReader(stream))
		if err != nil {
			if nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("error %v is not invalid", err)
			}
			return
		}
		var again bytes.Buffer
		for _, ev := range evs {
			if strings.ContainsAny(ev.ID, "\x00\r\n") || strings.ContainsAny(ev.Type, "\r\n") {
				t.Fatalf("event %+v has a line break or NUL", ev)
			}
			if ev.Type == "" {
				again.WriteString("id: " + ev.ID + "\n\n")
				continue
			}
			if !json.Valid(ev.Data) {
				t.Fatalf("event %+v has data that is not JSON", ev)
			}
			again.Write(httpapi.FormatEvent(ev))
		}
		evs2, _, err := httpapi.ReadSSE(&again)
		if err != nil || !slices.EqualFunc(evs, evs2, sameEvent) {
			t.Fatalf("written again and read, %+v became %+v (%v)", evs, evs2, err)
		}
	})
}

// The request decoder either fails with an invalid error or returns a
// valid filter and the id given (the header over the parameter).
func FuzzEventsRequest(f *testing.F) {
	for _, seed := range [][2]string{
		{"namespace=a&type=code&agent=x", ""}, {"last_event_id=01KB2W3G6T0Q5A9QYQ7M3N8C2D", "0.1"},
		{"type=bogus", ""}, {"namespace=A%20b", ""}, {"x=1", ""}, {"agent=%zz", ""}, {"type=memory&type=code", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, query, header string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/v1/events", RawQuery: query}, Header: http.Header{}}
		if header != "" {
			r.Header.Set("Last-Event-ID", header)
		}
		filter, last, err := httpapi.EventsRequest(r)
		if err != nil {
			var e *nexus.Error
			if !errors.As(err, &e) || e.Code != nexus.EInvalid || e.Message == "" {
				t.Fatalf("error %v is not an invalid *nexus.Error with a message", err)
			}
			return
		}
		if err := filter.Validate(); err != nil {
			t.Fatalf("accepted an invalid filter %+v: %v", filter, err)
		}
		want := header
		if want == "" {
			q, _ := url.ParseQuery(query)
			want = q.Get("last_event_id")
		}
		if last != want {
			t.Fatalf("last event id %q, want %q", last, want)
		}
	})
}
