package httpapi

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3 description of every route of the server.
// It is written by hand, so that it reads as the contract it is; tests
// check it against the routes registered and the responses served.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document the server serves at
// GET /v1/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	if _, err := parseQuery(r); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-cache")
	writeRaw(w, http.StatusOK, openAPIDoc)
	return nil
}
