package gitstore

import (
	"context"
	"testing"
)

// SetMaxRepairRounds bounds the rounds of one repair to n until the end
// of the test.
func SetMaxRepairRounds(t *testing.T, n int) {
	old := maxRepairRounds
	maxRepairRounds = n
	t.Cleanup(func() { maxRepairRounds = old })
}

// FailRepairCheck makes the deep check after each round of a repair fail
// with err until the end of the test.
func FailRepairCheck(t *testing.T, err error) {
	old := confirmRepair
	confirmRepair = func(*Store, context.Context, bool) (*FsckReport, error) { return nil, err }
	t.Cleanup(func() { confirmRepair = old })
}
