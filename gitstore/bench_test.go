package gitstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
)

var payload = strings.Repeat("agents remember what they learned; ", 14) // ≈ 500 bytes

// BenchmarkStore_Put measures durable writes (every one fsynced before it
// returns) with 64 concurrent writers, so group commit is exercised.
func BenchmarkStore_Put(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := MustOpen(b, "", gitstore.Options{})
			var n atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n.Add(1) <= int64(b.N) {
						if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeObservation, Content: payload}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// BenchmarkStore_Get measures reads by id: L1 hits and misses (from git).
func BenchmarkStore_Get(b *testing.B) {
	s := MustOpen(b, "", gitstore.Options{CacheBytes: 1 << 30})
	var ids []nexus.ID
	for i := 0; i < 2000; i++ {
		ids = append(ids, mustPut(b, s, nexus.Draft{Type: nexus.TypeObservation, Content: fmt.Sprintf("%d %s", i, payload)}).ID)
	}
	b.Run("l1-hit", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.GetRaw(context.Background(), ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decoded-l1-hit", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Get(context.Background(), ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStore_Put_Encryption measures durable writes with encryption
// at rest off and on, in the same run, so their ratio is the cost of
// sealing (AES-256-GCM with a derived nonce) on the write path.
func BenchmarkStore_Put_Encryption(b *testing.B) {
	key := filepath.Join(b.TempDir(), "master.key")
	if err := os.WriteFile(key, []byte(gitstore.NewMasterKey()), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, writers := range []int{1, 64} {
		for _, enc := range []bool{false, true} {
			opts := gitstore.Options{}
			name := fmt.Sprintf("writers=%d/encrypt=off", writers)
			if enc {
				opts.Encrypt = &gitstore.Encryption{KeyFile: key}
				name = fmt.Sprintf("writers=%d/encrypt=on", writers)
			}
			b.Run(name, func(b *testing.B) { benchPut(b, MustOpen(b, "", opts), writers) })
		}
	}
}

// benchPut writes b.N contexts from the given number of goroutines.
func benchPut(b *testing.B, s *gitstore.Store, writers int) {
	var n atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n.Add(1) <= int64(b.N) {
				if _, err := s.Put(context.Background(), nexus.Draft{Type: nexus.TypeObservation, Content: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}
