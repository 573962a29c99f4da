package keyword_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/keyword"
)

// MustIndex returns an index of docs keyed by their position.
func MustIndex(tb testing.TB, docs ...string) *keyword.Index {
	tb.Helper()
	x := keyword.New(keyword.Config{})
	for i, d := range docs {
		if err := x.Add(uint32(i), d); err != nil {
			tb.Fatal(err)
		}
	}
	return x
}

func MustSearch(tb testing.TB, x *keyword.Index, q string, k int, mode keyword.Mode, allow func(uint32) bool) []keyword.Result {
	tb.Helper()
	res, err := x.Search(q, k, mode, allow)
	if err != nil {
		tb.Fatalf("Search(%q): %v", q, err)
	}
	return res
}

func keys(res []keyword.Result) []uint32 {
	out := make([]uint32, len(res))
	for i, r := range res {
		out[i] = r.Key
	}
	return out
}

var fruit = []string{"apple banana", "apple apple cherry", "banana cherry cherry durian"}

// TestIndex_Search_bm25 checks scores computed by hand: N = 3, average
// length 3, idf(df) = ln(1 + (N-df+0.5)/(df+0.5)), and
// score = idf·tf·13 / (tf + 12·(0.6 + 0.4·len/3)).
func TestIndex_Search_bm25(t *testing.T) {
	x := MustIndex(t, fruit...)
	cases := []struct {
		query  string
		keys   []uint32
		scores []float64
	}{
		// ln(1.6)·2·13/(2+12) and ln(1.6)·13/(1+10.4)
		{"apple", []uint32{1, 0}, []float64{0.8728638828849375, 0.53596905089426}},
		// doc 2: ln(1.6)·2·13/(2+13.6) + ln(8/3)·13/(1+13.6); doc 1: ln(1.6)·13/(1+12)
		{"durian cherry", []uint32{2, 1}, []float64{1.6566804977715988, 0.47000362924573563}},
	}
	for _, c := range cases {
		res := MustSearch(t, x, c.query, 10, keyword.Or, nil)
		if !slices.Equal(keys(res), c.keys) {
			t.Fatalf("%q: keys %v, want %v", c.query, keys(res), c.keys)
		}
		for i, r := range res {
			if math.Abs(float64(r.Score)-c.scores[i]) > 1e-6 {
				t.Fatalf("%q: doc %d score %v, want %v", c.query, r.Key, r.Score, c.scores[i])
			}
		}
	}
}

func TestIndex_Search_modes(t *testing.T) {
	x := MustIndex(t, fruit...)
	cases := []struct {
		query   string
		mode    keyword.Mode
		keys    []uint32
		matched [][]string
	}{
		{"apple cherry", keyword.And, []uint32{1}, [][]string{{"apple", "cherry"}}},
		{"Apples durian", keyword.Or, []uint32{2, 1, 0}, [][]string{{"durian"}, {"apples"}, {"apples"}}},
		{"apple durian", keyword.And, []uint32{}, nil},
		{"apple unknownword", keyword.And, []uint32{}, nil},
		{"apple unknownword", keyword.Or, []uint32{1, 0}, [][]string{{"apple"}, {"apple"}}},
		{"the apple", keyword.Or, []uint32{1, 0}, [][]string{{"apple"}, {"apple"}}},
	}
	for _, c := range cases {
		t.Run(c.mode.String()+" "+c.query, func(t *testing.T) {
			res := MustSearch(t, x, c.query, 10, c.mode, nil)
			if !slices.Equal(keys(res), c.keys) {
				t.Fatalf("keys %v, want %v", keys(res), c.keys)
			}
			for i, r := range res {
				if !slices.Equal(r.Matched, c.matched[i]) {
					t.Fatalf("doc %d matched %q, want %q", r.Key, r.Matched, c.matched[i])
				}
			}
		})
	}
}

func TestIndex_Search_stopWordsAlone(t *testing.T) {
	x := MustIndex(t, "the cat", "a dog", "the the end")
	if got := keys(MustSearch(t, x, "the", 10, keyword.Or, nil)); !slices.Equal(got, []uint32{2, 0}) {
		t.Fatalf("stop word alone: %v", got)
	}
	if got := keys(MustSearch(t, x, "the cat", 10, keyword.And, nil)); !slices.Equal(got, []uint32{0}) {
		t.Fatalf("stop word in And: %v", got)
	}
}

