package embed

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
)

// The OpenAI embeddings wire format, as spoken by OpenAI, Ollama, vLLM,
// llama.cpp server and Hugging Face TEI:
//
//	POST /v1/embeddings {"model":"m","input":["a","b"]}
//	200 {"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,...]},...],
//	     "model":"m","usage":{"prompt_tokens":4,"total_tokens":4}}
//	4xx/5xx {"error":{"message":"...","type":"...","code":"..."}}

type embeddingRequest struct {
	Model string   `json:"model"`
	Input []string `json:"input"`
}

type embeddingResponse struct {
	Data  []embeddingDatum `json:"data"`
	Usage struct {
		TotalTokens int64 `json:"total_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type embeddingDatum struct {
	Index     *int      `json:"index"`
	Embedding []float32 `json:"embedding"`
}

// decodeError is a response that does not follow the wire format. It is
// retryable when the body is not JSON at all, as when it was cut short; a
// well-formed body with the wrong content will be wrong again.
type decodeError struct {
	err       *nexus.Error
	retryable bool
}

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

func malformed(retryable bool, format string, args ...any) *decodeError {
	return &decodeError{err: nexus.Errorf(nexus.EUnavailable, format, args...), retryable: retryable}
}

// decodeResponse returns the n vectors of a successful response body, in
// input order, and the tokens the provider counted. dim is the expected
// dimension, or 0 if unknown, in which case every vector must have the
// length of the first. Errors are *decodeError values with code
// unavailable; secret never appears in them.
func decodeResponse(body []byte, n, dim int, secret string) ([][]float32, int64, error) {
	var resp embeddingResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			if nonFinite(body, syntax.Offset) {
				return nil, 0, malformed(false, "embedding response holds a non-finite number (NaN or Infinity)")
			}
			return nil, 0, malformed(true, "embedding response is not JSON (%v): %s", err, snippet(body, secret))
		}
		return nil, 0, malformed(false, "embedding response does not follow the OpenAI format: %v", err)
	}
	if len(resp.Data) == 0 && len(resp.Error) > 0 && string(resp.Error) != "null" {
		return nil, 0, malformed(false, "embedding provider answered with an error: %s", errorBodyMessage(body, secret))
	}
	if len(resp.Data) != n {
		return nil, 0, malformed(false, "embedding response has %d embeddings for %d inputs", len(resp.Data), n)
	}
	out := make([][]float32, n)
	seen := make([]bool, n)
	for i, d := range resp.Data {
		switch {
		case d.Index == nil:
			return nil, 0, malformed(false, "embedding %d of the response has no index", i)
		case *d.Index < 0 || *d.Index >= n:
			return nil, 0, malformed(false, "embedding response has index %d, want 0 to %d", *d.Index, n-1)
		case seen[*d.Index]:
			return nil, 0, malformed(false, "embedding response has index %d twice", *d.Index)
		case len(d.Embedding) == 0:
			return nil, 0, malformed(false, "embedding %d of the response is empty", *d.Index)
		}
		seen[*d.Index] = true
		if dim == 0 {
			dim = len(d.Embedding)
		}
		if err := nexus.CheckVector(d.Embedding, dim); err != nil {
			return nil, 0, malformed(false, "embedding %d of the response: %s", *d.Index, nexus.ErrorMessage(err))
		}
		out[*d.Index] = d.Embedding
	}
	return out, max(resp.Usage.TotalTokens, 0), nil
}

// nonFinite reports whether a syntax error at offset is a NaN or an
// Infinity, which some servers (Python's json module) write although JSON
// has no such numbers. That answer will not improve by asking again.
func nonFinite(body []byte, offset int64) bool {
	if offset < 1 || offset > int64(len(body)) {
		return false
	}
	rest := body[offset-1:]
	return bytes.HasPrefix(rest, []byte("NaN")) || bytes.HasPrefix(rest, []byte("Infinity"))
}

// errorBodyMessage returns the message of an error response: the fields of
// {"error":{"message","type","code"}}, or of {"error":"..."} as Ollama and
// TEI send it, or else the start of the body; cleaned by [snippet].
func errorBodyMessage(body []byte, secret string) string {
	var outer struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &outer) != nil || len(outer.Error) == 0 {
		return snippet(body, secret)
	}
	var text string
	if json.Unmarshal(outer.Error, &text) == nil {
		return snippet([]byte(text), secret)
	}
	var obj struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(outer.Error, &obj) != nil || obj.Message == "" {
		return snippet(body, secret)
	}
	var extra []string
	if obj.Type != "" {
		extra = append(extra, "type "+obj.Type)
	}
	if c := strings.Trim(string(obj.Code), `"`); c != "" && c != "null" {
		extra = append(extra, "code "+c)
	}
	msg := obj.Message
	if len(extra) > 0 {
		msg += " (" + strings.Join(extra, ", ") + ")"
	}
	return snippet([]byte(msg), secret)
}

// maxSnippet bounds the text of a response quoted in an error.
const maxSnippet = 300

// snippet returns text fit to quote in an error message: secret replaced
// by "[redacted]", invalid UTF-8 and control characters replaced, runs of
// white space collapsed, and at most maxSnippet bytes.
func snippet(text []byte, secret string) string {
	if secret != "" {
		text = bytes.ReplaceAll(text, []byte(secret), []byte("[redacted]"))
	}
	var b strings.Builder
	space := false
	for len(text) > 0 && b.Len() < maxSnippet {
		r, size := utf8.DecodeRune(text)
		text = text[size:]
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case r == utf8.RuneError || !unicode.IsPrint(r):
			r = '?'
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if len(text) > 0 {
		b.WriteString("…")
	}
	if b.Len() == 0 {
		return "(empty body)"
	}
	return b.String()
}
