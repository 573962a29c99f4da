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
		if got := f.Weight(q); got != want {
			t.Errorf("weight(%q) = %v, want %v", q, got, want)
		}
	}
	if d := DefaultFusion("nexus-hash-v1-384"); d.Semantic <= 0 || d.Semantic >= 0.5 || d.Exact != 0 {
		t.Errorf("the hashing model's default %+v should give it a small share, none for exact names", d)
	}
	if d := DefaultFusion("text-embedding-3-small"); d != (Fusion{Semantic: 0.5, Exact: 0.3, Evidence: true}) {
		t.Errorf("an unmeasured model's default is %+v", d)
	}
}

func TestFusionQueryWeight(t *testing.T) {
	// The semantic signal's 10 best all score alike (no evidence); the
	// keyword signal's best stands out (evidence 0.5).
	sig := signals{semantic: true, keyword: true, simTop: 0.8, simTenth: 0.8, bm25Top: 10, bm25Tenth: 5}
	if got := (Fusion{Semantic: 0.4, Exact: 0.1}).queryWeight("billing rollout", sig); got != 0.4 {
		t.Errorf("without evidence: %v, want the query's weight 0.4", got)
	}
	if got := (Fusion{Semantic: 0.4, Exact: 0.1, Evidence: true}).queryWeight("billing rollout", sig); got != 0 {
		t.Errorf("with evidence: %v, want 0 (all weight to the signal that tells its candidates apart)", got)
	}
	// Equal evidence leaves the weight as it is: 0.4·0.25 / (0.4·0.25 + 0.6·0.25).
	sig.simTenth = 0.6
	sig.bm25Tenth = 7.5
	if got := (Fusion{Semantic: 0.4, Exact: 0.1, Evidence: true}).queryWeight("ENOSPC on write", sig); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("equal evidence, exact name: %v, want 0.1", got)
	}
}

func TestDefaultFusion(t *testing.T) {
	for model, want := range map[string]Fusion{
		"nexus-hash-v1-384":      {Semantic: 0.005},
		"nexus-cooc-v1-512-ab12": {Semantic: 0.5, Exact: 0.25, Evidence: true},
		"text-embedding-3-small": {Semantic: 0.5, Exact: 0.3, Evidence: true},
	} {
		if got := DefaultFusion(model); got != want {
			t.Errorf("DefaultFusion(%q) = %+v, want %+v", model, got, want)
		}
	}
}
