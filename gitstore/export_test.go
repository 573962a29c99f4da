package gitstore

import "testing"

// SetMaxRepairRounds bounds the rounds of one repair to n until the end
// of the test.
func SetMaxRepairRounds(t *testing.T, n int) {
	old := maxRepairRounds
	maxRepairRounds = n
	t.Cleanup(func() { maxRepairRounds = old })
}
