package search

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nexus-mem/nexus"
)

// Decoders of the saved docs table and of vector segments never panic on
// damaged input, and a table they accept has no reference out of range.
func FuzzDecodeDocs(f *testing.F) {
	t := newTable()
	var gen nexus.IDGenerator
	now := time.Now()
	for i := range 3 {
		c := &nexus.Context{ID: gen.New(now), Namespace: "n", Type: nexus.TypeMemory, AgentID: "a", Timestamp: now,
			Metadata: json.RawMessage(`{"k":"v","n":1}`)}
		if i > 0 {
			c.ParentID = t.docs[i-1].id
		}
		t.add(c)
	}
	f.Add(encodeDocs(t, []uint32{1}))
	f.Add(encodeDocs(newTable(), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, noVec, err := decodeDocs(b)
		if err != nil {
			return
		}
		for i, d := range tab.docs {
			if int(d.ns) >= len(tab.strs) || int(d.parent) >= i || int(d.root) > i {
				t.Fatalf("doc %d: references out of range", i)
			}
		}
		for _, o := range noVec {
			if int(o) >= len(tab.docs) {
				t.Fatalf("waiting doc %d out of range", o)
			}
		}
	})
}

func FuzzDecodeSegment(f *testing.F) {
	var gen nexus.IDGenerator
	ids := []nexus.ID{gen.New(time.Now()), gen.New(time.Now())}
	f.Add(encodeSegment("m", 3, ids, [][]float32{{1, 0, 0}, {0, 1, 0}}))
	f.Add(encodeSegment("m", 3, nil, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := decodeSegment(b, "m", 3, func(id nexus.ID, v []float32) {
			if len(v) != 3 || nexus.CheckVector(v, 3) != nil {
				t.Fatalf("bad vector passed on: %v", v)
			}
			n++
		})
		if err != nil && n > 0 {
			t.Fatal("vectors passed on from a segment that failed")
		}
	})
}

// The query language's parser never panics; what it accepts has words to
// rank by, and every phrase and exclusion it found is text of the query.
func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{`"blue green" rollout -kubernetes type:decision`, `meta.team:"pay ments" x`, `-"a b" c`, `"unterminated`,
		`thread:01JZ0000000000000000000000 x`, `http://x y`, `- -- "" x`, `ns: x`, `meta.:v x`} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		req := nexus.SearchRequest{Query: q}
		pq, err := parseQuery(&req)
		if err != nil {
			if nexus.ErrorCode(err) != nexus.EInvalid {
				t.Fatalf("%q: error %v is not EInvalid", q, err)
			}
			return
		}
		if len(pq.text) == 0 {
			t.Fatalf("%q: accepted with nothing to rank by", q)
		}
		for _, p := range append(pq.phrases, pq.excluded...) {
			if !strings.Contains(q, p) {
				t.Fatalf("%q: phrase or exclusion %q is not in the query", q, p)
			}
		}
	})
}

// The fresh segment's decoder never panics, and what it accepts has
// ordinals ascending below the docs count, finite vectors of the
// dimension, and encodes back to the same bytes.
func FuzzDecodeFresh(f *testing.F) {
	f.Add(encodeFresh(3, []uint32{0, 2}, [][]float32{{1, 0, 0}, {0, 0.5, -1}}))
	f.Add(encodeFresh(3, nil, nil))
	f.Add(encodeFresh(2, []uint32{1}, [][]float32{{1, 2}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ords, vecs, err := decodeFresh(b, 3, 4)
		if err != nil {
			return
		}
		for i, o := range ords {
			if o >= 4 || (i > 0 && o <= ords[i-1]) {
				t.Fatalf("doc %d out of range or order", o)
			}
			if nexus.CheckVector(vecs[i], 3) != nil {
				t.Fatalf("vector %v accepted", vecs[i])
			}
		}
		if again := encodeFresh(3, ords, vecs); !bytes.Equal(again, b) {
			t.Fatal("decoded fresh segment does not encode back to its bytes")
		}
	})
}