// TestIndex_Search_stopWordsRank: a stop word of an Or query is scored
// like any term, so it tells apart two documents that have the other
// words alike (equal lengths: without it they would tie, and the smaller
// key would come first).
func TestIndex_Search_stopWordsRank(t *testing.T) {
	x := MustIndex(t, "backup compression disabled", "backup with compression")
	res := MustSearch(t, x, "backup with compression", 10, keyword.Or, nil)
	if got := keys(res); !slices.Equal(got, []uint32{1, 0}) {
		t.Fatalf("keys %v, want [1 0]", got)
	}
	if !slices.Equal(res[0].Matched, []string{"backup", "with", "compression"}) || !slices.Equal(res[1].Matched, []string{"backup", "compression"}) {
		t.Fatalf("matched %q, %q", res[0].Matched, res[1].Matched)
	}
}

func TestIndex_Search_filter(t *testing.T) {
	x := MustIndex(t, fruit...)
	var asked []uint32
	allow := func(k uint32) bool { asked = append(asked, k); return k != 1 }
	// With k = 1 the best allowed document takes the place of the best one.
	for _, mode := range []keyword.Mode{keyword.Or, keyword.And} {
		asked = nil
		res := MustSearch(t, x, "apple", 1, mode, allow)
		if !slices.Equal(keys(res), []uint32{0}) || !slices.Contains(asked, 1) {
			t.Fatalf("%s: %v (asked %v), want [0]", mode, keys(res), asked)
		}
	}
}

func TestIndex_Search_rarerTermWeighsMore(t *testing.T) {
	var docs []string
	for i := range 100 {
		docs = append(docs, fmt.Sprintf("common filler%d", i))
	}
	docs[10] = "rare filler10"
	docs[20] = "common rare"
	x := MustIndex(t, docs...)
	res := MustSearch(t, x, "common rare", 3, keyword.Or, nil)
	if !slices.Equal(keys(res)[:2], []uint32{20, 10}) {
		t.Fatalf("ranking %v, want 20 (both) then 10 (rare only)", keys(res))
	}
	if res[1].Score <= res[2].Score {
		t.Fatalf("the rare term scored %v, no more than the common one %v", res[1].Score, res[2].Score)
	}
}

func TestIndex_Delete(t *testing.T) {
	x := MustIndex(t, fruit...)
	if !x.Delete(1) || x.Delete(1) || x.Delete(99) || x.Has(1) {
		t.Fatal("Delete did not report right")
	}
	for _, mode := range []keyword.Mode{keyword.Or, keyword.And} {
		if got := keys(MustSearch(t, x, "apple", 10, mode, nil)); !slices.Equal(got, []uint32{0}) {
			t.Fatalf("%s after delete: %v", mode, got)
		}
	}
	if s := x.Stats(); s.Docs != 2 || s.Deleted != 1 {
		t.Fatalf("stats %+v", s)
	}
	err := x.Add(0, "again")
	if nexus.ErrorCode(err) != nexus.EConflict {
		t.Fatalf("re-adding a live key: %v", err)
	}
	if err := x.Add(1, "elderberry"); err != nil {
		t.Fatal(err)
	}
	if got := keys(MustSearch(t, x, "elderberry apple", 10, keyword.Or, nil)); !slices.Equal(got, []uint32{1, 0}) {
		t.Fatalf("re-added key: %v", got)
	}
	if s := x.Stats(); s.Docs != 3 || s.Deleted != 0 || s.Terms != 5 {
		t.Fatalf("stats after compaction %+v", s)
	}
}

