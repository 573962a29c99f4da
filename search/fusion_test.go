package search

import (
	"math"
	"testing"
)

func TestFuse(t *testing.T) {
	f := func(x float64) *float64 { return &x }
	sig := signals{semantic: true, keyword: true, simTop: 0.8, bm25Top: 10, semanticWeight: 0.25}
	for _, tc := range []struct {
		name string
		sig  signals
		c    candidate
		want float64
	}{
		{"first in both", sig, candidate{sim: f(0.8), bm25: f(10)}, 1},
		{"half of each best", sig, candidate{sim: f(0.4), bm25: f(5)}, 0.5},
		{"keyword only", sig, candidate{bm25: f(5)}, 0.75 * 0.5},
		{"semantic only", sig, candidate{sim: f(0.8)}, 0.25},
		{"negative similarity counts 0", sig, candidate{sim: f(-0.3), bm25: f(10)}, 0.75},
		{"semantic signal failed: keyword alone", signals{keyword: true, bm25Top: 10, semanticWeight: 0.25}, candidate{bm25: f(5)}, 0.5},
		{"keyword found nothing: semantic alone", signals{semantic: true, simTop: 0.8, semanticWeight: 0.25}, candidate{sim: f(0.6)}, 0.75},
	} {
		if got := tc.sig.fuse(&tc.c); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFusionWeight(t *testing.T) {
	f := Fusion{Semantic: 0.4, Exact: 0.1}
	for q, want := range map[string]float64{
		"why did the billing rollout fail":         0.4,
		"Why did the Billing rollout fail?":        0.4,
		"what does ENOSPC mean":                    0.1,
		"sha256sum of the audit log":               0.1,
		"is --max-streams per principal":           0.1,
		"os.ReadFile or io.ReadAll":                0.1,
		"TestPowerLoss fails":                      0.1,
		"files under docs/ explain it":             0.1,
		"a TLS handshake":                          0.1,
		"the end.":                                 0.4,
		"an IO error":                              0.4, // two capitals are a word, not a name
		"snake_case names":                         0.1,
		"unicode: Ärger über Öl":                   0.4,
		"«quoted» words, (parenthesised) and such": 0.4,
	} {
		if got := f.weight(q); got != want {
			t.Errorf("weight(%q) = %v, want %v", q, got, want)
		}
	}
	if d := DefaultFusion("nexus-hash-v1-384"); d.Semantic <= 0 || d.Semantic >= 0.5 {
		t.Errorf("the hashing model's default %+v should give it a small share", d)
	}
	if d := DefaultFusion("text-embedding-3-small"); d != (Fusion{Semantic: 0.5, Exact: 0.3}) {
		t.Errorf("an unmeasured model's default is %+v", d)
	}
}
