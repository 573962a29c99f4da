package embed_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
)

var update = flag.Bool("update", false, "rewrite testdata/hashing-golden.json (only together with a new hashingVersion)")

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func mustEmbed(tb testing.TB, e nexus.Embedder, texts ...string) [][]float32 {
	tb.Helper()
	vs, err := e.Embed(context.Background(), texts)
	if err != nil {
		tb.Fatalf("Embed: %v", err)
	}
	if len(vs) != len(texts) {
		tb.Fatalf("Embed returned %d vectors for %d texts", len(vs), len(texts))
	}
	for i, v := range vs {
		if err := nexus.CheckVector(v, e.Dimension()); err != nil {
			tb.Fatalf("vector %d: %v", i, err)
		}
	}
	return vs
}

func TestNewHashing(t *testing.T) {
	for _, tc := range []struct {
		dim, wantDim int
		model        string
	}{
		{0, 384, "nexus-hash-v1-384"},
		{-5, 384, "nexus-hash-v1-384"},
		{384, 384, "nexus-hash-v1-384"},
		{64, 64, "nexus-hash-v1-64"},
		{1, 1, "nexus-hash-v1-1"},
	} {
		h := embed.NewHashing(tc.dim)
		if h.Dimension() != tc.wantDim || h.Model() != tc.model {
			t.Errorf("NewHashing(%d): dimension %d, model %q; want %d, %q", tc.dim, h.Dimension(), h.Model(), tc.wantDim, tc.model)
		}
	}
	if embed.DefaultDimension != 384 {
		t.Errorf("DefaultDimension = %d", embed.DefaultDimension)
	}
}

// goldenTexts cover ASCII, punctuation, case, repeated words, accents,
// scripts without spaces and invalid UTF-8.
var goldenTexts = []string{
	"The quick brown fox jumps over the lazy dog.",
	"Fix the login bug: bcrypt cost 12, cost 12, cost 12!",
	"Ünïcödé café naïve — ΑΒΓ δέλτα; русский текст",
	"日本語のテキストと中文文本",
	"a",
	"bad \xff\xfe utf-8 \xc3",
}

type golden struct {
	Dim    int       `json:"dim"`
	Text   string    `json:"text"`
	Vector []float32 `json:"vector"`
}

