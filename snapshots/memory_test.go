package snapshots_test

import (
	"testing"

	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshots/snapshotstest"
)

// countState is an Account state that holds n, encoded in accountSchema.
func countState(n int64) []byte {
	return must(accountState.Encode(Account{Owner: "ada", Balance: n, Ops: n}))
}

// stateCount reads back the n of countState, or -1 from bytes that are not
// an Account state.
func stateCount(b []byte) int64 {
	var a Account
	if err := accountState.Decode(b, &a); err != nil {
		return -1
	}
	return a.Ops
}

func TestMemoryConformance(t *testing.T) {
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Harness {
		return snapshotstest.Harness{Store: snapshots.NewMemory(), Type: "Account", Partitions: 1, State: countState, Count: stateCount}
	})
}
