package vector_test

import (
	"slices"
	"testing"

	"github.com/nexus-mem/nexus/vector"
)

// Scan over vectors kept outside an index answers as Exact over an index
// of the same vectors, filter included; bad input is refused.
func TestScan(t *testing.T) {
	base, qs := dataset(5, 500, 20, 32, 10, 1)
	ix, err := vector.New(32, vector.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]uint32, len(base))
	for i, v := range base {
		keys[i] = uint32(3 * i)
		if err := ix.Add(keys[i], v); err != nil {
			t.Fatal(err)
		}
	}
	odd := func(k uint32) bool { return k%2 == 1 }
	for _, q := range qs {
		for _, allow := range []func(uint32) bool{nil, odd} {
			want, err := ix.Exact(q, 10, allow)
			if err != nil {
				t.Fatal(err)
			}
			got, err := vector.Scan(q, 10, keys, base, allow)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("Scan %v, Exact %v", got, want)
			}
		}
	}
	if _, err := vector.Scan(qs[0], 3, keys[:2], base, nil); err == nil {
		t.Error("more vectors than keys accepted")
	}
	if _, err := vector.Scan(qs[0][:5], 3, keys, base, nil); err == nil {
		t.Error("a query shorter than the vectors accepted")
	}
	if _, err := vector.Scan(nil, 3, nil, nil, nil); err == nil {
		t.Error("an empty query accepted")
	}
	if got, err := vector.Scan(qs[0], 0, keys, base, nil); err != nil || got != nil {
		t.Errorf("k 0: %v, %v", got, err)
	}
}
