package keyword

import "strings"

// The light English stemmer: steps 0, 1a, 1b, 1c and 5 of the Porter2
// (snowball English) algorithm, with its exceptional forms. It folds
// possessives, plurals, -ed, -ing and a final -y ("cats", "cat's" → "cat";
// "running" → "run"; "studies", "study" → "studi"), and the final -e that
// makes a verb's forms differ from one another after step 1b ("parse",
// "parsing" → "pars"; "float", "floating" → "float"), but leaves
// derivational suffixes alone (steps 2–4: "generalization" stays), so it
// conflates few unrelated words. It applies to words of lowercase ASCII
// letters and apostrophes.

// stemmable reports whether t is lowercase ASCII letters and apostrophes.
func stemmable(t string) bool {
	for i := 0; i < len(t); i++ {
		if c := t[i]; (c < 'a' || c > 'z') && c != '\'' {
			return false
		}
	}
	return true
}

var stemSpecial = map[string]string{
	"skis": "ski", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie",
	"idly": "idl", "gently": "gentl", "ugly": "ugli", "early": "earli", "only": "onli", "singly": "singl",
	"sky": "sky", "news": "news", "howe": "howe", "atlas": "atlas", "cosmos": "cosmos", "bias": "bias", "andes": "andes",
}

var stemInvariant1a = map[string]bool{
	"inning": true, "outing": true, "canning": true, "herring": true,
	"earring": true, "proceed": true, "exceed": true, "succeed": true,
}

func stem(w string) string {
	if len(w) <= 2 {
		return w
	}
	if s, ok := stemSpecial[w]; ok {
		return s
	}
	w = strings.TrimPrefix(w, "'")
	w = step0(w)
	w = step1a(w)
	if stemInvariant1a[w] {
		return w
	}
	w = step1b(w)
	return step5(step1c(w))
}

// vowels returns a mask with bit i set if w[i] is a vowel. A 'y' at the
// start or after a vowel is a consonant (Porter2's 'Y').
func vowels(w string) uint64 {
	var m uint64
	for i := 0; i < len(w) && i < 64; i++ {
		switch w[i] {
		case 'a', 'e', 'i', 'o', 'u':
			m |= 1 << i
		case 'y':
			if i > 0 && m&(1<<(i-1)) == 0 {
				m |= 1 << i
			}
		}
	}
	return m
}

func isVowel(m uint64, i int) bool { return i < 64 && m&(1<<i) != 0 }

// region1 returns the start of R1: after the first non-vowel that follows
// a vowel, or after one of Porter2's exceptional prefixes.
func region1(w string, m uint64) int {
	for _, p := range [...]string{"gener", "commun", "arsen"} {
		if strings.HasPrefix(w, p) {
			return len(p)
		}
	}
	for i := 1; i < len(w); i++ {
		if !isVowel(m, i) && isVowel(m, i-1) {
			return i + 1
		}
	}
	return len(w)
}

func step0(w string) string {
	for _, s := range [...]string{"'s'", "'s", "'"} {
		if strings.HasSuffix(w, s) {
			return w[:len(w)-len(s)]
		}
	}
	return w
}

func step1a(w string) string {
	n := len(w)
	switch {
	case strings.HasSuffix(w, "sses"):
		return w[:n-2]
	case strings.HasSuffix(w, "ied"), strings.HasSuffix(w, "ies"):
		if n > 4 {
			return w[:n-2]
		}
		return w[:n-1]
	case strings.HasSuffix(w, "us"), strings.HasSuffix(w, "ss"):
		return w
	case strings.HasSuffix(w, "s"):
		if n >= 2 && vowels(w[:n-2]) != 0 {
			return w[:n-1]
		}
	}
	return w
}

func step1b(w string) string {
	m := vowels(w)
	for _, s := range [...]string{"eedly", "eed"} {
		if strings.HasSuffix(w, s) {
			if len(w)-len(s) >= region1(w, m) {
				return w[:len(w)-len(s)] + "ee"
			}
			return w
		}
	}
	for _, s := range [...]string{"ingly", "edly", "ing", "ed"} {
		if !strings.HasSuffix(w, s) {
			continue
		}
		stem := w[:len(w)-len(s)]
		if vowels(stem) == 0 {
			return w
		}
		return fixStem1b(stem)
	}
	return w
}

func fixStem1b(w string) string {
	n := len(w)
	switch {
	case strings.HasSuffix(w, "at"), strings.HasSuffix(w, "bl"), strings.HasSuffix(w, "iz"):
		return w + "e"
	case n >= 2 && w[n-1] == w[n-2] && strings.IndexByte("bdfgmnprt", w[n-1]) >= 0:
		return w[:n-1]
	case isShort(w):
		return w + "e"
	}
	return w
}

// isShort reports whether w ends in a short syllable and R1 is empty.
func isShort(w string) bool {
	m := vowels(w)
	return region1(w, m) >= len(w) && endsShortSyllable(w, m)
}

func endsShortSyllable(w string, m uint64) bool {
	n := len(w)
	if n == 2 {
		return isVowel(m, 0) && !isVowel(m, 1)
	}
	if n < 3 || isVowel(m, n-3) || !isVowel(m, n-2) || isVowel(m, n-1) {
		return false
	}
	c := w[n-1]
	return c != 'w' && c != 'x' && c != 'y' // a consonant 'y' is Porter2's 'Y'
}

// region2 returns the start of R2: after the first non-vowel that follows
// a vowel in R1.
func region2(w string, m uint64, r1 int) int {
	for i := r1 + 1; i < len(w); i++ {
		if !isVowel(m, i) && isVowel(m, i-1) {
			return i + 1
		}
	}
	return len(w)
}

// step5 is Porter2's step 5 (its steps 2 to 4 are left out): a final 'e'
// goes if it is in R2, or in R1 and not after a short syllable ("parse" →
// "pars", "floate" → "float", but "use" stays); a final 'l' goes after
// another 'l' in R2.
func step5(w string) string {
	n := len(w)
	if n < 2 {
		return w
	}
	m := vowels(w)
	r1 := region1(w, m)
	r2 := region2(w, m, r1)
	switch w[n-1] {
	case 'e':
		if n-1 >= r2 || n-1 >= r1 && !endsShortSyllable(w[:n-1], m) {
			return w[:n-1]
		}
	case 'l':
		if n-1 >= r2 && w[n-2] == 'l' {
			return w[:n-1]
		}
	}
	return w
}

func step1c(w string) string {
	n := len(w)
	if n > 2 && w[n-1] == 'y' && !isVowel(vowels(w), n-2) {
		return w[:n-1] + "i"
	}
	return w
}
