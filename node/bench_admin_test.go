package node_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/audit"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/httpapi"
	"github.com/nexus-mem/nexus/node/nodetest"
)

// bareAdmin is the store's own fsck behind the admin routes, without the
// node's audit log: the baseline of an audited admin request.
type bareAdmin struct{ st *gitstore.Store }

func (a bareAdmin) Fsck(ctx context.Context, deep bool) (*gitstore.FsckReport, error) {
	return a.st.Fsck(ctx, deep)
}

func (a bareAdmin) Restore(ctx context.Context, at time.Time, dryRun bool) (*gitstore.RestorePlan, error) {
	return a.st.RestoreTo(ctx, at, dryRun)
}

func (a bareAdmin) Recover(context.Context) (httpapi.RecoverResult, error) {
	return httpapi.RecoverResult{}, nil
}

// BenchmarkNode_AdminAudit is the cost of auditing an admin request:
// POST /v1/admin/fsck (fast) through the node's API, whose fsck writes
// two fsynced audit records, against the same request and store without
// the audit log, in the same run; and the two records alone (an intent
// and an outcome around nothing).
func BenchmarkNode_AdminAudit(b *testing.B) {
	n := nodetest.Open(b, nodetest.Config(b))
	for i := range 100 {
		if _, err := n.Store().Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint("fact ", i)}); err != nil {
			b.Fatal(err)
		}
	}
	bare := httpapi.NewServer(n.Store(), httpapi.Options{Admin: bareAdmin{n.Store().(*gitstore.Store)}})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"unaudited", bare}, {"audited", n.Handler()}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				c.h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/admin/fsck", nil))
				if w.Code != http.StatusOK {
					b.Fatalf("fsck: %d %s", w.Code, w.Body)
				}
			}
		})
	}
	b.Run("records-only", func(b *testing.B) {
		nothing := func() (audit.Fields, error) { return nil, nil }
		for b.Loop() {
			if err := n.Audit().Do(context.Background(), "bench", nil, nothing); err != nil {
				b.Fatal(err)
			}
		}
	})
}
