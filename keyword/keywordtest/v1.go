package keywordtest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"

	"github.com/nexus-mem/nexus/keyword"
)

// FileV1 returns the texts (keys 0, 1, …) indexed in version 1 of the
// keyword index file format, as the analyzer before compound words were
// split wrote it: the terms of each word only (keyword.Analyze), no
// lengths, sealed with a valid checksum. Tests check that such a file is
// refused with keyword.ErrVersion and rebuilt.
func FileV1(texts []string) []byte {
	post := map[string][][2]uint64{} // term → (key, tf)
	for key, text := range texts {
		tf := map[string]uint64{}
		for _, term := range keyword.Analyze(text) {
			tf[term]++
		}
		for term, n := range tf {
			post[term] = append(post[term], [2]uint64{uint64(key), n})
		}
	}
	var payload []byte
	payload = binary.AppendUvarint(payload, uint64(len(texts)))
	bitmap := make([]uint64, (len(texts)+63)/64)
	for key := range texts {
		bitmap[key/64] |= 1 << (key % 64)
	}
	for _, w := range bitmap {
		payload = binary.LittleEndian.AppendUint64(payload, w)
	}
	terms := slices.Sorted(maps.Keys(post))
	payload = binary.AppendUvarint(payload, uint64(len(terms)))
	for _, term := range terms {
		ps := post[term]
		slices.SortFunc(ps, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
		payload = binary.AppendUvarint(payload, uint64(len(term)))
		payload = append(payload, term...)
		payload = binary.AppendUvarint(payload, uint64(len(ps)))
		prev := uint64(0)
		for _, p := range ps {
			payload = binary.AppendUvarint(payload, p[0]-prev)
			prev = p[0]
		}
		for _, p := range ps {
			payload = binary.AppendUvarint(payload, p[1])
		}
	}
	b := []byte("NXKWIDX\x00")
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(payload)))
	b = append(b, payload...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// FileV2 returns the texts (keys 0, 1, …) indexed in version 2 of the
// keyword index file format, whose layout is version 3's but whose terms
// are those of the stemmer before its step 5. That stemmer is gone; the
// file stands in for it with terms that are not the analyzer's of now
// either: the words unstemmed ("parsing" where the analyzer now has
// "pars"), sealed with a valid checksum. Tests check that such a file is
// refused with keyword.ErrVersion and rebuilt.
func FileV2(texts []string) []byte {
	x := keyword.New(keyword.Config{NoStem: true})
	for key, text := range texts {
		if err := x.Add(uint32(key), text); err != nil {
			panic(err)
		}
	}
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		panic(err)
	}
	b := buf.Bytes()[:buf.Len()-sha256.Size]
	binary.LittleEndian.PutUint32(b[8:], 2)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}
