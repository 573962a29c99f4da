package nexus

import (
	"context"
	"math"
)

// Embedder turns texts into vectors for semantic search.
//
// Implementations are safe for concurrent use. Embed returns one vector per
// text, each of length Dimension; an implementation that receives a vector of
// another length or a non-finite component from its backend returns an error
// with code [EUnavailable] rather than passing it on.
type Embedder interface {
	// Embed returns the vectors of texts, in order.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Model identifies the model; vectors of different models are never mixed.
	Model() string
	// Dimension is the length of every vector Embed returns.
	Dimension() int
}

// CheckVector reports an error when v does not have dim components or holds
// a NaN or an infinity.
func CheckVector(v []float32, dim int) error {
	if len(v) != dim {
		return Errorf(EUnavailable, "embedding has %d dimensions, want %d", len(v), dim)
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return Errorf(EUnavailable, "embedding component %d is %v", i, x)
		}
	}
	return nil
}
