package agent

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nexus-mem/nexus/internal/retry"
)

// The wire formats. OpenAI-compatible chat completions:
//
//	POST {base}/chat/completions  Authorization: Bearer KEY
//	{"model":"m","messages":[{"role":"system","content":"..."},{"role":"user","content":"..."}],"max_tokens":N}
//	200 {"model":"m","choices":[{"message":{"role":"assistant","content":"..."},"finish_reason":"stop"}],
//	     "usage":{"prompt_tokens":9,"completion_tokens":12}}
//	4xx/5xx {"error":{"message":"...","type":"...","code":"..."}} or {"error":"..."}
//
// The Anthropic Messages API:
//
//	POST {base}/v1/messages  x-api-key: KEY  anthropic-version: 2023-06-01
//	{"model":"m","max_tokens":N,"system":"...","messages":[{"role":"user","content":"..."}]}
//	200 {"type":"message","model":"m","content":[{"type":"text","text":"..."}],"stop_reason":"end_turn",
//	     "usage":{"input_tokens":10,"output_tokens":5}}
//	4xx/5xx/529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}
//
// A command: [commandRequest] on stdin, [commandResponse] on stdout.

type chatRequest struct {
	Model     string    `json:"model"`
	Messages  []Message `json:"messages"`
	MaxTokens int       `json:"max_tokens,omitempty"`
}

type chatResponse struct {
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type messagesRequest struct {
	Model     string    `json:"model"`
	MaxTokens int       `json:"max_tokens"`
	System    string    `json:"system,omitempty"`
	Messages  []Message `json:"messages"`
}

type messagesResponse struct {
	Type    string `json:"type"`
	Model   string `json:"model"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	StopReason string          `json:"stop_reason"`
	Usage      tokenUsage      `json:"usage"`
	Error      json.RawMessage `json:"error"`
}

type tokenUsage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// commandRequest is what a command agent reads on stdin. State is the
// state its last response returned (or that was restored), if any.
type commandRequest struct {
	Agent     string          `json:"agent"`
	Model     string          `json:"model,omitempty"`
	System    string          `json:"system,omitempty"`
	Messages  []Message       `json:"messages"`
	MaxTokens int             `json:"max_tokens,omitempty"`
	State     json.RawMessage `json:"state,omitempty"`
}

// commandResponse is what a command agent writes on stdout: content, or
// an error whose type is a [Class] ("rate_limit", "bad_request", ...).
type commandResponse struct {
	Content *string         `json:"content"`
	Model   string          `json:"model"`
	Usage   tokenUsage      `json:"usage"`
	State   json.RawMessage `json:"state"`
	Error   json.RawMessage `json:"error"`
}

// decodeOpenAI reads the body of a 200 from chat completions.
func decodeOpenAI(body []byte, key Secret) (*Completion, error) {
	var r chatResponse
	if err := unmarshal(body, &r, "openai", key); err != nil {
		return nil, err
	}
	if len(r.Choices) == 0 {
		if hasMember(r.Error) {
			return nil, bodyError(r.Error, key)
		}
		return nil, errorf(ClassMalformed, "openai answer has no choices: %s", quote(body, key))
	}
	ch := r.Choices[0]
	if ch.Message.Refusal != nil && *ch.Message.Refusal != "" && (ch.Message.Content == nil || *ch.Message.Content == "") {
		return nil, errorf(ClassBadRequest, "the model refused: %s", quote([]byte(*ch.Message.Refusal), key))
	}
	if ch.Message.Content == nil || *ch.Message.Content == "" {
		return nil, errorf(ClassMalformed, "openai answer is empty (finish_reason %q)", ch.FinishReason)
	}
	return &Completion{Content: *ch.Message.Content, Model: r.Model,
		TokensIn: tokens(r.Usage.PromptTokens), TokensOut: tokens(r.Usage.CompletionTokens)}, nil
}

// decodeAnthropic reads the body of a 200 from the Messages API.
func decodeAnthropic(body []byte, key Secret) (*Completion, error) {
	var r messagesResponse
	if err := unmarshal(body, &r, "anthropic", key); err != nil {
		return nil, err
	}
	if r.Type == "error" {
		return nil, bodyError(r.Error, key)
	}
	var text strings.Builder
	for _, b := range r.Content {
		if b.Type == "text" {
			text.WriteString(b.Text)
		}
	}
	if text.Len() == 0 {
		return nil, errorf(ClassMalformed, "anthropic answer has no text (type %s, stop_reason %s, %d content blocks)",
			quote([]byte(r.Type), key), quote([]byte(r.StopReason), key), len(r.Content))
	}
	return &Completion{Content: text.String(), Model: r.Model,
		TokensIn: tokens(r.Usage.InputTokens), TokensOut: tokens(r.Usage.OutputTokens)}, nil
}

// decodeCommand reads the stdout of a command agent: its answer and the
// state it returned (nil if none).
func decodeCommand(stdout []byte, key Secret) (*Completion, json.RawMessage, error) {
	var r commandResponse
	if err := unmarshal(stdout, &r, "command", key); err != nil {
		return nil, nil, err
	}
	if hasMember(r.Error) {
		return nil, nil, bodyError(r.Error, key)
	}
	if r.Content == nil || *r.Content == "" {
		return nil, nil, errorf(ClassMalformed, "command answer has no content: %s", quote(stdout, key))
	}
	var state json.RawMessage
	if hasMember(r.State) {
		state = r.State
	}
	return &Completion{Content: *r.Content, Model: r.Model,
		TokensIn: tokens(r.Usage.InputTokens), TokensOut: tokens(r.Usage.OutputTokens)}, state, nil
}

// unmarshal decodes a JSON object, failing with a malformed *Error.
func unmarshal(body []byte, v any, who string, key Secret) error {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return errorf(ClassMalformed, "%s answer is not JSON (%s): %s", who, key.redact(err.Error()), quote(body, key))
	}
	return errorf(ClassMalformed, "%s answer does not follow the wire format: %s", who, key.redact(err.Error()))
}

func hasMember(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// tokens turns a reported count into an int: negative counts are 0.
func tokens(n int64) int { return int(min(max(n, 0), math.MaxInt32)) }

// bodyError is the *Error that an "error" member describes, classified
// by its type.
func bodyError(raw json.RawMessage, key Secret) *Error {
	typ, msg := errorDetail(raw, key)
	return &Error{Class: classifyType(typ), Message: "the provider answered with an error: " + msg}
}

// errorDetail reads the "error" member of an error body in the shapes
// providers use: {"message","type","code"} (OpenAI, Anthropic, commands)
// or a plain string (Ollama). It returns the type and a message fit to
// quote.
func errorDetail(raw json.RawMessage, key Secret) (typ, msg string) {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return "", quote([]byte(text), key)
	}
	var obj struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &obj) != nil || (obj.Message == "" && obj.Type == "") {
		return "", quote(raw, key)
	}
	msg = obj.Message
	if obj.Type != "" {
		msg += " (type " + obj.Type
		if c := strings.Trim(string(obj.Code), `"`); hasMember(obj.Code) && c != "" {
			msg += ", code " + c
		}
		msg += ")"
	}
	return obj.Type, quote([]byte(msg), key)
}

