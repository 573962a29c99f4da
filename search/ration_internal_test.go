package search

import (
	"math"
	"runtime"
	"testing"
)

// TestRation checks the indexer's share of the CPU against the lag: the
// fixed ration with no lag, a share in proportion up to the bound, capped
// beyond it; no ration when MaxCPU is 1 or more; a fixed ration when
// MaxCPULagging is below MaxCPU.
func TestRation(t *testing.T) {
	cases := []struct {
		maxCPU, lagging float64
		bound, lag      int
		want            float64
	}{
		{0.25, 1, 10000, 0, 0.25},
		{0.25, 1, 10000, -5, 0.25},
		{0.25, 1, 10000, 5000, 0.625},
		{0.25, 1, 10000, 10000, 1},
		{0.25, 1, 10000, 1 << 30, 1},
		{0.25, 1.5, 1000, 500, 0.875},
		{0.5, 0.1, 1000, 5000, 0.5},
		{1, 1, 1000, 0, math.Inf(1)},
		{2, 1, 1000, 5000, math.Inf(1)},
	}
	for _, c := range cases {
		o := Options{MaxCPU: c.maxCPU, MaxCPULagging: c.lagging, LagBound: c.bound}
		o.setDefaults()
		e := &Engine{opts: o}
		if got := e.ration(c.lag); got != c.want {
			t.Errorf("ration(%d) with MaxCPU %g, MaxCPULagging %g, LagBound %d = %g, want %g", c.lag, c.maxCPU, c.lagging, c.bound, got, c.want)
		}
	}
	var o Options
	o.setDefaults()
	lagging := min(1, float64(runtime.GOMAXPROCS(0))/2)
	if o.MaxCPU != 0.25 || o.MaxCPULagging != lagging || o.LagBound != 10000 {
		t.Errorf("defaults: MaxCPU %g, MaxCPULagging %g, LagBound %d; want 0.25, %g, 10000", o.MaxCPU, o.MaxCPULagging, o.LagBound, lagging)
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	o = Options{}
	o.setDefaults()
	if o.MaxCPULagging != 0.5 {
		t.Errorf("default MaxCPULagging on one core: %g, want 0.5 (half, for the writes)", o.MaxCPULagging)
	}
}
