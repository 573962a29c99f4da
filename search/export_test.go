package search

// SegmentEmbeddings returns the number of embeddings a vector log segment
// holds, or -1 if it is not one.
func SegmentEmbeddings(seg []byte) int {
	_, _, n, _, err := segmentHeader(seg)
	if err != nil {
		return -1
	}
	return n
}
