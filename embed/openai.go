package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/retry"
)

// OpenAI is a [nexus.Embedder] backed by any server that speaks the OpenAI
// embeddings API (POST /v1/embeddings): OpenAI itself, Ollama, vLLM,
// llama.cpp server, Hugging Face TEI and others.
//
// Embed sends the texts in batches of BatchSize, one batch after another,
// and returns the vectors in input order whatever order the server lists
// them in. Texts that are empty or only white space are not sent: they get
// the zero vector, which matches nothing, as with [Hashing].
//
// A failed request is retried with exponential backoff and full jitter when
// the failure is transient (408, 409, 425, 429, most 5xx, timeouts, dropped
// connections, cut-off bodies), honouring Retry-After, and never past the
// caller's deadline. A circuit breaker counts consecutive failed requests;
// once open, Embed fails at once with code unavailable until, after the
// cooldown, one request probes the server again.
//
// Errors are [*nexus.Error] values: unauthorized for a rejected key (401,
// 403), invalid for a rejected input (400, 422), too_large for 413, and
// unavailable for everything else, including answers that break the wire
// format (a wrong count, index or dimension, a non-finite number). They
// quote the server's error message, cut short, and never the API key.
//
// It is safe for concurrent use.
type OpenAI struct {
	cfg      OpenAIConfig // defaults filled in
	endpoint string
	policy   retry.Policy
	breaker  *gobreaker.CircuitBreaker[[][]float32]
	log      *slog.Logger
	dim      atomic.Int64

	requests, retries, failures, rejected, tokens atomic.Uint64

	mu       sync.Mutex
	openedAt time.Time // when the breaker last opened
	lastErr  string    // the message of the last failed request
}

var _ nexus.Embedder = (*OpenAI)(nil)

// NewOpenAI returns an embedder for cfg. It sends no request: a wrong URL,
// model or key shows up on the first Embed or [OpenAI.Probe]. Errors from
// [OpenAIConfig.Validate] have code invalid.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	endpoint, _ := endpointURL(cfg.BaseURL) // checked by Validate
	o := &OpenAI{
		cfg:      cfg,
		endpoint: endpoint,
		policy:   retry.Policy{Backoff: retry.Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax}},
		log:      cfg.Logger.With("endpoint", redactURL(endpoint), "model", cfg.Model),
	}
	o.dim.Store(int64(cfg.Dimension))
	o.breaker = gobreaker.NewCircuitBreaker[[][]float32](gobreaker.Settings{
		Name:        "embed " + cfg.Model,
		MaxRequests: 1,
		Timeout:     cfg.BreakerCooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(cfg.BreakerFailures)
		},
		IsSuccessful:  isProviderHealthy,
		IsExcluded:    isCanceled,
		OnStateChange: o.breakerChanged,
	})
	return o, nil
}

// Model returns the configured model name.
func (o *OpenAI) Model() string { return o.cfg.Model }

// Dimension returns the configured dimension, or the one learned from the
// first response, or 0 before that if none was configured: call
// [OpenAI.Probe] first when the dimension is needed up front.
func (o *OpenAI) Dimension() int { return int(o.dim.Load()) }

// Endpoint returns the URL requests are sent to, without any password.
func (o *OpenAI) Endpoint() string { return redactURL(o.endpoint) }

// BreakerState returns the state of the circuit breaker: "closed" (requests
// flow), "open" (requests fail at once) or "half-open" (one request may
// probe the server).
func (o *OpenAI) BreakerState() string { return o.breaker.State().String() }

// Stats are counters since the embedder was made.
type Stats struct {
	Requests uint64 // HTTP requests sent, retries included
	Retries  uint64 // requests that retried a failed one
	Failures uint64 // requests that failed, except those the caller canceled
	Rejected uint64 // batches failed at once because the circuit was open
	Tokens   uint64 // tokens the provider reported using
}

// Stats returns the counters.
func (o *OpenAI) Stats() Stats {
	return Stats{
		Requests: o.requests.Load(), Retries: o.retries.Load(), Failures: o.failures.Load(),
		Rejected: o.rejected.Load(), Tokens: o.tokens.Load(),
	}
}

// probeText is embedded by Probe.
const probeText = "nexus embedding dimension probe"

// Probe sends one short text and returns the dimension of its vector,
// learning it if it was not configured and checking it if it was. It is the
// way to find a wrong URL, model or key at startup.
func (o *OpenAI) Probe(ctx context.Context) (int, error) {
	if _, err := o.embedBatch(ctx, []string{probeText}); err != nil {
		return 0, err
	}
	return o.Dimension(), nil
}

