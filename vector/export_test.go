package vector

// SetPrefetch sets the kernels' prefetch distances (prefetch.go) and
// returns the ones it replaced.
func SetPrefetch(int8, float int) (oldInt8, oldFloat int) {
	oldInt8, oldFloat = int8Ahead, floatAhead
	int8Ahead, floatAhead = int8, float
	return oldInt8, oldFloat
}

// SetFloatScores makes ix's insertions rank their candidates by float32
// scores, as before (Index.floatScores).
func SetFloatScores(ix *Index) { ix.floatScores = true }
