package gitstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

// Writes racing Close each get an answer: acknowledged (and then present
// after reopening) or refused as unavailable. None waits forever for a
// writer that already drained its queue.
func TestStore_CloseUnderWrites(t *testing.T) {
	dir := t.TempDir()
	for round := range 20 {
		s := MustOpen(t, dir, gitstore.Options{})
		var mu sync.Mutex
		acked := map[nexus.ID]string{}
		var wg sync.WaitGroup
		started := make(chan struct{}, 8)
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					content := fmt.Sprintf("round %d writer %d write %d", round, w, i)
					c, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeMemory, Content: content})
					if err != nil {
						if nexus.ErrorCode(err) != nexus.EUnavailable {
							t.Errorf("write refused with %v, want unavailable", err)
						}
						return
					}
					mu.Lock()
					acked[c.ID] = content
					mu.Unlock()
					if i == 0 {
						started <- struct{}{}
					}
				}
			})
		}
		for range 8 {
			<-started
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait() // hangs (test timeout) if a write was queued after the drain
		s = MustOpen(t, dir, gitstore.Options{})
		for id, content := range acked {
			c, err := s.Get(context.Background(), id)
			if err != nil || c.Content != content {
				t.Fatalf("round %d: acknowledged %s lost: %v", round, id, err)
			}
		}
		s.Close()
	}
}