// errorBodyMessage returns the type and message of a non-2xx body: its
// "error" member if it has one, otherwise the start of the body.
func errorBodyMessage(body []byte, key Secret) (typ, msg string) {
	var outer struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &outer) == nil && hasMember(outer.Error) {
		return errorDetail(outer.Error, key)
	}
	return "", quote(body, key)
}

// classifyStatus classifies a non-2xx HTTP status; typ, the error type of
// the body, tells an overload apart where the status does not.
func classifyStatus(status int, typ string) Class {
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return ClassAuth
	case status == http.StatusTooManyRequests:
		return ClassRateLimit
	case status == http.StatusServiceUnavailable, status == 529, typ == "overloaded_error":
		return ClassOverload
	case status == http.StatusRequestTimeout:
		return ClassTimeout
	case retry.Classify(status) == retry.Retry:
		return ClassServer
	}
	return ClassBadRequest
}

// classifyType classifies the error type of a body that came with a 200
// (or from a command): the types of OpenAI and Anthropic, and the names of
// the classes themselves. Unknown types are server errors.
func classifyType(typ string) Class {
	switch typ {
	case "authentication_error", "permission_error", "invalid_api_key":
		return ClassAuth
	case "rate_limit_error", "rate_limit_exceeded":
		return ClassRateLimit
	case "overloaded_error":
		return ClassOverload
	case "invalid_request_error", "not_found_error", "request_too_large":
		return ClassBadRequest
	}
	switch c := Class(typ); c {
	case ClassAuth, ClassRateLimit, ClassOverload, ClassServer, ClassTimeout, ClassMalformed, ClassBadRequest:
		return c
	}
	return ClassServer
}

// maxQuote bounds the text of an answer quoted in an error.
const maxQuote = 300

// quote returns text fit to put in an error message: the key replaced,
// invalid UTF-8 and control characters replaced by '?', white space
// collapsed, and at most maxQuote bytes.
func quote(text []byte, key Secret) string {
	return clip(clean(text, key), maxQuote)
}

// quoteTail is quote keeping the end of text rather than its start, for
// the stderr of a command, where the error is usually last.
func quoteTail(text []byte, key Secret) string {
	s := clean(text, key)
	if len(s) <= maxQuote {
		return s
	}
	i := len(s) - maxQuote
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}

func clean(text []byte, key Secret) string {
	s := key.redact(strings.ToValidUTF8(string(text), "?"))
	s = strings.Join(strings.Fields(strings.Map(printable, s)), " ")
	if s == "" {
		return "(empty)"
	}
	return s
}

func printable(r rune) rune {
	switch {
	case unicode.IsSpace(r):
		return ' '
	case !unicode.IsPrint(r):
		return '?'
	}
	return r
}

// clip cuts s to n bytes, marking the cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return cutUTF8(s, n) + "…"
}
