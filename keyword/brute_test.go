package keyword_test

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/keyword/keywordtest"
)

// brute is a reference implementation: every document is scored by the
// BM25 formula directly from its analyzed terms.
type brute struct {
	docs map[uint32][]string // every added document, tombstoned or not
	dead map[uint32]bool
	df   map[string]float64 // document frequencies, computed on first use
	avg  float64
	tfs  map[uint32]map[string]int
	lens map[uint32]int // length in words
}

// add analyzes text as the index does: the terms of its words and of
// their parts, the length in words.
func (b *brute) add(key uint32, text string) {
	if b.lens == nil {
		b.lens = map[uint32]int{}
	}
	b.docs[key] = keyword.DefaultAnalyzer.Terms(text)
	b.lens[key] = len(keyword.Analyze(text))
}

// withCompounds returns the corpus document i, with compound words of
// corpus words added to some: "alphaBeta", "Gamma42".
func withCompounds(c *keywordtest.Corpus, i int) string {
	text := c.Doc(i)
	if i%4 == 0 {
		a, b := keywordtest.Word(i%37), keywordtest.Word(i%53+1)
		text += " " + a + strings.ToUpper(b[:1]) + b[1:] + " " + strings.ToUpper(a[:1]) + a[1:] + "42"
	}
	return text
}

func (b *brute) stats() {
	b.df, b.avg, b.tfs = map[string]float64{}, 0, map[uint32]map[string]int{}
	for key, terms := range b.docs {
		b.avg += float64(b.lens[key])
		b.tfs[key] = map[string]int{}
		for _, t := range terms {
			if b.tfs[key][t] == 0 {
				b.df[t]++
			}
			b.tfs[key][t]++
		}
	}
	b.avg /= float64(len(b.docs))
}

func (b *brute) search(query string, k int, mode keyword.Mode, allow func(uint32) bool) []keyword.Result {
	var qs, words []string
	seen := map[string]bool{}
	for _, w := range strings.Fields(query) {
		t := keyword.Analyze(w)
		if len(t) == 1 && !seen[t[0]] {
			seen[t[0]] = true
			qs, words = append(qs, t[0]), append(words, strings.ToLower(w))
		}
	}
	if mode == keyword.Or {
		var keepQ, keepW []string
		for i, q := range qs {
			if !keyword.IsStopWord(q) {
				keepQ, keepW = append(keepQ, q), append(keepW, words[i])
			}
		}
		if len(keepQ) > 0 {
			qs, words = keepQ, keepW
		}
	}
	if b.df == nil {
		b.stats()
	}
	df, avg, n := b.df, b.avg, float64(len(b.docs))
	var out []keyword.Result
	for key := range b.docs {
		tfs := b.tfs[key]
		score, matched := 0.0, []string(nil)
		for i, q := range qs {
			tf := float64(tfs[q])
			if tf == 0 {
				continue
			}
			idf := math.Log(1 + (n-df[q]+0.5)/(df[q]+0.5))
			score += idf * (keyword.K1 + 1) * tf / (tf + keyword.K1*(1-keyword.B) + keyword.K1*keyword.B/avg*float64(b.lens[key]))
			matched = append(matched, words[i])
		}
		if len(matched) == 0 || mode == keyword.And && len(matched) < len(qs) || b.dead[key] || allow != nil && !allow(key) {
			continue
		}
		out = append(out, keyword.Result{Key: key, Score: float32(score), Matched: matched})
	}
	slices.SortFunc(out, func(a, b keyword.Result) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return out[:min(k, len(out))]
}

// sameResults compares results whose scores may differ in the last bits
// of a float32: keys must agree except between near-equal scores.
func sameResults(got, want []keyword.Result) bool {
	if len(got) != len(want) {
		return false
	}
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-5*math.Abs(float64(b)) }
	for i := range got {
		if !near(got[i].Score, want[i].Score) {
			return false
		}
		if got[i].Key != want[i].Key {
			tied := i > 0 && near(want[i].Score, want[i-1].Score) || i+1 < len(want) && near(want[i].Score, want[i+1].Score)
			if !tied {
				return false
			}
			continue
		}
		if !slices.Equal(got[i].Matched, want[i].Matched) {
			return false
		}
	}
	return true
}

