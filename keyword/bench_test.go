package keyword_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/nexus-mem/nexus/keyword"
	"github.com/nexus-mem/nexus/keyword/keywordtest"
)

// The benchmarks share one index of benchDocs corpus documents. The
// side-by-side figures with bleve come from bench/bleve.
const benchDocs = 100_000

var bench struct {
	once   sync.Once
	corpus *keywordtest.Corpus
	docs   []string
	x      *keyword.Index
	file   []byte
}

func benchIndex(b *testing.B) *keyword.Index {
	bench.once.Do(func() {
		bench.corpus = keywordtest.New(1)
		bench.docs = make([]string, benchDocs)
		bench.x = keyword.New(keyword.Config{})
		for i := range bench.docs {
			bench.docs[i] = bench.corpus.Doc(i)
			if err := bench.x.Add(uint32(i), bench.docs[i]); err != nil {
				b.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := bench.x.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		bench.file = buf.Bytes()
	})
	return bench.x
}

func BenchmarkIndex_Add(b *testing.B) {
	benchIndex(b)
	b.ReportAllocs()
	x := keyword.New(keyword.Config{})
	for i := 0; b.Loop(); i++ {
		if err := x.Add(uint32(i), bench.docs[i%benchDocs]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIndex_Search(b *testing.B) {
	x := benchIndex(b)
	for _, kind := range []keywordtest.QueryKind{keywordtest.And2, keywordtest.OrCommon3, keywordtest.OrZipf4} {
		mode := keyword.Or
		if kind == keywordtest.And2 {
			mode = keyword.And
		}
		qs := bench.corpus.Queries(kind, 200)
		b.Run(kind.String(), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := x.Search(qs[i%len(qs)], 10, mode, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRead(b *testing.B) {
	benchIndex(b)
	b.SetBytes(int64(len(bench.file)))
	for b.Loop() {
		if _, err := keyword.Read(bytes.NewReader(bench.file)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIndex_WriteTo(b *testing.B) {
	x := benchIndex(b)
	for b.Loop() {
		var buf bytes.Buffer
		if _, err := x.WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndex_AddRepeated adds the 512-byte text that `nexus bench
// report`'s clients write (ten lowercase words, repeated) under new keys.
func BenchmarkIndex_AddRepeated(b *testing.B) {
	text := strings.Repeat("agent memory context durable commit search thread decision result observed ", 7)[:512]
	b.ReportAllocs()
	x := keyword.New(keyword.Config{})
	for i := 0; b.Loop(); i++ {
		if err := x.Add(uint32(i), text); err != nil {
			b.Fatal(err)
		}
	}
}
