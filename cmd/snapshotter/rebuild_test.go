package main

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/snapshotter"
)

func TestCaughtUp(t *testing.T) {
	const topic = "e.Order"
	t0 := time.Unix(1000, 0)
	part := func(p int32, next int64) snapshotter.PartitionStats {
		return snapshotter.PartitionStats{Topic: topic, Partition: p, Next: next}
	}
	tests := []struct {
		name   string
		end    map[int32]int64
		checks []snapshotter.Stats // at t0, t0+1s, t0+2s, ...
		noData map[int32]int64     // partition: the offset from which it holds no data records
		caught bool                // after the last check
		done   int64
		reads  int // reads of the rest of a partition
	}{
		{name: "not assigned yet", end: map[int32]int64{0: 10, 1: 10},
			checks: []snapshotter.Stats{{Partitions: []snapshotter.PartitionStats{part(0, 10)}}},
			caught: false, done: 10},
		{name: "at the ends", end: map[int32]int64{0: 10, 1: 0},
			checks: []snapshotter.Stats{{Partitions: []snapshotter.PartitionStats{part(0, 10), part(1, 0)}}},
			caught: true, done: 10},
		{name: "a transaction marker last", end: map[int32]int64{0: 10},
			checks: []snapshotter.Stats{{Partitions: []snapshotter.PartitionStats{part(0, 9)}}},
			noData: map[int32]int64{0: 9}, caught: true, done: 10, reads: 1},
		{name: "data left near the end", end: map[int32]int64{0: 10},
			checks: []snapshotter.Stats{{Partitions: []snapshotter.PartitionStats{part(0, 5)}}},
			noData: map[int32]int64{0: 8}, caught: false, done: 5, reads: 1},
		{name: "far from the end and moving: no read", end: map[int32]int64{0: 1000},
			checks: []snapshotter.Stats{
				{Partitions: []snapshotter.PartitionStats{part(0, 100)}},
				{Partitions: []snapshotter.PartitionStats{part(0, 400)}},
				{Partitions: []snapshotter.PartitionStats{part(0, 700)}},
			},
			noData: map[int32]int64{0: 700}, caught: false, done: 700},
		{name: "an aborted transaction at the end: read once stalled", end: map[int32]int64{0: 1000},
			checks: []snapshotter.Stats{
				{Partitions: []snapshotter.PartitionStats{part(0, 500)}},
				{Partitions: []snapshotter.PartitionStats{part(0, 500)}},
				{Partitions: []snapshotter.PartitionStats{part(0, 500)}},
			},
			noData: map[int32]int64{0: 500}, caught: true, done: 1000, reads: 1},
		{name: "another topic's partitions do not count", end: map[int32]int64{0: 5},
			checks: []snapshotter.Stats{{Partitions: []snapshotter.PartitionStats{{Topic: "e.Other", Partition: 0, Next: 5}}}},
			caught: false, done: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reads := 0
			rg := &rebuildRange{topic: topic, start: map[int32]int64{}, end: tt.end,
				next: map[int32]int64{}, moved: map[int32]time.Time{}, finished: map[int32]bool{},
				noDataFrom: func(_ context.Context, p int32, from int64) (bool, error) {
					reads++
					at, ok := tt.noData[p]
					return ok && from >= at, nil
				}}
			var caught bool
			var done int64
			for i, st := range tt.checks {
				var err error
				caught, done, err = rg.caughtUp(context.Background(), st, t0.Add(time.Duration(i)*time.Second))
				if err != nil {
					t.Fatal(err)
				}
			}
			if caught != tt.caught || done != tt.done || reads != tt.reads {
				t.Fatalf("caught %v, done %d, %d reads; want %v, %d, %d", caught, done, reads, tt.caught, tt.done, tt.reads)
			}
		})
	}
}

func TestProgressLine(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := progress{name: "Order", total: 1000}
	if got, want := p.line(), "rebuild Order: 0/1000 events (0.0%), 0 events/s, ETA unknown"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range 10 { // 50 events a second
		p.add(t0.Add(time.Duration(i)*time.Second), int64(50*i))
	}
	if got, want := p.line(), "rebuild Order: 450/1000 events (45.0%), 50 events/s, ETA 11s"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := len(p.samples); n > 7 {
		t.Fatalf("%d samples kept; the window is %s", n, rebuildRateWindow)
	}
	p.add(t0.Add(10*time.Second), 1000)
	if got, want := p.line(), "rebuild Order: 1000/1000 events (100.0%), 150 events/s, ETA 0s"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestStateOrder(t *testing.T) {
	typ := testTypes(t)[0]
	codec, err := codecOf(typ)
	if err != nil {
		t.Fatal(err)
	}
	got := stateOrder(codec.Schema(typ.Name()))
	want := fieldOrder{
		fields: []string{"order_id", "customer_id", "customer_email", "items", "status", "total_amount"},
		items:  map[string][]string{"items": {"product_id", "product_name", "quantity", "unit_price"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	// Records in unions and maps, and named references to them.
	nested := snapshotter.Register(aggregate.Type[struct{}]{Name: "N", StateSchema: `{"type":"record","name":"N","namespace":"x","fields":[
		{"name":"a","type":["null",{"type":"array","items":{"type":"record","name":"A","fields":[{"name":"z","type":"int"},{"name":"y","type":"int"}]}}]},
		{"name":"b","type":{"type":"map","values":"x.A"}},
		{"name":"c","type":"string"}]}`})
	c2, err := codecOf(nested)
	if err != nil {
		t.Fatal(err)
	}
	got = stateOrder(c2.Schema(nested.Name()))
	want = fieldOrder{fields: []string{"a", "b", "c"}, items: map[string][]string{"a": {"z", "y"}, "b": {"z", "y"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
