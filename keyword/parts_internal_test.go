package keyword

import (
	"math/rand/v2"
	"testing"
)

// A word oneClass passes has no parts: partCuts finds none in it. Words
// drawn from letters of both cases, digits, an apostrophe and a non-ASCII
// letter, so that both answers of oneClass are exercised.
func TestOneClass_noParts(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []string{"a", "z", "q", "A", "Z", "0", "9", "'", "é", "É"}
	passed := 0
	for range 200000 {
		w := ""
		for range 1 + r.IntN(6) {
			w += alphabet[r.IntN(len(alphabet))]
		}
		if oneClass(w) {
			passed++
			if cuts := partCuts(trimPossessive(w)); len(cuts) != 0 {
				t.Fatalf("%q: oneClass, but partCuts cuts it at %v", w, cuts)
			}
		}
	}
	if passed < 1000 {
		t.Fatalf("only %d words passed oneClass", passed)
	}
	for _, w := range []string{"sha256", "Sum", "trimSpace", "x2", "2x", "don't", "élan"} {
		if oneClass(w) {
			t.Errorf("oneClass(%q) = true", w)
		}
	}
}
