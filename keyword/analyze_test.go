package keyword_test

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/keyword/keywordtest"
)

func TestAnalyze(t *testing.T) {
	long := strings.Repeat("x", keyword.MaxTokenBytes+1)
	cases := []struct {
		name, text string
		want       []string
	}{
		{"punctuation", "Hello, World! (again)", []string{"hello", "world", "again"}},
		{"plurals and possessives", "The CATS' toys and John's dog’s bone", []string{"the", "cat", "toy", "and", "john", "dog", "bone"}},
		{"verb forms", "running jumped studies hoped", []string{"run", "jump", "studi", "hope"}},
		{"non-ascii words are lowercased, not stemmed", "Naïve CAFÉS Straße", []string{"naïve", "cafés", "straße"}},
		{"ideographs one per term", "日本語 テキスト", []string{"日", "本", "語", "テ", "キ", "ス", "ト"}},
		{"underscores and case", "snake_case camelCase", []string{"snake", "case", "camelcas"}},
		{"apostrophe inside a word", "don't rock'n'roll 'quoted'", []string{"don't", "rock'n'rol", "quot"}},
		{"digits", "v1.2.3 mp3 2026-01-02", []string{"v1", "2", "3", "mp3", "2026", "01", "02"}},
		{"long tokens dropped", "a " + long + " b", []string{"a", "b"}},
		{"64 bytes kept", strings.Repeat("7", 64), []string{strings.Repeat("7", 64)}},
		{"invalid utf-8 splits", "a\xffb\xc3", []string{"a", "b"}},
		{"combining mark stays in the word", "cafe\u0301 x", []string{"cafe\u0301", "x"}},
		{"empty", " \t\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := keyword.Analyze(c.text); !slices.Equal(got, c.want) {
				t.Fatalf("Analyze(%q) = %q, want %q", c.text, got, c.want)
			}
		})
	}
	if got := (keyword.Analyzer{NoStem: true}).Analyze("Running dogs"); !slices.Equal(got, []string{"running", "dogs"}) {
		t.Fatalf("NoStem: %q", got)
	}
}

