package retry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
)

// Class says what to do after an attempt.
type Class int

// The classes of an outcome.
const (
	Done  Class = iota // it succeeded; stop
	Retry              // a transient failure; try again after a delay
	Fail               // a permanent failure; trying again will not help
)

// String returns "done", "retry" or "fail".
func (c Class) String() string {
	switch c {
	case Done:
		return "done"
	case Retry:
		return "retry"
	case Fail:
		return "fail"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Classify classifies an HTTP response status. 2xx is [Done]. 408 Request
// Timeout, 409 Conflict, 425 Too Early, 429 Too Many Requests and every 5xx
// but 501 Not Implemented and 505 HTTP Version Not Supported are [Retry]:
// the server is overloaded, restarting or behind a proxy that lost it.
// Everything else (other 4xx such as 400, 401, 403, 404, 422; 1xx; 3xx that
// the client did not follow) is [Fail].
func Classify(status int) Class {
	switch {
	case status >= 200 && status <= 299:
		return Done
	case status == http.StatusRequestTimeout, status == http.StatusConflict,
		status == http.StatusTooEarly, status == http.StatusTooManyRequests:
		return Retry
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		return Fail
	case status >= 500 && status <= 599:
		return Retry
	}
	return Fail
}

// ClassifyError classifies an error from sending a request or reading its
// response. nil is [Done]. context.Canceled is [Fail]. Transient network
// failures are [Retry]: context.DeadlineExceeded and other timeouts,
// connections refused, reset or aborted, a broken pipe, and a body cut short
// (io.EOF, io.ErrUnexpectedEOF). Certificate and other TLS verification
// errors are [Fail], as is any error that is not a network error.
//
// context.DeadlineExceeded is [Retry] because a per-attempt timeout looks
// the same as the caller's own deadline: the caller must check its own
// context first and stop if that is done.
func ClassifyError(err error) Class {
	if err == nil {
		return Done
	}
	if errors.Is(err, context.Canceled) || isTLSVerification(err) {
		return Fail
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Retry
	}
	for _, errno := range [...]syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE} {
		if errors.Is(err, errno) {
			return Retry
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return Fail
		}
		return Retry
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return Retry
	}
	var netErr net.Error // *url.Error is one too: only its Timeout counts
	if errors.As(err, &netErr) && netErr.Timeout() {
		return Retry
	}
	return Fail
}

func isTLSVerification(err error) bool {
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		record           tls.RecordHeaderError
	)
	return errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verification) || errors.As(err, &record)
}
