package quality

import (
	"math/rand/v2"
	"strings"
)

// Noise returns n noise contexts for a set: texts drawn from the set's own
// vocabulary by a word-bigram chain over its documents, each as long as a
// document picked at random, so that they share the answers' words and
// look like them at a glance without answering anything. The same set,
// n and seed give the same texts.
func Noise(s *Set, n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 0x6e6f697365)) // "noise"
	var words []string
	next := map[string][]int{} // word → indexes in words of the words that follow it
	lengths := make([]int, 0, len(s.Docs))
	for _, d := range s.Docs {
		ws := strings.Fields(d.Text)
		lengths = append(lengths, len(ws))
		for i, w := range ws {
			if i > 0 {
				next[ws[i-1]] = append(next[ws[i-1]], len(words))
			}
			words = append(words, w)
		}
	}
	out := make([]string, n)
	var b strings.Builder
	for i := range out {
		b.Reset()
		length := min(max(lengths[r.IntN(len(lengths))], 8), 200)
		w := words[r.IntN(len(words))]
		for j := range length {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(w)
			// One word in eight jumps anywhere, so that no long run of a
			// document is copied.
			if f := next[w]; len(f) > 0 && r.IntN(8) != 0 {
				w = words[f[r.IntN(len(f))]]
			} else {
				w = words[r.IntN(len(words))]
			}
		}
		out[i] = b.String()
	}
	return out
}
