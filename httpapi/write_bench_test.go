package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/httpapi"
)

// BenchmarkDecodeDraft decodes the body of the write of `nexus bench`,
// through the fast path and the strict decoder alone.
func BenchmarkDecodeDraft(b *testing.B) {
	body, err := json.Marshal(nexus.Draft{Type: nexus.TypeObservation, Content: strings.Repeat("agent memory context ", 25), AgentID: "bench-7", Namespace: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		decode func([]byte) (nexus.Draft, error)
	}{{"fast", httpapi.DecodeDraft}, {"strict", httpapi.DecodeDraftStrict}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
