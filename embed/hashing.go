package embed

import (
	"context"
	"fmt"
	"math"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
)

// DefaultDimension is the dimension of [NewHashing] when it is given none.
const DefaultDimension = 384

// hashingVersion names the feature function. Change it whenever a change to
// this file changes any vector, so that stored vectors of the old function
// are never compared with new ones.
const hashingVersion = "v1"

// Features and their weights. Per word there is one unigram, one bigram and
// about a dozen character n-grams, so the n-gram weight is low enough that
// whole words and word pieces carry about equal shares of the vector.
const (
	kindWord   = iota // a whole word
	kindBigram        // two adjacent words
	kindChar          // a character n-gram of a word with boundary markers
	numKinds
)

var kindWeight = [numKinds]float64{kindWord: 1.0, kindBigram: 0.7, kindChar: 0.35}

// Character n-grams run from minGram to maxGram runes, boundary markers
// included: "<cat>" gives "<ca", "cat", "at>", "<cat", "cat>" and "<cat>".
const (
	minGram = 3
	maxGram = 5
)

// Hashing is the built-in [nexus.Embedder]: a deterministic feature-hashing
// embedder that needs no model, no network and no download.
//
// It is lexical, not a neural model: it matches shared words and word
// pieces, not meaning. "The car would not start" is close to "the car did
// not start" and far from "the engine failed to turn over". Use it to search
// by vocabulary, as an offline default, and in tests; use [OpenAI] with a
// real embedding model when meaning matters.
//
// A text is lowercased (Unicode simple case mapping) and split into words
// of letters and digits, with the combining marks that follow them; every
// other character separates words, and each Han, Hiragana and Katakana character is a word of its own
// because those scripts do not put spaces between words. The features are
// every word, every pair of adjacent words, and every character n-gram of
// 3 to 5 runes of each word wrapped in boundary markers ("<word>"). A
// feature occurring tf times weighs 1+ln(tf), times a weight per kind of
// feature; a 64-bit hash of the feature (FNV-1a, then mixed) picks one of
// Dimension components and whether to add or subtract the weight there. The vector is then scaled to
// unit length, so the dot product of two vectors is their cosine.
//
// A text with no letters or digits ("", "  ", "!!!") has no features and
// gets the zero vector: its dot product with every vector is 0, so it
// matches nothing, and it is the one result whose length is not 1.
//
// The function is fixed by its [Hashing.Model] id, "nexus-hash-v1-" and the
// dimension: the same text gives the same vector on every platform and in
// every process. It is safe for concurrent use.
type Hashing struct {
	dim   int
	model string
}

var _ nexus.Embedder = (*Hashing)(nil)

// NewHashing returns a hashing embedder of dimension dim, or of
// [DefaultDimension] if dim ≤ 0. More dimensions mean fewer collisions
// between features and more space per stored vector.
func NewHashing(dim int) *Hashing {
	if dim <= 0 {
		dim = DefaultDimension
	}
	return &Hashing{dim: dim, model: fmt.Sprintf("nexus-hash-%s-%d", hashingVersion, dim)}
}

// Model returns "nexus-hash-v1-<dimension>", such as "nexus-hash-v1-384".
func (h *Hashing) Model() string { return h.model }

// Dimension returns the length of every vector.
func (h *Hashing) Dimension() int { return h.dim }

// Embed returns one vector per text, in order. It fails only when ctx is
// done, with code unavailable wrapping the context's error.
func (h *Hashing) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	if len(texts) == 0 {
		return out, nil
	}
	backing := make([]float32, len(texts)*h.dim)
	f := featurizers.Get().(*featurizer)
	defer f.release()
	for i, text := range texts {
		if err := ctx.Err(); err != nil {
			return nil, nexus.WrapError(nexus.EUnavailable, err, "embedding canceled")
		}
		v := backing[i*h.dim : (i+1)*h.dim : (i+1)*h.dim]
		f.embed(text, v)
		out[i] = v
	}
	return out, nil
}

// featurizer holds the buffers of one embedding, reused through a pool.
type featurizer struct {
	buf   []byte // the lowercased words, back to back
	words []span // the words, as ranges of buf
	uniq  []uniqueWord
	pad   []byte // "<" word ">"
	runes []int  // byte offsets in pad where runes start, then len(pad)
	tab   featureTable
}

type span struct{ start, end int }

// uniqueWord is the first occurrence of a word and the key of its feature.
type uniqueWord struct {
	span
	key uint64
}

var featurizers = sync.Pool{New: func() any { return &featurizer{tab: newFeatureTable(1024)} }}

// Buffers that grew past these sizes for a huge text are not pooled.
const (
	maxPooledBytes = 1 << 20
	maxPooledSlots = 1 << 16
)

func (f *featurizer) release() {
	f.tab.reset()
	if cap(f.buf) > maxPooledBytes || len(f.tab.slots) > maxPooledSlots {
		return
	}
	featurizers.Put(f)
}

