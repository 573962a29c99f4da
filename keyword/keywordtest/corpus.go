// Package keywordtest generates a deterministic synthetic corpus and query
// sets for tests and benchmarks of the keyword index, and of other engines
// measured against it on the same data.
package keywordtest

import (
	"math/rand/v2"
	"strings"
)

// Corpus parameters.
const (
	DefaultVocab = 200_000 // distinct words
	ZipfS        = 1.07    // Zipf exponent: word of rank r has weight (1+r)^-s
	MinWords     = 20      // words per document, uniform in [MinWords, MaxWords]
	MaxWords     = 80
)

// Corpus is a synthetic corpus: document i is a function of the seed and
// i alone, so documents can be generated in any order.
type Corpus struct {
	Seed  uint64
	Vocab int
}

// New returns the corpus of seed with [DefaultVocab] words.
func New(seed uint64) *Corpus { return &Corpus{Seed: seed, Vocab: DefaultVocab} }

const (
	consonants = "bdfgklmnprtvz"
	vowels     = "aiou"
	syllables  = len(consonants) * len(vowels)
)

// Word returns the word of rank r (0 is the most common): consonant-vowel
// syllables, two for the commonest 2,704 words, then three, then four.
// Words end in a vowel other than e or y, so no English stemmer or stop
// list changes them.
func Word(r int) string {
	n := 2
	for limit := syllables * syllables; r >= limit; limit *= syllables {
		r -= limit
		n++
	}
	var b strings.Builder
	for range n {
		s := r % syllables
		r /= syllables
		b.WriteByte(consonants[s/len(vowels)])
		b.WriteByte(vowels[s%len(vowels)])
	}
	return b.String()
}

func (c *Corpus) rng(stream, i uint64) (*rand.Rand, *rand.Zipf) {
	r := rand.New(rand.NewPCG(c.Seed, stream<<56|i))
	return r, rand.NewZipf(r, ZipfS, 1, uint64(c.Vocab-1))
}

// Doc returns document i: MinWords to MaxWords Zipf-distributed words in
// sentences of 5 to 14 words, each capitalized and ended by a period.
func (c *Corpus) Doc(i int) string {
	r, z := c.rng(0, uint64(i))
	n := MinWords + r.IntN(MaxWords-MinWords+1)
	var b strings.Builder
	b.Grow(n * 7)
	left := 0
	for w := range n {
		word := Word(int(z.Uint64()))
		if left == 0 {
			if w > 0 {
				b.WriteString(". ")
			}
			left = 5 + r.IntN(10)
			word = strings.ToUpper(word[:1]) + word[1:]
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(word)
		left--
	}
	b.WriteByte('.')
	return b.String()
}

// QueryKind names a query set.
type QueryKind int

// Query sets.
const (
	And2      QueryKind = iota // two distinct Zipf-drawn words, meant for And
	OrCommon3                  // three distinct words among the 50 commonest, for Or
	OrZipf4                    // four distinct Zipf-drawn words, for Or
)

// String names the set.
func (k QueryKind) String() string {
	return [...]string{"and-2-zipf", "or-3-common", "or-4-zipf"}[k]
}

// Queries returns n queries of the kind, deterministic in the seed.
func (c *Corpus) Queries(kind QueryKind, n int) []string {
	r, z := c.rng(1+uint64(kind), 0)
	size := [...]int{2, 3, 4}[kind]
	out := make([]string, n)
	for i := range out {
		seen := map[int]bool{}
		var words []string
		for len(words) < size {
			rank := int(z.Uint64())
			if kind == OrCommon3 {
				rank = r.IntN(50)
			}
			if !seen[rank] {
				seen[rank] = true
				words = append(words, Word(rank))
			}
		}
		out[i] = strings.Join(words, " ")
	}
	return out
}
