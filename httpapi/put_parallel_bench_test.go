package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/authz"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
)

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPut_64 is the write of `nexus bench` (512 bytes of content)
// POSTed by 64 concurrent clients to the API in process, on a real store
// behind the access checks, without the network: every write is a group
// commit's durable git commit. cpu-ns/write is the process's CPU (the
// handler, the writer, the store's background merges, the collector)
// over the writes.
func BenchmarkPut_64(b *testing.B) {
	st, err := gitstore.Open(b.TempDir(), gitstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv := httpapi.NewServer(authz.NewStore(st), httpapi.Options{})
	content := strings.Repeat("agent memory context durable ", 18)[:512]
	bodies := make([][]byte, 64)
	for w := range bodies {
		if bodies[w], err = json.Marshal(nexus.Draft{Type: nexus.TypeObservation, Content: content, AgentID: fmt.Sprintf("bench-%d", w), Namespace: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := processCPU()
	for w := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= int64(b.N) {
				req := httptest.NewRequest(http.MethodPost, "/v1/contexts", bytes.NewReader(bodies[w]))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusCreated {
					b.Errorf("POST: %d %s", rec.Code, rec.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64((processCPU()-start).Nanoseconds())/float64(b.N), "cpu-ns/write")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}
