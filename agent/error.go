package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/internal/retry"
)

// Class says why a call failed and so what to do about it.
type Class string

// The classes of a failure. [Class.Retryable] tells which are retried.
const (
	ClassAuth        Class = "auth"        // 401, 403: the key is wrong or lacks access; never retried, the agent is marked auth_failed
	ClassRateLimit   Class = "rate_limit"  // 429, or the agent's own rate limit: retried after Retry-After
	ClassOverload    Class = "overload"    // 503, 529 overloaded_error: retried
	ClassServer      Class = "server"      // other 5xx (and 408, 409, 425), a command that failed: retried
	ClassTimeout     Class = "timeout"     // the attempt ran past its timeout: retried
	ClassNetwork     Class = "network"     // connection refused, reset or cut short: retried
	ClassMalformed   Class = "malformed"   // an answer that breaks the wire format: retried
	ClassBadRequest  Class = "bad_request" // 400, 404, 413, 422 and other 4xx: the provider refused this request; not retried
	ClassConfig      Class = "config"      // unknown host, bad certificate, missing command: not retried
	ClassUnavailable Class = "unavailable" // not sent: the circuit breaker is open or a probe is in flight
	ClassCanceled    Class = "canceled"    // the caller's context ended the call
)

// Retryable reports whether a failure of class c may succeed if the same
// request is sent again.
func (c Class) Retryable() bool {
	switch c {
	case ClassRateLimit, ClassOverload, ClassServer, ClassTimeout, ClassNetwork, ClassMalformed:
		return true
	}
	return false
}

// Error is the failure of a call to an agent. Message is written for a
// person; it quotes what the provider said, cut short, and never holds the
// API key. Err, if set, is the underlying cause.
//
// Through [errors.As] an *Error is also a [*nexus.Error]: code invalid for
// [ClassBadRequest], unavailable for every other class (a rejected provider
// key is the node's problem, not the caller's credentials).
type Error struct {
	Agent      string        // the agent or pool that failed
	Class      Class         // why
	Status     int           // the HTTP status or the command's exit code; 0 if none
	Message    string        // what happened
	RetryAfter time.Duration // how long the provider asked to wait (Retry-After), or the agent's own rate limit needs; 0 if unknown
	Attempts   int           // requests sent before giving up (set on the final error of a call)
	Err        error         // the cause; may be nil
}

// Error returns "agent ID: CLASS: MESSAGE (N attempts)".
func (e *Error) Error() string {
	s := e.Message
	if e.Agent != "" {
		s = fmt.Sprintf("agent %s: %s: %s", e.Agent, e.Class, e.Message)
	}
	if e.Attempts > 1 {
		s += fmt.Sprintf(" (%d attempts)", e.Attempts)
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Code returns the [nexus.Code] of e.
func (e *Error) Code() nexus.Code {
	switch e.Class {
	case ClassBadRequest:
		return nexus.EInvalid
	case ClassRateLimit:
		return nexus.ERateLimited
	}
	return nexus.EUnavailable
}

// As lets errors.As find a *nexus.Error in an *Error, so that
// [nexus.ErrorCode] and [nexus.ErrorMessage] work on it.
func (e *Error) As(target any) bool {
	t, ok := target.(**nexus.Error)
	if ok {
		*t = &nexus.Error{Code: e.Code(), Message: e.Error(), Err: e.Err}
	}
	return ok
}

// ClassOf returns the class of err: its own if it is an *Error, canceled
// for context.Canceled and context.DeadlineExceeded, network for what
// [retry.ClassifyError] retries and server for anything else. It returns
// "" for nil.
func ClassOf(err error) Class {
	return asError(err).classOrEmpty()
}

func (e *Error) classOrEmpty() Class {
	if e == nil {
		return ""
	}
	return e.Class
}

// asError returns err as an *Error, classifying errors of other types
// (those of a [Provider] written elsewhere).
func asError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	class := ClassServer
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		class = ClassCanceled
	case retry.ClassifyError(err) == retry.Retry:
		class = ClassNetwork
	}
	return &Error{Class: class, Message: err.Error(), Err: err}
}

// errorf returns an *Error of class c.
func errorf(c Class, format string, args ...any) *Error {
	return &Error{Class: c, Message: fmt.Sprintf(format, args...)}
}