// TestIndex_Search_matchesBruteForce checks MaxScore, block skipping,
// tombstones, filters and And against exhaustive scoring on a corpus with
// a small vocabulary, keys added out of order.
func TestIndex_Search_matchesBruteForce(t *testing.T) {
	c := &keywordtest.Corpus{Seed: 3, Vocab: 400}
	x := keyword.New(keyword.Config{})
	b := &brute{docs: map[uint32][]string{}, dead: map[uint32]bool{}}
	r := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	for _, i := range r.Perm(n) {
		text := withCompounds(c, i)
		if i%97 == 0 {
			text = ""
		}
		if err := x.Add(uint32(i), text); err != nil {
			t.Fatal(err)
		}
		b.add(uint32(i), text)
	}
	for i := 0; i < n; i += 13 {
		x.Delete(uint32(i))
		b.dead[uint32(i)] = true
	}
	check := func(t *testing.T) {
		queries := slices.Concat(c.Queries(keywordtest.And2, 40), c.Queries(keywordtest.OrCommon3, 40), c.Queries(keywordtest.OrZipf4, 40),
			[]string{"the " + keywordtest.Word(0), keywordtest.Word(3) + " nosuchword"})
		allows := []func(uint32) bool{nil, func(k uint32) bool { return k%3 != 0 }, func(k uint32) bool { return k > 2500 }}
		for qi, q := range queries {
			for _, mode := range []keyword.Mode{keyword.Or, keyword.And} {
				k := []int{1, 3, 10, 100, 5000}[qi%5]
				allow := allows[qi%3]
				got := MustSearch(t, x, q, k, mode, allow)
				if want := b.search(q, k, mode, allow); !sameResults(got, want) {
					t.Fatalf("%s %q k=%d filter %d:\n got %v\nwant %v", mode, q, k, qi%3, got, want)
				}
			}
		}
	}
	t.Run("with tombstones", check)
	x.Compact()
	for k := range b.dead {
		delete(b.docs, k)
	}
	b.dead, b.df = map[uint32]bool{}, nil
	t.Run("compacted", check)
}

// TestIndex_SearchAmong_matchesBruteForce checks that ranking a given set
// of keys gives what Search gives with a filter that keeps exactly those
// keys, and what exhaustive scoring gives, with tombstones and keys the
// index does not have.
func TestIndex_SearchAmong_matchesBruteForce(t *testing.T) {
	c := &keywordtest.Corpus{Seed: 5, Vocab: 300}
	x := keyword.New(keyword.Config{})
	b := &brute{docs: map[uint32][]string{}, dead: map[uint32]bool{}}
	const n = 2000
	for i := range n {
		text := withCompounds(c, i)
		if err := x.Add(uint32(i), text); err != nil {
			t.Fatal(err)
		}
		b.add(uint32(i), text)
	}
	for i := 0; i < n; i += 11 {
		x.Delete(uint32(i))
		b.dead[uint32(i)] = true
	}
	r := rand.New(rand.NewPCG(7, 8))
	queries := slices.Concat(c.Queries(keywordtest.And2, 30), c.Queries(keywordtest.OrCommon3, 30), c.Queries(keywordtest.OrZipf4, 30))
	for qi, q := range queries {
		var keys []uint32
		every := 1 + r.IntN(200)
		for k := uint32(r.IntN(every)); k < n+50; k += uint32(1 + r.IntN(every)) { // past n: keys the index lacks
			keys = append(keys, k)
		}
		in := func(k uint32) bool { _, found := slices.BinarySearch(keys, k); return found }
		for _, mode := range []keyword.Mode{keyword.Or, keyword.And} {
			k := []int{1, 5, 10, 200}[qi%4]
			got, err := x.SearchAmong(q, k, mode, keys)
			if err != nil {
				t.Fatal(err)
			}
			if want := MustSearch(t, x, q, k, mode, in); !slices.EqualFunc(got, want, func(a, b keyword.Result) bool {
				return a.Key == b.Key && a.Score == b.Score && slices.Equal(a.Matched, b.Matched)
			}) {
				t.Fatalf("%s %q k=%d over %d keys:\n got %v\nwant %v (Search with the same keys as a filter)", mode, q, k, len(keys), got, want)
			}
			if want := b.search(q, k, mode, in); !sameResults(got, want) {
				t.Fatalf("%s %q k=%d over %d keys:\n got %v\nwant %v (brute force)", mode, q, k, len(keys), got, want)
			}
		}
	}
	if _, err := x.SearchAmong("a b", 3, keyword.Or, []uint32{5, 2}); err == nil {
		t.Fatal("keys out of order were accepted")
	}
}

// TestIndex_Containing checks the documents having every term of a text
// against the analyzed documents, with tombstones and a bound.
func TestIndex_Containing(t *testing.T) {
	c := &keywordtest.Corpus{Seed: 9, Vocab: 60}
	x := keyword.New(keyword.Config{})
	docs := map[uint32][]string{}
	const n = 1500
	for i := range n {
		text := withCompounds(c, i)
		if err := x.Add(uint32(i), text); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			x.Delete(uint32(i))
			continue
		}
		docs[uint32(i)] = keyword.DefaultAnalyzer.Terms(text)
	}
	for qi, q := range slices.Concat(c.Queries(keywordtest.And2, 20), c.Queries(keywordtest.OrCommon3, 20), []string{"the " + keywordtest.Word(1), "nosuchword " + keywordtest.Word(2)}) {
		var want []uint32
		for key, terms := range docs {
			all := true
			for _, term := range keyword.Analyze(q) {
				all = all && slices.Contains(terms, term)
			}
			if all {
				want = append(want, key)
			}
		}
		slices.Sort(want)
		got, ok := x.Containing(q, n)
		if !ok || !slices.Equal(got, want) {
			t.Fatalf("query %d %q: got %v (%v), want %v", qi, q, got, ok, want)
		}
		if len(want) > 1 {
			if _, ok := x.Containing(q, len(want)-1); ok {
				t.Fatalf("query %q: %d documents fit a bound of %d", q, len(want), len(want)-1)
			}
		}
	}
}
