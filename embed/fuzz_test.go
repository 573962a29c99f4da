package embed_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
)

const fuzzSecret = "sk-fuzz-secret"

// The response decoder never panics, and either fails with an unavailable
// error that does not quote the key, or returns exactly n finite vectors
// of one dimension (dim, when dim is set).
func FuzzDecodeResponse(f *testing.F) {
	for _, seed := range []struct {
		body   string
		n, dim int
	}{
		{`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`, 1, 2},
		{`{"data":[{"index":1,"embedding":[1,2,3]},{"index":0,"embedding":[4,5,6]}]}`, 2, 0},
		{`{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}`, 2, 0},
		{`{"data":[{"embedding":[1]}]}`, 1, 0},
		{`{"data":[{"index":0,"embedding":[NaN]}]}`, 1, 0},
		{`{"data":[{"index":0,"embedding":[1e39]}]}`, 1, 0},
		{`{"data":[{"index":-1,"embedding":[1]}]}`, 1, 0},
		{`{"data":[{"index":0,"embedding":null}]}`, 1, 0},
		{`{"data":[{"index":0,"embedding":[]}]}`, 1, 0},
		{`{"error":{"message":"bad key sk-fuzz-secret","type":"x","code":401}}`, 1, 0},
		{`{"error":"sk-fuzz-secret"}`, 1, 0},
		{`{"data":[],"usage":{"total_tokens":-5}}`, 0, 0},
		{`{"data":[{"index":0,"embedding":[0.1,`, 1, 0},
		{`sk-fuzz-secret`, 1, 0}, {``, 0, 0}, {`null`, 0, 3}, {`[]`, 1, 0}, {"\xff", 1, 0},
	} {
		f.Add([]byte(seed.body), seed.n, seed.dim)
	}
	f.Fuzz(func(t *testing.T, body []byte, n, dim int) {
		if n < 0 || n > 64 || dim < 0 || dim > 4096 {
			return
		}
		vecs, tokens, err := embed.DecodeResponse(body, n, dim, fuzzSecret)
		if err != nil {
			var e *nexus.Error
			if !errors.As(err, &e) || e.Code != nexus.EUnavailable || e.Message == "" {
				t.Fatalf("error %v is not an unavailable *nexus.Error with a message", err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("error quotes the secret: %v", err)
			}
			return
		}
		if len(vecs) != n || tokens < 0 {
			t.Fatalf("%d vectors for %d inputs, %d tokens", len(vecs), n, tokens)
		}
		for i, v := range vecs {
			want := dim
			if want == 0 {
				want = len(vecs[0])
			}
			if want == 0 {
				t.Fatalf("vector %d is empty", i)
			}
			if err := nexus.CheckVector(v, want); err != nil {
				t.Fatalf("vector %d: %v", i, err)
			}
		}
	})
}

// Error bodies of any shape give a short message without the key.
func FuzzErrorBodyMessage(f *testing.F) {
	for _, seed := range []string{
		`{"error":{"message":"Incorrect API key provided: sk-fuzz-secret","type":"invalid_request_error","code":"invalid_api_key"}}`,
		`{"error":"model not found"}`, `{"error":{"code":429}}`, `<html>502</html>`, ``, "\x00\xff sk-fuzz-secret",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msg := embed.ErrorBodyMessage(body, fuzzSecret)
		if msg == "" || len(msg) > 400 || strings.Contains(msg, fuzzSecret) {
			t.Fatalf("message %q for body %q", msg, body)
		}
		if strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("message %q holds control characters", msg)
		}
	})
}

// UnmarshalCooc never panics, and either fails with an invalid error or
// returns a model whose parameters are exactly the input, named by their
// hash, that embeds texts into vectors of its dimension.
func FuzzUnmarshalCooc(f *testing.F) {
	c, err := embed.TrainCooc(context.Background(), coocTexts(200), embed.CoocOptions{Dim: 8, MinCount: 1, Hashing: 16})
	if err != nil {
		f.Fatal(err)
	}
	params, _ := c.MarshalBinary()
	f.Add(params)
	f.Add(params[:len(params)-3])
	f.Add(append(bytes.Clone(params), 0))
	nan := bytes.Clone(params)
	copy(nan[len(nan)-4:], []byte{0, 0, 0xc0, 0x7f})
	f.Add(nan)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := embed.UnmarshalCooc(data)
		if err != nil {
			if nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("error code %s: %v", nexus.ErrorCode(err), err)
			}
			return
		}
		again, err := m.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("the parameters do not round-trip: %v", err)
		}
		if !strings.HasPrefix(m.Model(), "nexus-cooc-v1-") {
			t.Fatalf("model %q", m.Model())
		}
		vs, err := m.Embed(context.Background(), []string{"kitten eats pet food", ""})
		if err != nil || len(vs) != 2 || len(vs[0]) != m.Dimension() || len(vs[1]) != m.Dimension() {
			t.Fatalf("embed: %v, %d vectors", err, len(vs))
		}
	})
}
