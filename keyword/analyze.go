package keyword

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxTokenBytes is the longest token kept, in bytes after lowercasing.
// Longer runs of letters and digits (hashes, base64, minified code) are
// dropped rather than indexed.
const MaxTokenBytes = 64

// Analyzer turns text into terms. The zero value is the default: lowercase,
// split on anything that is not a letter, digit or combining mark, strip
// English possessives, drop tokens over [MaxTokenBytes], and stem plain
// ASCII words with the light English stemmer (Porter2 steps 0 to 1c).
//
// The same analyzer must be used for documents and queries; an [Index]
// keeps its analyzer and applies it to both.
type Analyzer struct {
	// NoStem turns the English stemmer off: terms are the lowercased words.
	NoStem bool
}

// DefaultAnalyzer is the analyzer of [Analyze], [Snippet] and [New].
var DefaultAnalyzer = Analyzer{}

// Analyze returns the terms of text in order, with repeats, using
// [DefaultAnalyzer].
func Analyze(text string) []string { return DefaultAnalyzer.Analyze(text) }

// Analyze returns the terms of text in order, with repeats: one term per
// word. Phrases are matched against this sequence.
func (a Analyzer) Analyze(text string) []string {
	var out []string
	a.scan(text, func(term string, _, _ int) { out = append(out, term) })
	return out
}

// Terms returns the terms an [Index] keeps for a document's text: the
// terms of [Analyzer.Analyze], each compound word's followed by the terms
// of its parts. A word is compound when it changes case
// inside ("TrimSpace", "HTTPServer") or joins letters and digits
// ("sha256", "Sum256"); its parts are the runs between those changes
// ("trim", "space"; "http", "server"; "sha", "256"), analyzed like words.
// So "TrimSpace" is found by "trim" as well as by "TrimSpace", and a
// question in plain words finds the names made of them. A possessive
// ending is dropped first ("TrimSpace's"); other words with an apostrophe
// are not split. Queries are not split: a compound word in a query is
// searched as written, since its parts as extra terms of the query found
// other documents by common parts ("Open" of "OpenPGP") on the tuning
// questions of the evaluation sets.
func (a Analyzer) Terms(text string) []string {
	out, _ := a.indexTerms(text)
	return out
}

// indexTerms returns the terms of [Analyzer.Terms] and the number of words
// they come from, which is the length of text that BM25 normalizes by: a
// compound word's parts are other readings of the same word, not more
// words (as Lucene's BM25 discounts tokens that overlap).
func (a Analyzer) indexTerms(text string) (terms []string, words int) {
	last := -1
	a.scanParts(text, func(term string, start, _ int) {
		terms = append(terms, term)
		if start != last {
			words++
			last = start
		}
	})
	return terms, words
}

// scanParts is scan with the parts of compound words: after a compound
// word's term, the term of each part, with the span of the whole word.
func (a Analyzer) scanParts(text string, emit func(term string, start, end int)) {
	a.scan(text, func(term string, start, end int) {
		emit(term, start, end)
		word := text[start:end]
		if oneClass(word) {
			return // most words of prose: no parts
		}
		word = trimPossessive(word)
		cuts := partCuts(word)
		if len(cuts) == 0 {
			return
		}
		from := 0
		for i := 0; i <= len(cuts); i++ {
			to := len(word)
			if i < len(cuts) {
				to = cuts[i]
			}
			part := word[from:to]
			from = to
			if t, ok := a.term(part, isPlain(part)); ok && t != term {
				emit(t, start, end)
			}
		}
	})
}

// partCuts returns the byte offsets inside word where its parts start
// (none if the word is not compound): before an upper-case letter that
// follows a lower-case one ("trim|Space"), before the last of a run of
// upper-case letters when a lower-case one follows ("HTTP|Server"), and
// between letters and digits ("sha|256", "Sum|256"). A word with an
// apostrophe has no parts.
func partCuts(word string) []int {
	const (
		other = iota
		lower
		upper
		digit
	)
	class := func(r rune) int {
		switch {
		case unicode.IsDigit(r):
			return digit
		case unicode.IsUpper(r):
			return upper
		case unicode.IsLetter(r):
			return lower
		}
		return other
	}
	var cuts []int
	prev, prevAt := other, 0
	for i, r := range word {
		c := class(r)
		switch {
		case r == '\'' || r == '\u2019':
			return nil
		case c == other: // a combining mark belongs to the letter before it
			continue
		case prev == lower && c == upper,
			prev == digit && (c == lower || c == upper),
			(prev == lower || prev == upper) && c == digit:
			cuts = append(cuts, i)
		case prev == upper && c == lower && prevAt > 0:
			// "HTTPServer": the 'S' before "erver" starts a part, unless
			// the run of capitals is one letter ("Server").
			if p := prevAt; p > 0 && (len(cuts) == 0 || cuts[len(cuts)-1] < p) {
				if r0, _ := utf8.DecodeLastRuneInString(word[:p]); class(r0) == upper {
					cuts = append(cuts, p)
				}
			}
		}
		prev, prevAt = c, i
	}
	return cuts
}

