package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nexus-mem/nexus/internal/retry"
)

// AnthropicVersion is the anthropic-version header sent with every request.
const AnthropicVersion = "2023-06-01"

// Bounds of what is read from a provider.
const (
	maxAnswer    = 8 << 20 // a completion, an error body or a command's stdout
	maxHeartbeat = 4 << 10 // the start of a models list, enough to see it is JSON
)

// NewProvider returns the provider cfg describes, with its key read from
// cfg.Key unless cfg.APIKey is set. It sends nothing: a wrong URL, model or
// key shows up on the first call or heartbeat. Errors have code invalid.
func NewProvider(cfg Config) (Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	key := cfg.APIKey
	if key.IsZero() {
		var err error
		if key, err = cfg.Key.Load(); err != nil {
			return nil, fmt.Errorf("agent %s: %w", cfg.ID, err)
		}
	}
	cfg.Redactor.Add(key.Value())
	switch cfg.Provider {
	case OpenAI:
		api := newHTTPAPI(cfg, key, strings.TrimRight(cfg.BaseURL, "/"), func(h http.Header) {
			if !key.IsZero() {
				h.Set("Authorization", "Bearer "+key.Value())
			}
		})
		return &openAIProvider{api: api, model: cfg.Model}, nil
	case Anthropic:
		base := strings.TrimSuffix(strings.TrimRight(cfg.BaseURL, "/"), "/v1")
		api := newHTTPAPI(cfg, key, base, func(h http.Header) {
			h.Set("x-api-key", key.Value())
			h.Set("anthropic-version", AnthropicVersion)
		})
		return &anthropicProvider{api: api, model: cfg.Model}, nil
	}
	return newCommand(cfg, key), nil
}

// httpAPI is what the OpenAI and Anthropic providers share: a JSON
// request, a bounded answer, and the classification of failures.
type httpAPI struct {
	kind    Kind
	base    string // the API root, without a trailing slash
	shown   string // base fit for messages
	model   string
	keyHint string // where the key came from, for a rejected key
	client  *http.Client
	key     Secret
	auth    func(http.Header) // sets the key and version headers
}

func newHTTPAPI(cfg Config, key Secret, base string, auth func(http.Header)) httpAPI {
	hint := "the configured key"
	if cfg.APIKey.IsZero() && !cfg.Key.IsZero() {
		hint = cfg.Key.String()
	}
	return httpAPI{kind: cfg.Provider, base: base, shown: redactURL(base), model: cfg.Model, keyHint: hint,
		client: cfg.HTTPClient, key: key, auth: auth}
}

// do sends one request and returns the body of a 2xx answer, at most limit
// bytes of it; over reports that there was more.
func (a *httpAPI) do(ctx context.Context, method, path string, body []byte, limit int64) (data []byte, over bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, false, errorf(ClassConfig, "%s request to %s cannot be made: %v", a.kind, a.shown, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "nexus-agent/1")
	a.auth(req.Header)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, false, a.transportError(ctx, err, "")
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, false, a.transportError(ctx, err, " while reading the answer")
	}
	over = int64(len(data)) > limit
	if over {
		data = data[:limit]
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, false, a.statusError(resp, data)
	}
	return data, over, nil
}

// transportError classifies a failure to send a request or to read its
// answer.
func (a *httpAPI) transportError(ctx context.Context, err error, while string) *Error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &Error{Class: ClassTimeout, Message: fmt.Sprintf("%s at %s did not answer in time%s", a.kind, a.shown, while)}
	case ctx.Err() != nil:
		return &Error{Class: ClassCanceled, Err: ctx.Err(), Message: fmt.Sprintf("request to %s canceled%s", a.shown, while)}
	}
	var uerr *url.Error // its text repeats the URL
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	class := ClassConfig
	if retry.ClassifyError(err) == retry.Retry {
		class = ClassNetwork
	}
	return &Error{Class: class, Err: err, Message: fmt.Sprintf("%s at %s failed%s: %s", a.kind, a.shown, while, a.key.redact(err.Error()))}
}

// statusError classifies an answer with a status other than 2xx.
func (a *httpAPI) statusError(resp *http.Response, body []byte) *Error {
	typ, msg := errorBodyMessage(body, a.key)
	class := classifyStatus(resp.StatusCode, typ)
	after, _ := retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	status := strconv.Itoa(resp.StatusCode)
	if text := http.StatusText(resp.StatusCode); text != "" {
		status += " " + text
	} else if resp.StatusCode == 529 {
		status += " Overloaded"
	}
	var hint string
	switch {
	case class == ClassAuth:
		hint = "; check " + a.keyHint
	case resp.StatusCode == http.StatusNotFound:
		hint = fmt.Sprintf("; check the model %q and base_url", a.model)
	}
	return &Error{Class: class, Status: resp.StatusCode, RetryAfter: after,
		Message: fmt.Sprintf("%s at %s answered %s: %s%s", a.kind, a.shown, status, msg, hint)}
}

// post sends a JSON request and returns the body of its 2xx answer.
func (a *httpAPI) post(ctx context.Context, path string, req any) ([]byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, errorf(ClassBadRequest, "encoding the %s request: %v", a.kind, err)
	}
	data, over, err := a.do(ctx, http.MethodPost, path, body, maxAnswer)
	if err != nil {
		return nil, err
	}
	if over {
		return nil, errorf(ClassMalformed, "%s answer from %s is larger than %d bytes", a.kind, a.shown, maxAnswer)
	}
	return data, nil
}

// heartbeat lists the models, which costs no tokens, and checks that the
// answer looks like JSON.
func (a *httpAPI) heartbeat(ctx context.Context, path string) error {
	data, _, err := a.do(ctx, http.MethodGet, path, nil, maxHeartbeat)
	if err != nil {
		return err
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return errorf(ClassMalformed, "%s model list at %s is not a JSON object: %s", a.kind, a.shown+path, quote(data, a.key))
	}
	return nil
}

// openAIProvider speaks OpenAI-compatible chat completions.
type openAIProvider struct {
	api   httpAPI
	model string
}

func (o *openAIProvider) Complete(ctx context.Context, p Prompt) (*Completion, error) {
	msgs := make([]Message, 0, len(p.Messages)+1)
	if p.System != "" {
		msgs = append(msgs, Message{Role: "system", Content: p.System})
	}
	msgs = append(msgs, p.Messages...)
	data, err := o.api.post(ctx, "/chat/completions", chatRequest{Model: o.model, Messages: msgs, MaxTokens: p.MaxTokens})
	if err != nil {
		return nil, err
	}
	return decodeOpenAI(data, o.api.key)
}

func (o *openAIProvider) Heartbeat(ctx context.Context) error { return o.api.heartbeat(ctx, "/models") }

// anthropicProvider speaks the Anthropic Messages API.
type anthropicProvider struct {
	api   httpAPI
	model string
}

func (a *anthropicProvider) Complete(ctx context.Context, p Prompt) (*Completion, error) {
	data, err := a.api.post(ctx, "/v1/messages",
		messagesRequest{Model: a.model, MaxTokens: p.MaxTokens, System: p.System, Messages: p.Messages})
	if err != nil {
		return nil, err
	}
	return decodeAnthropic(data, a.api.key)
}

func (a *anthropicProvider) Heartbeat(ctx context.Context) error {
	return a.api.heartbeat(ctx, "/v1/models")
}
