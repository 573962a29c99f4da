package httpapi

import "github.com/nexus-mem/nexus"

// DecodeDraft exposes the request decoder to the fuzz test.
var DecodeDraft = decodeDraft

// DecodeSearch exposes the search request decoder to the fuzz test.
func DecodeSearch(body []byte) (nexus.SearchRequest, error) {
	var req nexus.SearchRequest
	err := decodeObject(body, &req, searchFields)
	return req, err
}
