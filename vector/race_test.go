//go:build race

package vector_test

// raceEnabled shrinks the larger tests under the race detector, which
// slows them about tenfold.
const raceEnabled = true
