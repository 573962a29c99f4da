package embed_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
)

// coocTexts writes texts about two topics whose words never meet in one
// text but share their neighbours within a topic: "kitten" and "puppy"
// both appear next to "pet food bowl", "compiler" and "linker" both next
// to "build object files".
func coocTexts(n int) []string {
	r := rand.New(rand.NewPCG(3, 4))
	pets := []string{"kitten", "puppy"}
	tools := []string{"compiler", "linker"}
	filler := strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega")
	var out []string
	for i := range n {
		var w []string
		for range 3 {
			w = append(w, filler[r.IntN(len(filler))])
		}
		if i%2 == 0 {
			w = append(w, pets[r.IntN(2)], "eats", "pet", "food", "from", "a", "bowl")
		} else {
			w = append(w, tools[r.IntN(2)], "writes", "object", "files", "for", "the", "build")
		}
		for range 3 {
			w = append(w, filler[r.IntN(len(filler))])
		}
		out = append(out, strings.Join(w, " "))
	}
	return out
}

func TestCooc_LearnsNeighbours(t *testing.T) {
	ctx := context.Background()
	c, err := embed.TrainCooc(ctx, coocTexts(2000), embed.CoocOptions{Dim: 8, MinCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Dimension() != embed.DefaultDimension+8 || c.Vocabulary() != 40 {
		t.Fatalf("dimension %d, vocabulary %d", c.Dimension(), c.Vocabulary())
	}
	v, err := c.Embed(ctx, []string{"kitten", "puppy", "compiler", "linker"})
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range v {
		if d := dot(x, x); d < 0.9999 || d > 1.0001 {
			t.Fatalf("vector %d has squared length %f", i, d)
		}
	}
	// The hashed halves of different words are near orthogonal, so the
	// similarity comes from the learned half: same topic ≫ other topic.
	same, other := dot(v[0], v[1]), dot(v[0], v[2])
	if same < 0.4 || other > 0.1 || dot(v[2], v[3]) < 0.4 {
		t.Fatalf("kitten~puppy %.3f, kitten~compiler %.3f, compiler~linker %.3f", same, other, dot(v[2], v[3]))
	}
	h := embed.NewHashing(0)
	hv, _ := h.Embed(ctx, []string{"kitten", "puppy"})
	if dot(hv[0], hv[1]) > 0.2 {
		t.Fatalf("the hashing embedder already finds kitten~puppy %.3f: the test proves nothing", dot(hv[0], hv[1]))
	}
}

func TestCooc_DeterministicAndVersioned(t *testing.T) {
	ctx := context.Background()
	texts := coocTexts(500)
	a, err := embed.TrainCooc(ctx, texts, embed.CoocOptions{Dim: 8, MinCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := embed.TrainCooc(ctx, texts, embed.CoocOptions{Dim: 8, MinCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := a.MarshalBinary()
	pb, _ := b.MarshalBinary()
	if !slices.Equal(pa, pb) || a.Model() != b.Model() || !strings.HasPrefix(a.Model(), "nexus-cooc-v1-392-") {
		t.Fatalf("same texts, different models: %s %s", a.Model(), b.Model())
	}
	c, err := embed.TrainCooc(ctx, append(texts, coocTexts(600)[500:]...), embed.CoocOptions{Dim: 8, MinCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Model() == a.Model() {
		t.Fatal("a model retrained on more texts kept the old id")
	}
	// The parameters give back the same embedder.
	d, err := embed.UnmarshalCooc(pa)
	if err != nil {
		t.Fatal(err)
	}
	if d.Model() != a.Model() {
		t.Fatalf("decoded model %s, want %s", d.Model(), a.Model())
	}
	q := []string{"the kitten eats from a bowl", "linker", "", "unknown words only"}
	va, _ := a.Embed(ctx, q)
	vd, _ := d.Embed(ctx, q)
	for i := range q {
		if !slices.Equal(va[i], vd[i]) {
			t.Fatalf("text %q embeds differently after a round trip", q[i])
		}
	}
	if dot(va[2], va[2]) != 0 {
		t.Fatal("the empty text must get the zero vector")
	}
	// Damaged parameters are refused, never half read.
	for _, bad := range [][]byte{nil, pa[:len(pa)-1], append(slices.Clone(pa), 0), []byte("NXCOOC1\x00garbage-garbage-garbage")} {
		if _, err := embed.UnmarshalCooc(bad); nexus.ErrorCode(err) != nexus.EInvalid {
			t.Fatalf("damaged model (%d bytes): %v", len(bad), err)
		}
	}
}

func TestCooc_TooLittleText(t *testing.T) {
	_, err := embed.TrainCooc(context.Background(), []string{"one two three"}, embed.CoocOptions{})
	if nexus.ErrorCode(err) != nexus.EInvalid || !strings.Contains(err.Error(), "too little text to learn from: 0 words seen at least 3 times, need 256") {
		t.Fatalf("err = %v", err)
	}
}