// Embed returns one vector per text, in order.
func (o *OpenAI) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	send := make([]int, 0, len(texts)) // indexes of the texts to send
	for i, t := range texts {
		if strings.TrimSpace(t) != "" {
			send = append(send, i)
		}
	}
	batch := make([]string, 0, min(len(send), o.cfg.BatchSize))
	for start := 0; start < len(send); start += o.cfg.BatchSize {
		idx := send[start:min(start+o.cfg.BatchSize, len(send))]
		batch = batch[:0]
		for _, i := range idx {
			batch = append(batch, texts[i])
		}
		vecs, err := o.embedBatch(ctx, batch)
		if err != nil {
			return nil, err
		}
		for j, i := range idx {
			out[i] = vecs[j]
		}
	}
	if len(send) < len(texts) {
		if err := o.fillBlanks(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fillBlanks gives the zero vector to the texts that were not sent,
// probing for the dimension if no response has told it yet.
func (o *OpenAI) fillBlanks(ctx context.Context, out [][]float32) error {
	dim := o.Dimension()
	if dim == 0 {
		var err error
		if dim, err = o.Probe(ctx); err != nil {
			return err
		}
	}
	blanks := 0
	for _, v := range out {
		if v == nil {
			blanks++
		}
	}
	zeros := make([]float32, blanks*dim)
	for i := range out {
		if out[i] == nil {
			out[i], zeros = zeros[:dim:dim], zeros[dim:]
		}
	}
	return nil
}

// embedBatch sends one batch through the breaker, retrying as the failures
// allow.
func (o *OpenAI) embedBatch(ctx context.Context, batch []string) ([][]float32, error) {
	body, err := json.Marshal(embeddingRequest{Model: o.cfg.Model, Input: batch})
	if err != nil {
		return nil, nexus.WrapError(nexus.EInternal, err, "encoding the embedding request")
	}
	var prev *attemptError
	for attempt := 1; ; attempt++ {
		vecs, err := o.breaker.Execute(func() ([][]float32, error) { return o.send(ctx, body, len(batch)) })
		if err == nil {
			return vecs, nil
		}
		var ae *attemptError
		if !errors.As(err, &ae) {
			o.rejected.Add(1)
			return nil, o.openError(err)
		}
		if ae.canceled {
			return nil, canceledError(ae.err, prev, attempt)
		}
		o.failures.Add(1)
		o.setLastErr(ae.err.Message)
		if !ae.retryable || attempt > o.cfg.MaxRetries {
			return nil, finalError(ae, attempt, "")
		}
		d := o.policy.Delay(attempt, ae.retryAfter)
		if werr := o.policy.Wait(ctx, d); errors.Is(werr, retry.ErrDeadline) {
			return nil, finalError(ae, attempt, "; not retried: "+werr.Error())
		} else if werr != nil {
			return nil, canceledError(stopped(werr), ae, attempt)
		}
		o.retries.Add(1)
		o.log.Warn("retrying a failed embedding request", "attempt", attempt+1, "waited", d, "err", ae.err.Message)
		prev = ae
	}
}

// attemptError is the failure of one request.
type attemptError struct {
	err        *nexus.Error
	retryable  bool          // a transient failure
	retryAfter time.Duration // what the server asked for, if anything
	healthy    bool          // the server answered on purpose (a 4xx): not a breaker failure
	canceled   bool          // the caller's context ended it: neither success nor failure
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

func isProviderHealthy(err error) bool {
	var ae *attemptError
	return err == nil || errors.As(err, &ae) && ae.healthy
}

func isCanceled(err error) bool {
	var ae *attemptError
	return errors.As(err, &ae) && ae.canceled
}

// finalError is the error of the last attempt, saying how many there were.
func finalError(ae *attemptError, attempts int, note string) error {
	msg := ae.err.Message
	if attempts > 1 {
		msg += fmt.Sprintf(" (%d attempts)", attempts)
	}
	return &nexus.Error{Code: ae.err.Code, Message: msg + note, Err: ae.err.Err}
}

// stopped is the error of an embedding that the caller's context stopped.
func stopped(ctxErr error) *nexus.Error {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return nexus.WrapError(nexus.EUnavailable, ctxErr, "embedding stopped by the caller's deadline")
	}
	return nexus.WrapError(nexus.EUnavailable, ctxErr, "embedding canceled")
}

// canceledError is err, the caller's cancellation, with the failure that
// came before it, if any, after attempts requests.
func canceledError(err *nexus.Error, prev *attemptError, attempts int) error {
	if prev == nil {
		return err
	}
	return &nexus.Error{
		Code:    err.Code,
		Message: fmt.Sprintf("%s after %d attempts; the last failure: %s", err.Message, attempts, prev.err.Message),
		Err:     err.Err,
	}
}

// send makes one request and decodes its response.
func (o *OpenAI) send(ctx context.Context, body []byte, n int) ([][]float32, error) {
	actx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, o.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, &attemptError{err: nexus.WrapError(nexus.EUnavailable, err, "making the embedding request")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "nexus-embed/1")
	if o.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+o.cfg.APIKey)
	}
	o.requests.Add(1)
	resp, err := o.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, o.transportError(ctx, actx, err, "")
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, responseLimit(n)+1))
	if err != nil {
		return nil, o.transportError(ctx, actx, err, " while reading the response")
	}
	if int64(len(data)) > responseLimit(n) {
		return nil, &attemptError{err: nexus.Errorf(nexus.EUnavailable,
			"embedding response from %s is larger than %d bytes for %d inputs", o.Endpoint(), responseLimit(n), n)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, o.statusError(resp, data)
	}
	return o.decode(data, n)
}

