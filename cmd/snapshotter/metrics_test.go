package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/snaplog/snaplog/snapshotter"
)

// TestPartitionSeriesOutliveTheAssignment: a partition the instance no
// longer reports (a broker outage, a rebalance) keeps its series, with
// partition_assigned 0 and a checkpoint age that goes on growing, for
// keepPartitions; an idle, caught-up partition's checkpoint is not stale.
func TestPartitionSeriesOutliveTheAssignment(t *testing.T) {
	m := newMetrics(nil, "e.")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	busy := snapshotter.PartitionStats{Topic: "e.Order", Partition: 0, Next: 120, Lag: 3, Checkpoint: 100, CheckpointAge: 4 * time.Second}
	idle := snapshotter.PartitionStats{Topic: "e.Order", Partition: 1, Next: 50, Lag: 0, Checkpoint: 50, CheckpointAge: time.Hour}
	parts := []snapshotter.PartitionStats{busy, idle}
	m.read = func() (snapshotter.Stats, bool, bool) { return snapshotter.Stats{Partitions: parts}, true, true }

	scrape := func(names ...string) string {
		t.Helper()
		var b strings.Builder
		for _, n := range names {
			b.WriteString(n + ",")
		}
		out, err := testutil.CollectAndFormat(statsCollector{m}, expfmt.TypeTextPlain, "snaplog_snapshotter_partition_assigned",
			"snaplog_snapshotter_checkpoint_age_seconds", "snaplog_snapshotter_lag_records")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	has := func(out string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(out, l+"\n") {
				t.Errorf("no %q in\n%s", l, out)
			}
		}
	}
	has(scrape(),
		`snaplog_snapshotter_partition_assigned{partition="0",topic="e.Order"} 1`,
		`snaplog_snapshotter_checkpoint_age_seconds{partition="0",topic="e.Order"} 4`,
		`snaplog_snapshotter_checkpoint_age_seconds{partition="1",topic="e.Order"} 0`,
		`snaplog_snapshotter_lag_records{partition="0",topic="e.Order"} 3`)

	// The broker goes away: the instance reports no partition.
	parts = nil
	now = now.Add(time.Minute)
	has(scrape(),
		`snaplog_snapshotter_partition_assigned{partition="0",topic="e.Order"} 0`,
		`snaplog_snapshotter_checkpoint_age_seconds{partition="0",topic="e.Order"} 64`,
		`snaplog_snapshotter_lag_records{partition="0",topic="e.Order"} 3`,
		`snaplog_snapshotter_partition_assigned{partition="1",topic="e.Order"} 0`)

	now = now.Add(keepPartitions)
	if out := scrape(); strings.Contains(out, `partition="0"`) {
		t.Errorf("series of a partition gone for longer than %s:\n%s", keepPartitions, out)
	}
}
