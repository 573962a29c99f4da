package vector

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// goldenGraph is the SHA-256 of the saved index that goldenVectors build
// with the default options, one insertion at a time. It was computed at
// 46004c7, before the insertion path was made faster, and held until
// insertions stopped scoring their candidates again in float32, which
// builds another graph (recall@10 at 1,000,000 vectors measured again:
// docs/BENCHMARKS.md, "Insertions on int8 scores"); this is the value
// since. A change that only makes insertions cheaper must leave it as it
// is. A change that means to build another graph (other links, another
// level draw) changes it, and must then show recall at 1,000,000 vectors
// again (docs/BENCHMARKS.md).
const goldenGraph = "2334965e1a2f2ddfcfab4c1cdaac0dac9707273a31c650b5d5662383db13880e"

// goldenVectors returns n vectors of dim small integers, drawn around 40
// integer centres by splitmix64: every dot product of them, and so every
// score the graph compares, is exact whatever the kernel and the order of
// its additions, so the graph is the same on every platform.
func goldenVectors(n, dim int) [][]float32 {
	x := uint64(0x601de4)
	next := func(m int) int {
		x++
		return int(splitmix64(x) % uint64(m))
	}
	centres := make([][]int, 40)
	for i := range centres {
		centres[i] = make([]int, dim)
		for j := range centres[i] {
			centres[i][j] = next(17) - 8
		}
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[next(len(centres))]
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(c[j] + next(9) - 4)
		}
		out[i] = v
	}
	return out
}

// TestGraph_golden builds the golden index with the assembly kernels and
// with the portable ones, and checks that both save exactly the bytes of
// goldenGraph: links, levels, entry point and vectors.
func TestGraph_golden(t *testing.T) {
	n := 6000
	if testing.Short() {
		n = 2000
	}
	base := goldenVectors(n, 72) // 72: the int8 copies are padded to 80
	kernels(t, func(t *testing.T) {
		ix, err := New(72, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range base {
			if err := ix.Add(uint32(i)*7+3, v); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := ix.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(buf.Bytes())
		want := goldenGraph
		if testing.Short() {
			want = goldenGraphShort
		}
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("the saved index of %d golden vectors has SHA-256 %s, want %s: the graph changed", n, got, want)
		}
	})
}

// goldenGraphShort is goldenGraph for the first 2,000 vectors (-short).
const goldenGraphShort = "ab014f9c6476ad9c7a67633fc1a49298c8f0203ace6c733ca5346676b503cfb5"
