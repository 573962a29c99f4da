package node

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/gitstore"
	"github.com/nexus-mem/nexus/metrics"
)

// The governor shrinks the cache to a quarter over 90 % of the budget,
// keeps it shrunk between 60 % and 90 %, and gives it its whole size back
// under 60 %; the memory_cache health says when it is under pressure.
func TestGovernor_ShrinksAndRestores(t *testing.T) {
	store, err := gitstore.Open(t.TempDir(), gitstore.Options{CacheBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	used := int64(0)
	g := &governor{store: store, budget: 1000 << 20, cacheBytes: 64 << 20, used: func() int64 { return used },
		mets: metrics.New(metrics.Sources{}), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cacheHealth := store.HealthCheckers()[nexus.ComponentCache]
	for _, step := range []struct {
		usedMiB  int64
		wantMiB  int64
		pressure bool
	}{
		{500, 64, false}, // under 90 %: untouched
		{901, 16, true},  // over 90 %: a quarter
		{700, 16, true},  // between 60 % and 90 %: still shrunk
		{601, 16, true},  // just over 60 %
		{599, 64, false}, // under 60 %: its size back
		{899, 64, false}, // under 90 % again
		{950, 16, true},  // and shrunk again
		{100, 64, false}, // and back
	} {
		used = step.usedMiB << 20
		if err := g.check(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := store.CacheStats()
		if st.MaxBytes != step.wantMiB<<20 {
			t.Fatalf("at %d MiB used of 1000: cache budget %d MiB, want %d", step.usedMiB, st.MaxBytes>>20, step.wantMiB)
		}
		h := cacheHealth.CheckHealth(context.Background())
		if got := h.Status == nexus.StatusDegraded; got != step.pressure {
			t.Fatalf("at %d MiB used: memory_cache %s (%s), want under pressure %v", step.usedMiB, h.Status, h.Error, step.pressure)
		}
	}
}
