package snapshots_test

import (
	"testing"

	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshots/snapshotstest"
)

func countState(n int64) map[string]any {
	return map[string]any{"owner": "ada", "balance": n, "ops": n}
}

func stateCount(s map[string]any) int64 { n, _ := s["ops"].(int64); return n }

func TestMemoryConformance(t *testing.T) {
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Harness {
		return snapshotstest.Harness{Store: snapshots.NewMemory(), Type: "Account", Partitions: 1, State: countState, Count: stateCount}
	})
}
