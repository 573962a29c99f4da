package gitstore_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// Under a steady stream of writes, the catalog check and the catalog's
// health compare at one head: no write that lands meanwhile looks like
// damage (it did, and a busy node stopped itself over it).
func TestStore_CatalogChecksUnderWrites(t *testing.T) {
	s := MustOpen(t, t.TempDir(), gitstore.Options{})
	defer s.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprintf("w%d %d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	health := s.HealthCheckers()[nexus.ComponentStore]
	for i := range 30 {
		if err := s.VerifyCatalog(); err != nil {
			t.Errorf("check %d under writes: %v", i, err)
		}
		for range 20 {
			if h := health.CheckHealth(context.Background()); h.Status != nexus.StatusHealthy {
				t.Errorf("catalog health under writes: %s %q", h.Status, h.Error)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
}