func TestIndex_Search_errors(t *testing.T) {
	x := MustIndex(t, fruit...)
	many := make([]string, keyword.MaxQueryTerms+1)
	for i := range many {
		many[i] = fmt.Sprintf("w%d", i)
	}
	cases := []struct {
		name, query string
		k           int
		mode        keyword.Mode
		msg         string
	}{
		{"empty", "", 10, keyword.Or, "query is empty"},
		{"spaces", " \t ", 10, keyword.Or, "query is empty"},
		{"no words", "!!! ???", 10, keyword.Or, "no words"},
		{"huge", strings.Repeat("apple ", 700), 10, keyword.Or, "over the limit of 4096"},
		{"too many terms", strings.Join(many, " "), 10, keyword.Or, "65 distinct terms"},
		{"k zero", "apple", 0, keyword.Or, "k 0 out of range"},
		{"k huge", "apple", keyword.MaxK + 1, keyword.Or, "out of range"},
		{"mode", "apple", 10, keyword.Mode(7), "unknown search mode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := x.Search(c.query, c.k, c.mode, nil)
			if nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(nexus.ErrorMessage(err), c.msg) {
				t.Fatalf("err %v, want invalid containing %q", err, c.msg)
			}
		})
	}
	if _, err := x.Search(strings.Join(many[:keyword.MaxQueryTerms], " "), 10, keyword.Or, nil); err != nil {
		t.Fatalf("64 terms: %v", err)
	}
	if err := x.Add(keyword.MaxKey+1, "x"); nexus.ErrorCode(err) != nexus.EInvalid {
		t.Fatalf("key over MaxKey: %v", err)
	}
}

func TestIndex_outOfOrderAndBigFrequencies(t *testing.T) {
	x := keyword.New(keyword.Config{})
	// Keys arrive backwards, spanning several posting blocks.
	for k := 999; k >= 0; k-- {
		text := "shared"
		if k%100 == 0 {
			text += strings.Repeat(" boom", 300+k) // tf over 255
		}
		if err := x.Add(uint32(k), text); err != nil {
			t.Fatal(err)
		}
	}
	res := MustSearch(t, x, "boom", 3, keyword.Or, nil)
	// Longer repeats score higher: tf grows faster than the length penalty.
	if !slices.Equal(keys(res), []uint32{900, 800, 700}) {
		t.Fatalf("boom: %v", keys(res))
	}
	if got := keys(MustSearch(t, x, "shared boom", 2, keyword.And, nil)); !slices.Equal(got, []uint32{900, 800}) {
		t.Fatalf("and: %v", got)
	}
	if got := keys(MustSearch(t, x, "shared", 3, keyword.Or, nil)); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Fatalf("shared: %v (short docs first, then by key)", got)
	}
}

func TestIndex_concurrent(t *testing.T) {
	x := keyword.New(keyword.Config{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				key := uint32(i*4 + w)
				if err := x.Add(key, fmt.Sprintf("doc %d common word%d", key, i%7)); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					x.Delete(key)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 200 {
				if _, err := x.Search("common word3", 5, keyword.Or, nil); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := x.Stats(); s.Docs+s.Deleted != 2000-40+40 || s.Docs != 1960 {
		t.Fatalf("stats %+v", s)
	}
}

// TestIndex_Search_compoundWords checks that a compound word is found by
// its parts, that its parts do not lengthen the document, and that a
// compound word in a query is searched as written.
func TestIndex_Search_compoundWords(t *testing.T) {
	x := MustIndex(t, "strings TrimSpace", "trim the space", "space")
	// Lengths in words 2, 3, 1: average 2. "trim" is in docs 0 and 1.
	idf := math.Log(1 + (3-2+0.5)/(2+0.5))
	score := func(tf, length float64) float64 {
		return idf * tf * (keyword.K1 + 1) / (tf + keyword.K1*(1-keyword.B+keyword.B*length/2))
	}
	res := MustSearch(t, x, "trim", 10, keyword.Or, nil)
	if !slices.Equal(keys(res), []uint32{0, 1}) {
		t.Fatalf("trim: keys %v, want [0 1]", keys(res))
	}
	for i, want := range []float64{score(1, 2), score(1, 3)} {
		if math.Abs(float64(res[i].Score)-want) > 1e-6 || !slices.Equal(res[i].Matched, []string{"trim"}) {
			t.Fatalf("trim: result %d = %+v, want score %v", i, res[i], want)
		}
	}
	if res := MustSearch(t, x, "TrimSpace", 10, keyword.Or, nil); !slices.Equal(keys(res), []uint32{0}) || !slices.Equal(res[0].Matched, []string{"trimspace"}) {
		t.Fatalf("TrimSpace: %+v, want doc 0 only", res)
	}
	if res := MustSearch(t, x, "trim space", 10, keyword.And, nil); !slices.Equal(keys(res), []uint32{0, 1}) {
		t.Fatalf("trim space (and): keys %v, want [0 1]", keys(res))
	}
}
