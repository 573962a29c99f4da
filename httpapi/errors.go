package httpapi

import (
	"net/http"

	"github.com/nexus-mem/nexus"
)

// codes lists every error code, for codeOf to invert statusOf.
var codes = []nexus.Code{
	nexus.EInvalid, nexus.EUnauthorized, nexus.EForbidden, nexus.ENotFound, nexus.EConflict, nexus.ETooLarge,
	nexus.EUnsupportedMedia, nexus.ERateLimited, nexus.EUnavailable, nexus.EInsufficientStorage, nexus.EInternal,
	nexus.ENoQuorum, nexus.EOutcomeUnknown,
}

// statusOf maps an error code to its HTTP status. It is the one place where
// the mapping is defined; codeOf inverts it for the client.
func statusOf(code nexus.Code) int {
	switch code {
	case nexus.EInvalid:
		return http.StatusBadRequest
	case nexus.EUnauthorized:
		return http.StatusUnauthorized
	case nexus.EForbidden:
		return http.StatusForbidden
	case nexus.ENotFound:
		return http.StatusNotFound
	case nexus.EConflict:
		return http.StatusConflict
	case nexus.ETooLarge:
		return http.StatusRequestEntityTooLarge
	case nexus.EUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case nexus.ERateLimited:
		return http.StatusTooManyRequests
	case nexus.EUnavailable, nexus.ENoQuorum, nexus.EOutcomeUnknown:
		return http.StatusServiceUnavailable
	case nexus.EInsufficientStorage:
		return http.StatusInsufficientStorage
	default:
		return http.StatusInternalServerError
	}
}

// codeOf returns the code for a status, for error responses that carry no
// JSON error body (a proxy's 502 page, say).
func codeOf(status int) nexus.Code {
	for _, c := range codes {
		if statusOf(c) == status {
			return c
		}
	}
	switch {
	case status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
		return nexus.EUnavailable
	case status >= 400 && status < 500:
		return nexus.EInvalid
	default:
		return nexus.EInternal
	}
}

// fail writes err as a JSON error response with the status of its code,
// the node's secrets redacted from its message.
// Internal errors are logged with their cause and shown to the client only
// as "internal error"; errors of the server's state (unavailable, rate
// limited, out of storage) are logged as warnings.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	d := nexus.DetailOf(err)
	d.Message = s.redact.Redact(d.Message)
	switch d.Code {
	case nexus.EInternal:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	case nexus.EUnavailable, nexus.ERateLimited, nexus.EInsufficientStorage, nexus.ENoQuorum, nexus.EOutcomeUnknown:
		s.log.Warn("request not served", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, statusOf(d.Code), d)
}

// writeError writes an error body with an explicit status; fail is the
// usual entry point, this one serves the few statuses that are not codes.
func writeError(w http.ResponseWriter, status int, d nexus.ErrorDetail) {
	// An error body never fails to encode.
	_ = writeJSON(w, status, nexus.ErrorBody{Error: d})
}
