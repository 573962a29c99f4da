package vector

import "testing"

// forceAVX2 sets whether the assembly kernels are used until the end of
// the test, and reports whether they are: on asks for them, and only a
// CPU with AVX2 and FMA gets them.
func forceAVX2(t *testing.T, on bool) bool {
	old := useAVX2
	t.Cleanup(func() { useAVX2 = old })
	useAVX2 = on && detectAVX2()
	return useAVX2
}
