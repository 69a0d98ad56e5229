package snapshots_test

import (
	"testing"

	"github.com/google/uuid"
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

// TestMemoryHousekeeping: DeleteType leaves other aggregate types alone,
// and Clear empties the store.
func TestMemoryHousekeeping(t *testing.T) {
	s := snapshots.NewMemory()
	accounts := snapshotstest.Harness{Type: "Account", Partitions: 1, State: countState}
	orders := snapshotstest.Harness{Type: "Order", Partitions: 1, State: countState}
	for range 2 {
		for _, h := range []snapshotstest.Harness{accounts, orders} {
			if err := s.Put(t.Context(), h.Snapshot(uuid.New(), 1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := s.DeleteType(t.Context(), "Account", 0); err != nil || n != 2 {
		t.Fatalf("DeleteType Account: %d, %v; want 2", n, err)
	}
	if n, err := s.CountType(t.Context(), "Order", 0); err != nil || n != 2 || s.Len() != 2 {
		t.Fatalf("after deleting the accounts: %d orders (%v), %d snapshots; want 2 and 2", n, err, s.Len())
	}
	s.Clear()
	if s.Len() != 0 {
		t.Fatalf("%d snapshots after Clear", s.Len())
	}
	if err := s.Put(t.Context(), orders.Snapshot(uuid.New(), 1)); err != nil || s.Len() != 1 {
		t.Fatalf("Put after Clear: %v, %d snapshots", err, s.Len())
	}
}
