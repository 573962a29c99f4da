package gitstore

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus"
)

// A tree cache smaller than one batch must not lose trees that the batch
// created and that are in no pack yet.
func TestTrees_SmallCacheAcrossBatches(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.trees.max = 10
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: fmt.Sprint(w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.VerifyCatalog(); err != nil {
		t.Fatal(err)
	}
}
