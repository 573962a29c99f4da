package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nexus-mem/nexus/embed"
)

// `nexus bench search --dump-vectors` writes the queries' and the texts'
// vectors, queries first, each the hashing model's embedding of what the
// figures would ask and store: the first is that of the first query,
// drawn after the texts from the same generator, the last that of the
// last text.
func TestBenchSearchDumpVectors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vectors.bin")
	var out bytes.Buffer
	args := []string{"--n", "300", "--queries", "20", "--topics", "40", "--dump-vectors", path}
	if err := runBenchSearch(context.Background(), args, &out, &out); err != nil {
		t.Fatalf("bench search --dump-vectors: %v\n%s", err, out.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const dim = embed.DefaultDimension
	if len(data) != (20+300)*dim*4 {
		t.Fatalf("%d bytes, want %d vectors of %d float32", len(data), 20+300, dim)
	}
	vec := func(i int) []float32 {
		v := make([]float32, dim)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*(i*dim+j):]))
		}
		return v
	}
	gen := newTextGen(1, 40)
	var last string
	for i := range 300 {
		last = gen.text(i%40, 40)
	}
	query := gen.query(gen.r.IntN(40))
	want, err := embed.NewHashing(dim).Embed(context.Background(), []string{query, last})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vec(0), want[0]) {
		t.Error("the first vector is not the embedding of the first query")
	}
	if !slices.Equal(vec(20+299), want[1]) {
		t.Error("the last vector is not the embedding of the last text")
	}
}