// TestAnalyze_stemmer checks the light stemmer against Porter2's outputs
// for words that its steps 2 to 4, which the stemmer leaves out, do not
// change; and that leaving them out keeps a derivational suffix
// ("luxuriated" is "luxuri" in Porter2).
func TestAnalyze_stemmer(t *testing.T) {
	pairs := map[string]string{
		"caresses": "caress", "ponies": "poni", "ties": "tie", "cries": "cri", "cats": "cat",
		"gas": "gas", "this": "this", "gaps": "gap", "kiwis": "kiwi", "us": "us", "chaos": "chao",
		"feed": "feed", "agreed": "agre", "plastered": "plaster", "bled": "bled", "motoring": "motor",
		"sing": "sing", "conflated": "conflat", "troubled": "troubl", "sized": "size",
		"hopping": "hop", "tanned": "tan", "falling": "fall", "hissing": "hiss", "fizzed": "fizz",
		"failing": "fail", "filing": "file", "happy": "happi", "cry": "cri", "say": "say", "by": "by",
		"skies": "sky", "dying": "die", "news": "news", "inning": "inning", "succeeded": "succeed",
		"generously": "generousli", "generalization": "generalization", "luxuriated": "luxuriat", "yelling": "yell", "played": "play",
		// Step 5: a verb's forms meet again.
		"parse": "pars", "parsing": "pars", "parsed": "pars", "float": "float", "floating": "float",
		"create": "creat", "creating": "creat", "use": "use", "using": "use", "time": "time", "timing": "time",
		"controlled": "control", "fall": "fall",
	}
	for in, want := range pairs {
		if got := keyword.Analyze(in); len(got) != 1 || got[0] != want {
			t.Errorf("stem(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnalyze_corpusWordsAreInert(t *testing.T) {
	for _, r := range []int{0, 1, 51, 2703, 2704, 99_999, keywordtest.DefaultVocab - 1} {
		w := keywordtest.Word(r)
		if got := keyword.Analyze(w); len(got) != 1 || got[0] != w || keyword.IsStopWord(w) {
			t.Fatalf("word %d %q analyzes to %q", r, w, got)
		}
	}
}

func TestSnippet(t *testing.T) {
	text := strings.Repeat("filler words here. ", 20) + "The database migration failed at step 3, so the deploy was rolled back." + strings.Repeat(" more filler text", 20)
	got := keyword.Snippet(text, []string{"migrations", "DEPLOY"}, 60)
	if !strings.Contains(got, "migration") || !strings.Contains(got, "deploy") {
		t.Fatalf("snippet %q misses the terms", got)
	}
	if n := utf8.RuneCountInString(got); n > 60 || !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") {
		t.Fatalf("snippet %q: %d runes, want ≤ 60 with both ends cut", got, n)
	}
	if got := keyword.Snippet("short text", []string{"text"}, 60); got != "short text" {
		t.Fatalf("short text: %q", got)
	}
	if got := keyword.Snippet("alpha beta gamma delta epsilon", []string{"zzz"}, 12); got != "alpha beta…" {
		t.Fatalf("no match: %q", got)
	}
	uni := strings.Repeat("日本語のテキスト、", 30) + "検索" + strings.Repeat("ですね。", 30)
	got = keyword.Snippet(uni, []string{"検"}, 10)
	if !utf8.ValidString(got) || utf8.RuneCountInString(got) > 10 || !strings.Contains(got, "検") {
		t.Fatalf("unicode snippet %q", got)
	}
	if got := keyword.Snippet("a\xff\xfe b", nil, 3); !utf8.ValidString(got) {
		t.Fatalf("invalid input gave invalid snippet %q", got)
	}
}

// TestAnalyzer_Terms checks the terms an index keeps: every word's term,
// and after a compound word's the terms of its parts.
func TestAnalyzer_Terms(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"camel and Pascal case", "strings.TrimSpace readAll", []string{"string", "trimspac", "trim", "space", "readal", "read", "all"}},
		{"a run of capitals ends before a capitalized part", "HTTPServer RWMutex", []string{"httpserver", "http", "server", "rwmutex", "rw", "mutex"}},
		{"letters and digits", "sha256 Sum256 utf8 x86", []string{"sha256", "sha", "256", "sum256", "sum", "256", "utf8", "utf", "8", "x86", "x", "86"}},
		{"parts are stemmed", "ReadFiles WalkingDirs", []string{"readfil", "read", "file", "walkingdir", "walk", "dir"}},
		{"digits then letters", "2026Q1 v1", []string{"2026q1", "2026", "q", "1", "v1", "v", "1"}},
		{"plain and capitalized words have no parts", "server Server SERVER", []string{"server", "server", "server"}},
		{"apostrophes are not split", "Don'tStop O'Reilly", []string{"don'tstop", "o'reilli"}},
		{"possessive then parts", "TrimSpace's HTTPServer\u2019s", []string{"trimspac", "trim", "space", "httpserver", "http", "server"}},
		{"non-ascii case change", "ÜberCool", []string{"übercool", "über", "cool"}},
		{"a part equal to the word is not repeated", "Go", []string{"go"}},
		{"ideographs", "日本 TrimSpace", []string{"日", "本", "trimspac", "trim", "space"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := keyword.DefaultAnalyzer.Terms(c.text); !slices.Equal(got, c.want) {
				t.Fatalf("Terms(%q) = %q, want %q", c.text, got, c.want)
			}
			// Analyze, which phrases are matched against, has one term per word.
			var words []string
			for _, w := range strings.FieldsFunc(c.text, func(r rune) bool { return r == ' ' || r == '.' }) {
				words = append(words, keyword.Analyze(w)...)
			}
			if got := keyword.Analyze(c.text); !slices.Equal(got, words) {
				t.Fatalf("Analyze(%q) = %q, want %q", c.text, got, words)
			}
		})
	}
	if got := (keyword.Analyzer{NoStem: true}).Terms("ReadFiles"); !slices.Equal(got, []string{"readfiles", "read", "files"}) {
		t.Fatalf("NoStem: %q", got)
	}
}
