package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/nexus-mem/nexus"
)

// writeStatus writes v, a report of the node's own state (health, agents,
// processes) whose error texts may quote what a failing component said,
// as JSON with the node's secrets redacted.
func (s *Server) writeStatus(w http.ResponseWriter, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nexus.WrapError(nexus.EInternal, err, "encoding the response")
	}
	writeRaw(w, status, s.redact.RedactBytes(buf.Bytes()))
	return nil
}