// TestHashing_Golden pins the function: any change to tokenizing, hashing,
// weighting or normalising changes these vectors, and must come with a new
// version in the model id.
func TestHashing_Golden(t *testing.T) {
	path := filepath.Join("testdata", "hashing-golden.json")
	var got []golden
	for _, dim := range []int{384, 64} {
		h := embed.NewHashing(dim)
		for i, v := range mustEmbed(t, h, goldenTexts...) {
			got = append(got, golden{Dim: dim, Text: goldenTexts[i], Vector: v})
		}
	}
	if *update {
		data := []byte("[\n")
		for i, g := range got {
			line, err := json.Marshal(g)
			if err != nil {
				t.Fatal(err)
			}
			if data = append(data, line...); i < len(got)-1 {
				data = append(data, ',')
			}
			data = append(data, '\n')
		}
		if err := os.WriteFile(path, append(data, "]\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []golden
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("%s has %d vectors, want %d", path, len(want), len(got))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Dim != g.Dim || w.Text != jsonRoundTrip(t, g.Text) || len(w.Vector) != len(g.Vector) {
			t.Fatalf("golden %d is for dim %d %q, test has dim %d %q", i, w.Dim, w.Text, g.Dim, g.Text)
		}
		for j := range w.Vector {
			if math.Abs(float64(w.Vector[j]-g.Vector[j])) > 1e-6 {
				t.Fatalf("dim %d %q: component %d = %v, golden %v: the function changed", g.Dim, g.Text, j, g.Vector[j], w.Vector[j])
			}
		}
	}
}

// jsonRoundTrip returns s as JSON gives it back: invalid UTF-8 replaced.
func jsonRoundTrip(t *testing.T, s string) string {
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestHashing_Deterministic(t *testing.T) {
	texts := append([]string{strings.Repeat("repeat after me ", 500)}, goldenTexts...)
	first := mustEmbed(t, embed.NewHashing(0), texts...)
	// Another instance, one text at a time and in reverse order, after the
	// pool has held buffers of other sizes: the same bits.
	other := embed.NewHashing(384)
	for i := len(texts) - 1; i >= 0; i-- {
		v := mustEmbed(t, other, texts[i])[0]
		for j := range v {
			if math.Float32bits(v[j]) != math.Float32bits(first[i][j]) {
				t.Fatalf("text %d component %d: %v then %v", i, j, first[i][j], v[j])
			}
		}
	}
}

func TestHashing_Normalised(t *testing.T) {
	h := embed.NewHashing(0)
	texts := append([]string{"x", "1", "é", "日", strings.Repeat("word ", 10000), strings.Repeat("z", 5000)}, goldenTexts...)
	for i, v := range mustEmbed(t, h, texts...) {
		if n := math.Sqrt(dot(v, v)); math.Abs(n-1) > 1e-5 {
			t.Errorf("text %d: length %v, want 1", i, n)
		}
	}
}

func TestHashing_Empty(t *testing.T) {
	h := embed.NewHashing(0)
	other := mustEmbed(t, h, "anything at all")[0]
	for _, text := range []string{"", " ", "\t\n  ", "!!! ... ---", "\xff\xfe", "\u200b\u3000", "\u0301\u0308 \u20dd"} {
		v := mustEmbed(t, h, text)[0]
		if len(v) != h.Dimension() {
			t.Fatalf("%q: %d components", text, len(v))
		}
		for i, x := range v {
			if x != 0 {
				t.Fatalf("%q: component %d is %v, want the zero vector", text, i, x)
			}
		}
		if d := dot(v, other); d != 0 {
			t.Errorf("%q matches another text with score %v", text, d)
		}
	}
	if vs, err := h.Embed(context.Background(), nil); err != nil || len(vs) != 0 {
		t.Errorf("Embed(nil) = %v, %v", vs, err)
	}
}

func TestHashing_Similarity(t *testing.T) {
	h := embed.NewHashing(0)
	for _, tc := range []struct{ query, near, far string }{
		{
			"The login page returns a 500 error after a password reset",
			"After resetting the password, the login page returns error 500",
			"Quarterly revenue grew in the European market",
		},
		{
			"Use bcrypt with cost 12 for password hashing",
			"password hashing: bcrypt, cost 12",
			"The deployment pipeline runs on Kubernetes",
		},
		{
			"connection refused when the worker dials the database",
			"worker cannot connect to database: connection refused",
			"add dark mode to the settings screen",
		},
		{"Ünïcödé café", "ünïcödé cafés", "plain ascii"},
		{"東京の天気は晴れです", "東京は晴れ", "ロンドンは雨"},
		{"refactoring the tokenizer", "refactored tokenizers", "unrelated gardening notes"},
	} {
		vs := mustEmbed(t, h, tc.query, tc.near, tc.far)
		near, far := dot(vs[0], vs[1]), dot(vs[0], vs[2])
		t.Logf("%q: near %.3f far %.3f", tc.query, near, far)
		if near <= far+0.15 {
			t.Errorf("%q: near-duplicate scores %.3f, unrelated %.3f; want a clear gap", tc.query, near, far)
		}
	}
	t.Run("case and punctuation", func(t *testing.T) {
		for _, pair := range [][2]string{{"Hello, World!", "hello world"}, {"ÜNÏCÖDÉ CAFÉ; ΔΈΛΤΑ", "ünïcödé café δέλτα"}} {
			vs := mustEmbed(t, h, pair[0], pair[1])
			if d := dot(vs[0], vs[1]); math.Abs(d-1) > 1e-6 {
				t.Errorf("%q and %q: cosine %v, want 1", pair[0], pair[1], d)
			}
		}
	})
	t.Run("lexical, not semantic", func(t *testing.T) {
		vs := mustEmbed(t, h, "The car would not start", "the car did not start", "the engine failed to turn over")
		shared, paraphrase := dot(vs[0], vs[1]), dot(vs[0], vs[2])
		t.Logf("shared words %.3f, paraphrase %.3f", shared, paraphrase)
		if shared < 0.5 || paraphrase > 0.2 {
			t.Errorf("shared words score %.3f, a paraphrase in other words %.3f: the doc's example no longer holds", shared, paraphrase)
		}
	})
	t.Run("word order matters a little", func(t *testing.T) {
		vs := mustEmbed(t, h, "dog bites man", "man bites dog")
		if d := dot(vs[0], vs[1]); d >= 0.999 || d < 0.5 {
			t.Errorf("reordered words score %v, want high but below 1 (bigrams differ)", d)
		}
	})
}

func TestHashing_Concurrent(t *testing.T) {
	h := embed.NewHashing(0)
	texts := append([]string{strings.Repeat("lorem ipsum dolor sit amet ", 200)}, goldenTexts...)
	want := mustEmbed(t, h, texts...)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for round := range 50 {
				i := (g + round) % len(texts)
				vs, err := h.Embed(context.Background(), []string{texts[i]})
				if err != nil {
					errs <- err
					return
				}
				for j := range vs[0] {
					if vs[0][j] != want[i][j] {
						errs <- fmt.Errorf("goroutine %d: text %d component %d differs", g, i, j)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHashing_Canceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := embed.NewHashing(0).Embed(ctx, []string{"a"})
	if !errors.Is(err, context.Canceled) || nexus.ErrorCode(err) != nexus.EUnavailable {
		t.Fatalf("Embed on a canceled context = %v", err)
	}
}

// The vectors of one call must not alias: appending to one leaves the next
// one alone.
func TestHashing_VectorsIndependent(t *testing.T) {
	vs := mustEmbed(t, embed.NewHashing(8), "one", "two")
	second := append([]float32(nil), vs[1]...)
	_ = append(vs[0], 42)
	for i := range second {
		if vs[1][i] != second[i] {
			t.Fatal("appending to the first vector changed the second")
		}
	}
}

// benchText returns n bytes of made-up prose: words of 1 to 4 syllables
// drawn from a vocabulary of 5,000 with Zipf's law, as in natural text,
// with some punctuation and numbers.
func benchText(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 7))
	zipf := rand.NewZipf(r, 1.1, 2, 4999)
	syllables := []string{"ka", "lo", "ren", "ti", "sha", "mor", "ve", "qui", "dan", "es", "pol", "ur", "zi", "nex", "bo", "tra"}
	var b strings.Builder
	for b.Len() < n {
		w := zipf.Uint64()
		for k := 0; k <= int(w%4); k++ {
			b.WriteString(syllables[(w>>(4*k)+uint64(k))%uint64(len(syllables))])
		}
		switch r.IntN(12) {
		case 0:
			b.WriteString(". ")
		case 1:
			b.WriteString(", ")
		case 2:
			fmt.Fprintf(&b, " %d ", r.IntN(1000))
		default:
			b.WriteByte(' ')
		}
	}
	return b.String()[:n]
}

func BenchmarkHashing_Embed(b *testing.B) {
	h := embed.NewHashing(0)
	for _, size := range []int{200, 4096} {
		text := benchText(1, size)
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			ctx, texts := context.Background(), []string{text}
			for b.Loop() {
				if _, err := h.Embed(ctx, texts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/embedding")
		})
	}
	b.Run("batch64x200B", func(b *testing.B) {
		texts := make([]string, 64)
		for i := range texts {
			texts[i] = benchText(uint64(i), 200)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := h.Embed(context.Background(), texts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(texts)), "ns/embedding")
	})
}
