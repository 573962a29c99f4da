package keywordtest

import (
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
