package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/storetest"
)

// The decoder either fails with an invalid error or returns a draft that
// survives a JSON round trip unchanged.
func FuzzDecodeDraft(f *testing.F) {
	for _, seed := range []string{
		`{"type":"memory","content":"x"}`,
		`{"namespace":"a","type":"code","content":"<b>\u00e9\ud800","metadata":{"k":[1,2.5e3,null]},"agent_id":"x@y","parent_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}`,
		`{"metadata":null}`, `{"metadata":"s"}`, `{"Type":"memory"}`, `{"type":"a","type":"b"}`,
		`{"parent_id":7}`, `{"parent_id":""}`, `{"content":"x"} {}`, `[]`, `null`, ``, ` `, `{`, "{\"content\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := httpapi.DecodeDraft(body)
		if err != nil {
			var e *nexus.Error
			if !errors.As(err, &e) || e.Code != nexus.EInvalid || e.Message == "" {
				t.Fatalf("error %v is not an invalid *nexus.Error with a message", err)
			}
			return
		}
		if !utf8.Valid(body) || !utf8.ValidString(d.Content) || !utf8.ValidString(d.Namespace) || !utf8.ValidString(d.AgentID) {
			t.Fatalf("accepted invalid UTF-8: %q", body)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(d); err != nil {
			t.Fatalf("decoded draft does not encode: %v", err)
		}
		again, err := httpapi.DecodeDraft(buf.Bytes())
		if err != nil {
			t.Fatalf("re-encoded draft %s does not decode: %v", buf.Bytes(), err)
		}
		if again.Namespace != d.Namespace || again.Type != d.Type || again.Content != d.Content ||
			again.AgentID != d.AgentID || again.ParentID != d.ParentID || !sameJSON(again.Metadata, d.Metadata) {
			t.Fatalf("round trip changed the draft:\n%+v\n%+v", d, again)
		}
	})
}

// The fast path of the draft decoder gives what the strict decoder gives,
// draft or error, on any body.
func FuzzDecodeDraft_FastIsStrict(f *testing.F) {
	for _, seed := range []string{
		`{"type":"memory","content":"x"}`, ` {"type":"memory","content":"x","metadata":{"a":{"b":[1,"}"]}},"agent_id":"a"} `,
		`{"namespace":"a","type":"code","content":"<b>\u00e9\ud800\"}","metadata":{"k":[1,2.5e3,null]},"agent_id":"x@y","parent_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV"}`,
		`{"metadata":null}`, `{"metadata":"s"}`, `{"Type":"memory"}`, `{"type":"a","type":"b"}`, `{"typ\u0065":"a"}`,
		`{"parent_id":7}`, `{"parent_id":""}`, `{"content":"x"} {}`, `{"content":"x"}x`, `[]`, `null`, ``, ` `, `{`, `{}`, `{,}`,
		`{"content":}`, `{"content":1,}`, `{"content" "x"}`, `{"content":"x\`, "{\"content\":\"\xff\"}", `{"content":[}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ferr := httpapi.DecodeDraft(body)
		strict, serr := httpapi.DecodeDraftStrict(body)
		if fmt.Sprint(ferr) != fmt.Sprint(serr) {
			t.Fatalf("%q: fast path error %v, strict %v", body, ferr, serr)
		}
		if fast.Namespace != strict.Namespace || fast.Type != strict.Type || fast.Content != strict.Content || fast.AgentID != strict.AgentID ||
			fast.ParentID != strict.ParentID || !bytes.Equal(fast.Metadata, strict.Metadata) || (fast.Metadata == nil) != (strict.Metadata == nil) {
			t.Fatalf("%q: fast path %+v, strict %+v", body, fast, strict)
		}
	})
}