// embed writes the unit vector of text to v, or zeros if it has no features.
func (f *featurizer) embed(text string, v []float32) {
	f.tokenize(text)
	f.tab.reset()
	f.uniq = f.uniq[:0]
	for i, w := range f.words {
		word := f.buf[w.start:w.end]
		key := mix(fnvBytes(fnvByte(fnvOffset, kindWord), word))
		if f.tab.add(key, kindWord, 1) == 1 {
			f.uniq = append(f.uniq, uniqueWord{w, key})
		}
		if i > 0 {
			prev := f.buf[f.words[i-1].start:f.words[i-1].end]
			h := fnvBytes(fnvByte(fnvBytes(fnvByte(fnvOffset, kindBigram), prev), ' '), word)
			f.tab.add(mix(h), kindBigram, 1)
		}
	}
	// The n-grams of a word that occurs n times occur n times: work them
	// out once per distinct word.
	for _, u := range f.uniq {
		f.charGrams(f.buf[u.start:u.end], f.tab.count(u.key))
	}
	f.project(v)
}

// tokenize splits text into lowercased words in f.buf and f.words.
func (f *featurizer) tokenize(text string) {
	f.buf, f.words = f.buf[:0], f.words[:0]
	start := -1
	endWord := func() {
		if start >= 0 {
			f.words = append(f.words, span{start, len(f.buf)})
			start = -1
		}
	}
	for i := 0; i < len(text); {
		r, size := rune(text[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(text[i:])
		}
		i += size
		switch {
		case r < utf8.RuneSelf && asciiWord[r] != 0:
			if start < 0 {
				start = len(f.buf)
			}
			f.buf = append(f.buf, asciiWord[r])
		case r < utf8.RuneSelf:
			endWord()
		case isSolo(r):
			endWord()
			start = len(f.buf)
			f.buf = utf8.AppendRune(f.buf, r)
			endWord()
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) && start >= 0:
			if start < 0 {
				start = len(f.buf)
			}
			f.buf = utf8.AppendRune(f.buf, unicode.ToLower(r))
		default:
			endWord()
		}
	}
	endWord()
}

// asciiWord maps an ASCII letter or digit to its lowercase form and every
// other ASCII byte to 0.
var asciiWord = func() (t [utf8.RuneSelf]byte) {
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c
	}
	for c := byte('a'); c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = c, c
	}
	return t
}()

// isSolo reports whether r is written without spaces between words, so that
// each character counts as a word.
func isSolo(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana)
}

// charGrams adds n occurrences of each character n-gram of "<" word ">".
// The n-grams that start at the same rune share the prefix of their hash.
func (f *featurizer) charGrams(word []byte, n uint32) {
	f.pad = append(append(append(f.pad[:0], '<'), word...), '>')
	f.runes = f.runes[:0]
	for i := 0; i < len(f.pad); {
		f.runes = append(f.runes, i)
		if f.pad[i] < utf8.RuneSelf {
			i++
		} else {
			_, n := utf8.DecodeRune(f.pad[i:])
			i += n
		}
	}
	f.runes = append(f.runes, len(f.pad))
	runes := len(f.runes) - 1 // in pad
	for i := 0; i+minGram <= runes; i++ {
		h := fnvBytes(fnvByte(fnvOffset, kindChar), f.pad[f.runes[i]:f.runes[i+minGram-1]])
		for end := i + minGram; end <= i+maxGram && end <= runes; end++ {
			h = fnvBytes(h, f.pad[f.runes[end-1]:f.runes[end]])
			f.tab.add(mix(h), kindChar, n)
		}
	}
}

// project adds each feature's signed weight to its component of v and
// scales v to unit length. Features are visited in the order they first
// occurred, so the floating-point sums are the same on every run.
func (f *featurizer) project(v []float32) {
	clear(v)
	dim := uint64(len(v))
	for _, idx := range f.tab.order {
		s := &f.tab.slots[idx]
		w := kindWeight[s.kind]
		if s.count > 1 {
			w *= 1 + math.Log(float64(s.count))
		}
		b := (s.key & 0xffffffff) * dim >> 32 // uniform in [0, dim) from the low 32 bits
		if s.key>>63 != 0 {
			v[b] -= float32(w)
		} else {
			v[b] += float32(w)
		}
	}
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x) // exact: a float32 squared fits a float64
	}
	if sum == 0 {
		return
	}
	inv := 1 / math.Sqrt(sum)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
}

// FNV-1a, 64 bits: fixed, and the same on every platform.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime }

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

// mix is the MurmurHash3 finalizer: it spreads FNV's weak low bits over
// the whole word, since the component comes from the low bits and the sign
// from the top one.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Local reports that the vectors are made here, from the text alone: a
// search index does not keep them in the store's repository, since
// embedding a text again costs less (search.LocalEmbedder).
func (h *Hashing) Local() bool { return true }