// responseLimit bounds the body of a response to n inputs: room for
// vectors of 8,192 dimensions written out at full precision.
func responseLimit(n int) int64 { return 1<<20 + int64(n)<<18 }

// decode checks a successful response and learns the dimension from it.
func (o *OpenAI) decode(data []byte, n int) ([][]float32, error) {
	vecs, tokens, err := decodeResponse(data, n, o.Dimension(), o.cfg.APIKey)
	if err != nil {
		var de *decodeError
		errors.As(err, &de)
		return nil, &attemptError{err: de.err, retryable: de.retryable}
	}
	if got := int64(len(vecs[0])); !o.dim.CompareAndSwap(0, got) && o.dim.Load() != got {
		return nil, &attemptError{err: nexus.Errorf(nexus.EUnavailable,
			"embedding has %d dimensions, want %d (the model behind %s changed?)", got, o.dim.Load(), o.Endpoint())}
	}
	o.tokens.Add(uint64(tokens))
	return vecs, nil
}

// transportError classifies a failure to send a request or read its
// response. ctx is the caller's context, actx the request's.
func (o *OpenAI) transportError(ctx, actx context.Context, err error, while string) *attemptError {
	switch {
	case ctx.Err() != nil:
		return &attemptError{err: stopped(ctx.Err()), canceled: true}
	case errors.Is(actx.Err(), context.DeadlineExceeded):
		return &attemptError{retryable: true, err: nexus.Errorf(nexus.EUnavailable,
			"embedding request to %s timed out after %v%s", o.Endpoint(), o.cfg.Timeout, while)}
	}
	var uerr *url.Error // its text repeats the URL
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return &attemptError{retryable: retry.ClassifyError(err) == retry.Retry, err: nexus.Errorf(nexus.EUnavailable,
		"embedding provider at %s failed%s: %v", o.Endpoint(), while, err)}
}

// statusError classifies a response with a status other than 2xx.
func (o *OpenAI) statusError(resp *http.Response, body []byte) *attemptError {
	msg := errorBodyMessage(body, o.cfg.APIKey)
	status := resp.Status
	if status == "" {
		status = fmt.Sprint(resp.StatusCode)
	}
	fail := func(code nexus.Code, what, hint string) *attemptError {
		return &attemptError{healthy: true, err: nexus.Errorf(code, "%s (%s): %s%s", what, status, msg, hint)}
	}
	at := o.Endpoint()
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fail(nexus.EUnauthorized, "embedding provider at "+at+" rejected the API key", "; check "+EnvAPIKey)
	case http.StatusNotFound:
		return fail(nexus.EUnavailable, fmt.Sprintf("embedding model %q or endpoint %s not found", o.cfg.Model, at),
			"; check "+EnvModel+" and "+EnvURL)
	case http.StatusRequestEntityTooLarge:
		return fail(nexus.ETooLarge, "embedding provider at "+at+" refused the texts as too large", "")
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return fail(nexus.EInvalid, "embedding provider at "+at+" rejected the input", "")
	}
	if retry.Classify(resp.StatusCode) != retry.Retry {
		return fail(nexus.EUnavailable, "embedding provider at "+at+" failed", "")
	}
	after, _ := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return &attemptError{retryable: true, retryAfter: after,
		err: nexus.Errorf(nexus.EUnavailable, "embedding provider at %s failed (%s): %s", at, status, msg)}
}

// breakerChanged records and logs a change of the breaker's state.
func (o *OpenAI) breakerChanged(_ string, from, to gobreaker.State) {
	if to == gobreaker.StateOpen {
		o.mu.Lock()
		o.openedAt = time.Now()
		o.mu.Unlock()
	}
	o.log.Warn("embedding circuit breaker changed state", "from", from.String(), "to", to.String())
}

func (o *OpenAI) setLastErr(msg string) {
	o.mu.Lock()
	o.lastErr = msg
	o.mu.Unlock()
}

// openError is the error of a batch the breaker refused.
func (o *OpenAI) openError(err error) error {
	o.mu.Lock()
	opened, last := o.openedAt, o.lastErr
	o.mu.Unlock()
	if errors.Is(err, gobreaker.ErrTooManyRequests) {
		return nexus.Errorf(nexus.EUnavailable,
			"embedding provider unavailable (circuit half-open: a probe request is in flight); last error: %s", last)
	}
	next := max(time.Until(opened.Add(o.cfg.BreakerCooldown)), 0).Round(10 * time.Millisecond)
	return nexus.Errorf(nexus.EUnavailable,
		"embedding provider unavailable (circuit open after %d failed requests in a row; next probe in %v); last error: %s",
		o.cfg.BreakerFailures, next, last)
}
