package vector

import "github.com/nexus-mem/nexus"

// Scan returns the k of vecs most similar to q by dot product, best first,
// ties by lower key, among those whose key allow accepts (every one when
// allow is nil); keys[i] is the key of vecs[i]. It is [Index.Exact] over
// vectors kept outside an index: those not yet inserted into one are
// searched this way until they are. allow is called once per vector,
// before its score is computed.
func Scan(q []float32, k int, keys []uint32, vecs [][]float32, allow func(key uint32) bool) ([]Result, error) {
	if len(q) == 0 {
		return nil, nexus.Errorf(nexus.EInvalid, "query vector: no components")
	}
	if err := nexus.CheckVector(q, len(q)); err != nil {
		return nil, nexus.Errorf(nexus.EInvalid, "query vector: %s", nexus.ErrorMessage(err))
	}
	if k < 0 || len(keys) != len(vecs) {
		return nil, nexus.Errorf(nexus.EInvalid, "vector scan: k is %d, %d keys for %d vectors", k, len(keys), len(vecs))
	}
	if k == 0 {
		return nil, nil
	}
	var h minHeap
	for i, v := range vecs {
		if allow != nil && !allow(keys[i]) {
			continue
		}
		if len(v) != len(q) {
			return nil, nexus.Errorf(nexus.EInvalid, "vector of key %d has %d components, the query %d", keys[i], len(v), len(q))
		}
		h.keep(cand{score: dot(q, v), id: keys[i]}, k)
	}
	return h.results(), nil
}
