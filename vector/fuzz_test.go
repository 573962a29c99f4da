package vector_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nexus-mem/nexus/vector"
)

// FuzzRead feeds Read arbitrary bytes, as they are and with a valid
// checksum appended, so that the structural checks are reached too. Read
// must never panic, must fail with ErrCorrupt on anything it rejects, and
// any index it accepts must be usable.
func FuzzRead(f *testing.F) {
	f.Add(smallEncoded(f))
	empty, _ := vector.New(3, vector.Options{})
	f.Add(MustEncode(f, empty))
	f.Add([]byte("NXVECIDX"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, b := range [][]byte{data, rehash(append(data, make([]byte, 32)...))} {
			ix, err := vector.Read(bytes.NewReader(b))
			if err != nil {
				if !errors.Is(err, vector.ErrCorrupt) {
					t.Fatalf("Read error without ErrCorrupt: %v", err)
				}
				continue
			}
			q := make([]float32, ix.Dim())
			q[0] = 1
			if _, err := ix.Search(q, 5, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := ix.Search(q, 3, func(k uint32) bool { return k%2 == 0 }); err != nil {
				t.Fatal(err)
			}
			if _, err := ix.Exact(q, 5, nil); err != nil {
				t.Fatal(err)
			}
			if err := ix.Add(1<<31+7, q); err != nil && ix.Len() == 0 {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if _, err := ix.WriteTo(&out); err != nil {
				t.Fatal(err)
			}
		}
	})
}
