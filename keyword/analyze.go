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

// Analyze returns the terms of text in order, with repeats.
func (a Analyzer) Analyze(text string) []string {
	var out []string
	a.scan(text, func(term string, _, _ int) { out = append(out, term) })
	return out
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
