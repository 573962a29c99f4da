package httpapi

// DecodeDraft exposes the request decoder to the fuzz test.
var DecodeDraft = decodeDraft
