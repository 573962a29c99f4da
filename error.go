package nexus

import (
	"errors"
	"fmt"
)

// Code classifies an error for clients. Codes are part of the API contract.
type Code string

// Application error codes.
const (
	EInvalid             Code = "invalid"              // bad input; the request will never succeed as is
	ENotFound            Code = "not_found"            // the named thing does not exist
	EConflict            Code = "conflict"             // the request conflicts with the current state
	ETooLarge            Code = "too_large"            // the request or a field is larger than allowed
	EUnsupportedMedia    Code = "unsupported_media"    // the request body is not JSON
	EUnauthorized        Code = "unauthorized"         // missing or wrong credentials
	EForbidden           Code = "forbidden"            // the caller is known but its role or namespaces do not allow the request
	ERateLimited         Code = "rate_limited"         // too many requests for now; retry after the wait given
	EUnavailable         Code = "unavailable"          // the service cannot serve now; retry later
	EInsufficientStorage Code = "insufficient_storage" // the disk is full; nothing was written
	EInternal            Code = "internal"             // a bug or an unexpected failure
	ENoQuorum            Code = "no_quorum"            // the node cannot reach a quorum of its cluster; the write was not made
	EOutcomeUnknown      Code = "outcome_unknown"      // the leader lost its leadership before the write was confirmed: it may or may not be stored
)

// Error is the one application error type. Message is written for the person
// or agent that made the request; Err, if set, is the underlying cause and is
// not shown to clients.
type Error struct {
	Code    Code
	Message string
	Err     error
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with code and message whose cause is err.
func WrapError(code Code, err error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain,
// EInternal for any other non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the client-facing message of err. Errors that are not
// *Error values are internal, and their text is not exposed.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Describe renders err for the operator of a node (a log, a command's
// output), not for a remote client: the message and code of an *Error,
// with the cause of an internal one, or the error's text.
func Describe(err error) string {
	var e *Error
	if errors.As(err, &e) {
		msg := e.Message
		if e.Code == EInternal && e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		return fmt.Sprintf("%s (%s)", msg, e.Code)
	}
	return err.Error()
}

// ErrorBody is an error as clients receive it, the same over HTTP and MCP:
// {"error":{"code":"not_found","message":"context … not found"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code and message of an error, as clients see them.
type ErrorDetail struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// DetailOf returns what clients are shown of err: its code and message,
// except that an internal error says only "internal error", whatever its
// message or cause (those are for the log).
func DetailOf(err error) ErrorDetail {
	code := ErrorCode(err)
	if code == EInternal {
		return ErrorDetail{Code: EInternal, Message: "internal error"}
	}
	return ErrorDetail{Code: code, Message: ErrorMessage(err)}
}
