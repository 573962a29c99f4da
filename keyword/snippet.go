package keyword

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Snippet returns an excerpt of text of at most max runes around the
// densest cluster of the given terms, using [DefaultAnalyzer].
func Snippet(text string, terms []string, max int) string {
	return DefaultAnalyzer.Snippet(text, terms, max)
}

// Snippet returns an excerpt of text of at most max runes (counting the
// "…" marks of a cut, left out when max < 3) around the window with the most distinct terms, then
// the most matches. terms are analyzed like text, so the words of a query
// or the Matched of a [Result] can be passed as they are. Runs of white
// space become one space; the result is valid UTF-8 even if text is not.
// Without a match it is the start of text.
func (a Analyzer) Snippet(text string, terms []string, max int) string {
	if max <= 0 || text == "" {
		return ""
	}
	want := map[string]int{}
	for _, t := range terms {
		a.scan(t, func(term string, _, _ int) {
			if _, ok := want[term]; !ok {
				want[term] = len(want)
			}
		})
	}
	runes := []rune(text)
	if len(runes) <= max {
		return collapseSpace(string(runes))
	}
	marks := max >= 3 // room for "…" at both ends
	budget := max
	if marks {
		budget -= 2
	}
	lo, hi := 0, 0
	if hits := a.hits(text, want); len(hits) > 0 {
		lo, hi = bestWindow(hits, len(want), budget)
	}
	start, end := place(runes, lo, hi, budget)
	out := collapseSpace(string(runes[start:end]))
	if marks && start > 0 {
		out = "…" + out
	}
	if marks && end < len(runes) {
		out += "…"
	}
	return out
}

// hit is a matching word: its span in runes and the index of its term.
type hit struct{ start, end, id int }

func (a Analyzer) hits(text string, want map[string]int) []hit {
	var hits []hit
	pos, rpos := 0, 0
	a.scan(text, func(term string, s, e int) {
		id, ok := want[term]
		if !ok {
			return
		}
		rpos += utf8.RuneCountInString(text[pos:s])
		rs := rpos
		rpos += utf8.RuneCountInString(text[s:e])
		pos = e
		hits = append(hits, hit{rs, rpos, id})
	})
	return hits
}

// bestWindow returns the rune span of the run of hits that fits in budget
// with the most distinct terms, then the most hits, the earliest first.
func bestWindow(hits []hit, nterms, budget int) (lo, hi int) {
	count := make([]int, nterms)
	distinct, best, bestScore := 0, 0, -1
	bestJ := 0
	i := 0
	for j, h := range hits {
		if count[h.id] == 0 {
			distinct++
		}
		count[h.id]++
		for hits[j].end-hits[i].start > budget && i < j {
			count[hits[i].id]--
			if count[hits[i].id] == 0 {
				distinct--
			}
			i++
		}
		if s := distinct*(len(hits)+1) + (j - i + 1); s > bestScore {
			best, bestJ, bestScore = i, j, s
		}
	}
	return hits[best].start, hits[bestJ].end
}

// place centres [lo, hi) in a span of budget runes, or starts at the
// beginning of the text if [lo, hi) fits there, and moves the cut ends off
// the middle of words where the slack allows.
func place(runes []rune, lo, hi, budget int) (start, end int) {
	if hi-lo > budget {
		hi = lo + budget
	}
	start = lo - (budget-(hi-lo))/2
	if start < 0 || hi <= budget {
		start = 0 // the matches fit from the start: begin there
	}
	end = start + budget
	if end > len(runes) {
		end = len(runes)
		start = max(0, end-budget)
	}
	if start > 0 && isWordRune(runes[start-1]) {
		for s := start; s < lo; s++ {
			if !isWordRune(runes[s]) {
				start = s + 1
				break
			}
		}
	}
	if end < len(runes) && isWordRune(runes[end]) {
		for e := end - 1; e >= hi; e-- {
			if !isWordRune(runes[e]) {
				end = e
				break
			}
		}
	}
	return start, end
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r)
}

func collapseSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
