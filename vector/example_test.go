package vector_test

import (
	"bytes"
	"fmt"
	"math"

	"github.com/nexus-mem/nexus/vector"
)

// unit returns v scaled to length 1: scores are dot products, so vectors
// should be normalised for them to be cosines.
func unit(v ...float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(s))
	}
	return v
}

func ExampleIndex_Search() {
	ix, err := vector.New(3, vector.Options{})
	if err != nil {
		panic(err)
	}
	vecs := [][]float32{unit(1, 0, 0), unit(1, 1, 0), unit(0, 1, 0), unit(0, 0, 1)}
	for key, v := range vecs {
		if err := ix.Add(uint32(key), v); err != nil {
			panic(err)
		}
	}
	q := unit(1, 0.2, 0)
	best, _ := ix.Search(q, 2, nil)
	for _, r := range best {
		fmt.Printf("key %d score %.3f\n", r.Key, r.Score)
	}
	// Only odd keys, e.g. the contexts of one namespace.
	odd, _ := ix.Search(q, 1, func(key uint32) bool { return key%2 == 1 })
	fmt.Println("best odd key:", odd[0].Key)
	// Output:
	// key 0 score 0.981
	// key 1 score 0.832
	// best odd key: 1
}

func ExampleRead() {
	ix, _ := vector.New(2, vector.Options{})
	ix.Add(7, unit(3, 4))
	var file bytes.Buffer
	if _, err := ix.WriteTo(&file); err != nil {
		panic(err)
	}
	back, err := vector.Read(&file)
	if err != nil {
		panic(err)
	}
	r, _ := back.Search(unit(3, 4), 1, nil)
	fmt.Println(back.Len(), r[0].Key)

	// A damaged file is refused.
	var broken bytes.Buffer
	ix.WriteTo(&broken)
	b := broken.Bytes()
	b[len(b)-1] ^= 1 // the last byte of the checksum
	_, err = vector.Read(bytes.NewReader(b))
	fmt.Println(err)
	// Output:
	// 1 7
	// internal: vector index: checksum mismatch: corrupt vector index
}