// oneClass reports whether word is lowercase ASCII letters only or ASCII
// digits only: such a word has no parts (partCuts cuts only where the
// class of its characters changes), so it needs no look for them.
func oneClass(word string) bool {
	letters, digits := 0, 0
	for i := 0; i < len(word); i++ {
		switch c := word[i]; {
		case 'a' <= c && c <= 'z':
			letters++
		case '0' <= c && c <= '9':
			digits++
		default:
			return false
		}
	}
	return letters == 0 || digits == 0
}

// trimPossessive removes the possessive endings of a word ("TrimSpace's").
func trimPossessive(word string) string {
	for {
		switch {
		case strings.HasSuffix(word, "'s"), strings.HasSuffix(word, "'S"):
			word = word[:len(word)-2]
		case strings.HasSuffix(word, "\u2019s"), strings.HasSuffix(word, "\u2019S"):
			word = word[:len(word)-len("\u2019s")]
		default:
			return word
		}
	}
}

// isPlain reports whether s is lowercase ASCII letters and digits only.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// scan calls emit for every term of text with the byte span of the word it
// came from. Terms may share memory with text.
func (a Analyzer) scan(text string, emit func(term string, start, end int)) {
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if !isASCIIWord(c) {
				i++
				continue
			}
		} else {
			r, w := utf8.DecodeRuneInString(text[i:])
			if isIdeograph(r) {
				// Han and kana have no spaces between words: each
				// character is a term, as in Lucene's standard tokenizer.
				emit(strings.ToLower(text[i:i+w]), i, i+w)
				i += w
				continue
			}
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				i += w
				continue
			}
		}
		start := i
		var plain bool
		i, plain = wordEnd(text, i)
		if term, ok := a.term(text[start:i], plain); ok {
			emit(term, start, i)
		}
	}
}

// wordEnd returns the end of the word starting at i and whether the word
// is plain: lowercase ASCII letters and digits only.
func wordEnd(text string, i int) (int, bool) {
	plain := true
	for i < len(text) {
		c := text[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				i++
				continue
			case 'A' <= c && c <= 'Z':
				plain = false
				i++
				continue
			case c == '\'' && letterAt(text, i+1):
				plain = false
				i++
				continue
			}
			return i, plain
		}
		r, w := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == '\u2019' && letterAt(text, i+w):
		case isIdeograph(r):
			return i, plain
		case unicode.IsLetter(r), unicode.IsDigit(r), unicode.Is(unicode.M, r):
		default:
			return i, plain
		}
		plain = false
		i += w
	}
	return i, plain
}

// term normalizes one word; ok is false if the word is dropped.
func (a Analyzer) term(word string, plain bool) (string, bool) {
	t := word
	if !plain {
		t = strings.Map(lowerRune, word)
		for strings.HasSuffix(t, "'s") {
			t = t[:len(t)-2]
		}
	}
	if len(t) > MaxTokenBytes || t == "" {
		return "", false
	}
	if !a.NoStem && stemmable(t) {
		t = stem(t)
	}
	return t, true
}

func lowerRune(r rune) rune {
	if r == '\u2019' {
		return '\''
	}
	return unicode.ToLower(r)
}

func isASCIIWord(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func letterAt(text string, i int) bool {
	if i >= len(text) {
		return false
	}
	if c := text[i]; c < utf8.RuneSelf {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return unicode.IsLetter(r) && !isIdeograph(r)
}

func isIdeograph(r rune) bool {
	return r >= 0x2E80 && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r))
}

// stopWords is Lucene's classic English stop set. Stop words are indexed
// and searched like any word; the set serves callers that want to tell
// them apart ([IsStopWord]).
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be but by for if in into is it no not
		of on or such that the their then there these they this to was will with`) {
		m[w] = true
		m[stem(w)] = true
	}
	return m
}()

// IsStopWord reports whether term (an analyzed term) is on the English
// stop list.
func IsStopWord(term string) bool { return stopWords[term] }
