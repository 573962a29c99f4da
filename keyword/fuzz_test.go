package keyword_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/keyword"
)

func FuzzRead(f *testing.F) {
	small := keyword.New(keyword.Config{})
	for i, d := range fruit {
		_ = small.Add(uint32(i*3), d)
	}
	_ = small.Add(70, strings.Repeat("loud ", 300))
	for _, x := range []*keyword.Index{small, keyword.New(keyword.Config{NoStem: true})} {
		data := MustWrite(f, x)
		f.Add(data)
		f.Add(data[:len(data)-sha256.Size]) // FuzzRead reseals it
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range [][]byte{data, reseal(data)} {
			x, err := keyword.Read(bytes.NewReader(b))
			if err != nil {
				if x != nil || !errors.Is(err, keyword.ErrCorrupt) && !errors.Is(err, keyword.ErrVersion) {
					t.Fatalf("Read = %v, %v", x, err)
				}
				continue
			}
			// A file that reads is a working index that writes itself back.
			for _, q := range []string{"apple", "cherry durian", "loud banana"} {
				if _, err := x.Search(q, 5, keyword.Or, nil); err != nil {
					t.Fatal(err)
				}
				if _, err := x.Search(q, 5, keyword.And, nil); err != nil {
					t.Fatal(err)
				}
			}
			y, err := keyword.Read(bytes.NewReader(MustWrite(t, x)))
			if err != nil || y.Stats() != x.Stats() {
				t.Fatalf("rewrite: %v, %+v vs %+v", err, y, x.Stats())
			}
		}
	})
}

func FuzzAnalyze(f *testing.F) {
	f.Add("Hello, World! The CATS' toys", "cat", 20)
	f.Add("日本語のテキスト、検索", "検索", 5)
	f.Add("a\xffb\xc3 don't 'quoted'", "don't", 3)
	f.Add(strings.Repeat("x", 70)+" y", "y", 1)
	f.Add("strings.TrimSpace's HTTPServer sha256 ÜberCool Don'tStop", "trim", 10)
	f.Add("parsing the parse, floating floats; controlled use", "parse", 12)
	x := MustIndex(f, fruit...)
	f.Fuzz(func(t *testing.T, text, query string, max int) {
		for _, an := range []keyword.Analyzer{{}, {NoStem: true}} {
			words := an.Analyze(text)
			for _, term := range words {
				if term == "" || len(term) > keyword.MaxTokenBytes || !utf8.ValidString(term) {
					t.Fatalf("bad term %q", term)
				}
			}
			// Terms are the words' terms in order, with parts between them.
			j := 0
			for _, term := range an.Terms(text) {
				if term == "" || len(term) > keyword.MaxTokenBytes || !utf8.ValidString(term) {
					t.Fatalf("bad index term %q", term)
				}
				if j < len(words) && term == words[j] {
					j++
				}
			}
			if j != len(words) {
				t.Fatalf("Terms(%q) lacks the words' terms %q", text, words)
			}
		}
		max %= 1000
		s := keyword.Snippet(text, []string{query}, max)
		if !utf8.ValidString(s) || max > 0 && utf8.RuneCountInString(s) > max || max <= 0 && s != "" {
			t.Fatalf("Snippet(max %d) = %q", max, s)
		}
		for _, mode := range []keyword.Mode{keyword.Or, keyword.And} {
			res, err := x.Search(query, 3, mode, nil)
			if err != nil && nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("Search(%q): %v", query, err)
			}
			for _, r := range res {
				if len(r.Matched) == 0 || r.Score <= 0 {
					t.Fatalf("result %+v", r)
				}
			}
		}
	})
}