func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// Whatever follows /v1/contexts/, decoded or percent-encoded, the answer is
// a JSON 400 or 404: never a redirect, a success or a server error.
func FuzzParseID(f *testing.F) {
	for _, seed := range []string{
		"01ARZ3NDEKTSV4RRFFQ69G5FAV", "01arz3ndektsv4rrffq69g5fav", "00000000000000000000000000",
		"81ARZ3NDEKTSV4RRFFQ69G5FAV", "..", "../log", "..%2f", "%2e%2e", "%00", "\x00", "a/chain", "/",
		"01ARZ3NDEKTSV4RRFFQ69G5FAV/children", "01ARZ3NDEKTSV4RRFFQ69G5FA\u00dc", "./x", "%zz",
	} {
		f.Add(seed)
	}
	srv := httpapi.NewServer(storetest.NewMemStore(), httpapi.Options{})
	f.Fuzz(func(t *testing.T, s string) {
		_, idErr := nexus.ParseID(s)
		checkIDResponse(t, srv, &url.URL{Path: "/v1/contexts/" + s}, idErr == nil)
		if u, err := url.ParseRequestURI("/v1/contexts/" + s); err == nil {
			checkIDResponse(t, srv, u, idErr == nil)
		}
	})
}

func checkIDResponse(t *testing.T, srv http.Handler, u *url.URL, validID bool) {
	r := httptest.NewRequest("GET", "/", nil)
	r.URL, r.RequestURI = u, u.RequestURI()
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	var e apiError
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %q is not a JSON error", u, w.Code, w.Body.Bytes())
	}
	switch {
	case validID && (w.Code != http.StatusNotFound || e.Error.Code != nexus.ENotFound):
		t.Fatalf("GET %s with a valid id: %d %s, want 404 not_found", u, w.Code, e.Error.Code)
	case w.Code != http.StatusBadRequest && w.Code != http.StatusNotFound:
		t.Fatalf("GET %s: status %d, want 400 or 404", u, w.Code)
	}
}

// The search decoder fails with an invalid error or yields a request whose
// validation does not panic and, when it passes, has its defaults filled.
func FuzzDecodeSearch(f *testing.F) {
	for _, seed := range []string{
		`{"query":"x"}`, `{"query":"a b","mode":"semantic","limit":5,"metadata":{"k":"v","n":1.5,"b":true,"z":null}}`,
		`{"query":"x","since":"2026-01-01T00:00:00Z","until":"2025-01-01T00:00:00Z"}`, `{"query":"x","thread_id":"../x"}`,
		`{"query":"x","limit":1e400}`, `{"query":"x","min_score":-1}`, `{"Query":"x"}`, `{"query":"x","query":"y"}`,
		`{"metadata":{"k":{}}}`, `{"query":"x","as_of":7}`, `[]`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := httpapi.DecodeSearch(body)
		if err != nil {
			if nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("decode error %v is not invalid", err)
			}
			return
		}
		if req.Validate(true) == nil && (req.Limit < 1 || req.Limit > nexus.MaxSearchLimit || req.Mode == "") {
			t.Fatalf("validated request %+v lacks defaults", req)
		}
	})
}

// The login's decoder either fails with an invalid error or returns a
// token, trimmed, within its bound, that a JSON body of its own decodes
// to again.
func FuzzDecodeSessionRequest(f *testing.F) {
	for _, seed := range []string{
		`{"token":"nexus_abc"}`, `{"token":" a.b.c "}`, `{"token":""}`, `{"token":7}`, `{"Token":"x"}`,
		`{"token":"a","token":"b"}`, `{"token":"x"} {}`, `{"token":null}`, `[]`, `null`, ``, `{`, "{\"token\":\"\xff\"}",
		`{"token":"\u0000"}`, `{"token":"x","extra":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tok, err := httpapi.DecodeSessionRequest(body)
		if err != nil {
			var e *nexus.Error
			if !errors.As(err, &e) || e.Code != nexus.EInvalid || e.Message == "" {
				t.Fatalf("error %v is not an invalid error with a message", err)
			}
			return
		}
		if tok == "" || len(tok) > 16<<10 || !utf8.ValidString(tok) || strings.TrimSpace(tok) != tok {
			t.Fatalf("token %q: want non-empty, trimmed, valid UTF-8, at most 16 KiB", tok)
		}
		again, _ := json.Marshal(map[string]string{"token": tok})
		if tok2, err := httpapi.DecodeSessionRequest(again); err != nil || tok2 != tok {
			t.Fatalf("%q decodes to %q, %v; want %q", again, tok2, err, tok)
		}
	})
}
