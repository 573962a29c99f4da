package node

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
	"github.com/nexus-mem/nexus/embed"
)

// decodeModel (a segment of refs/nexus/models/cooc) never panics, and
// either fails with an invalid error or returns parameters whose model is
// the one the header names, which encode back to a segment that decodes
// to the same header and parameters.
func FuzzDecodeModel(f *testing.F) {
	var texts []string
	for i := range 120 {
		texts = append(texts, fmt.Sprintf("word%d word%d word%d shared text of the store", i%17, (i*7)%19, (i*5)%23))
	}
	c, err := embed.TrainCooc(context.Background(), texts, embed.CoocOptions{Dim: 8, MinCount: 1, Hashing: 16})
	if err != nil {
		f.Fatal(err)
	}
	meta := modelMeta{Model: c.Model(), Contexts: 120, Texts: 120, TrainedAt: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC), TookMS: 12}
	seg, err := encodeModel(meta, c)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-1])
	flipped := bytes.Clone(seg)
	flipped[len(flipped)-5] ^= 0x40
	f.Add(flipped)
	f.Add([]byte(modelMagic + "\xff\xff\xff\xff{}"))
	f.Add([]byte(modelMagic + "\x02\x00\x00\x00{}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, c, err := decodeModel(data)
		if err != nil {
			if nexus.ErrorCode(err) != nexus.EInvalid || c != nil {
				t.Fatalf("error code %s, parameters %v: %v", nexus.ErrorCode(err), c != nil, err)
			}
			return
		}
		if c.Model() != m.Model {
			t.Fatalf("header names %s, parameters are %s", m.Model, c.Model())
		}
		again, err := encodeModel(m, c)
		if err != nil {
			t.Fatal(err)
		}
		m2, c2, err := decodeModel(again)
		if err != nil || m2 != m {
			t.Fatalf("re-encoded: %v, %+v, want %+v", err, m2, m)
		}
		p1, _ := c.MarshalBinary()
		p2, _ := c2.MarshalBinary()
		if !bytes.Equal(p1, p2) {
			t.Fatal("re-encoded parameters differ")
		}
	})
}
