package log

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/google/uuid"
)

// TestAggIndexIsTheRule: the index's state of each aggregate after a random
// mix of records (single and multi-event saves, losers, repeats, records
// of saves never completed) is the Sequencer's after the same records.
func TestAggIndexIsTheRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]uuid.UUID, 50)
	for i := range ids {
		ids[i] = uuid.New()
	}
	x := NewIndex()
	want := map[uuid.UUID]*Sequencer{}
	var buf []Event
	for off := int64(0); off < 20_000; off++ {
		id := ids[rng.IntN(len(ids))]
		sq := want[id]
		if sq == nil {
			sq = &Sequencer{}
			want[id] = sq
		}
		n := 1 + rng.IntN(3)
		exp := max(0, sq.Version+int64(rng.IntN(3))-1)
		e := Event{ID: uuid.New(), AggregateID: id, Expected: exp, SaveEvents: n, AggregateVersion: exp + 1 + int64(rng.IntN(n)),
			Save: uuid.NewSHA1(id, fmt.Appendf(nil, "%d", exp)), Position: Position{Offset: off}}
		want, _ := sq.Next(e)
		var out Outcome
		out, buf = x.Next(e, buf)
		if out != want {
			t.Fatalf("offset %d: index says %s, the rule %s", off, out, want)
		}
		got := x.State(id)
		if got.Version != sq.Version || got.Incomplete() != sq.Incomplete() || got.Resume(off+1) != sq.Resume(off+1) {
			t.Fatalf("offset %d: index v%d, %d incomplete, resume %d; rule v%d, %d incomplete, resume %d",
				off, got.Version, got.Incomplete(), got.Resume(off+1), sq.Version, sq.Incomplete(), sq.Resume(off+1))
		}
	}
	if x.Len() > len(ids) {
		t.Fatalf("index holds %d aggregates of %d", x.Len(), len(ids))
	}
}

// BenchmarkIndexMemory measures the heap an index takes per aggregate, for
// partitions of 100,000 and 1,000,000 aggregates (one save each), against
// the map of Sequencers by key string it replaced, in one run. Run with
// -benchtime=1x: each iteration builds both.
func BenchmarkIndexMemory(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("aggregates=%d", n), func(b *testing.B) {
			ids := make([]uuid.UUID, n)
			for i := range ids {
				ids[i] = uuid.New()
			}
			heap := func() uint64 {
				runtime.GC()
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				return m.HeapAlloc
			}
			var perIndex, perMap float64
			for range b.N {
				base := heap()
				x := NewIndex()
				var buf []Event
				for i, id := range ids {
					_, buf = x.Next(Event{AggregateID: id, Expected: 0, SaveEvents: 1, AggregateVersion: 1, Position: Position{Offset: int64(i)}}, buf)
				}
				perIndex = float64(heap()-base) / float64(n)
				runtime.KeepAlive(x)
				x = nil

				base = heap()
				old := map[string]Sequencer{}
				for i, id := range ids {
					k := Key(id)
					sq := old[string(k)]
					sq.Next(Event{Expected: 0, SaveEvents: 1, AggregateVersion: 1, Position: Position{Offset: int64(i)}})
					old[string(k)] = sq
				}
				perMap = float64(heap()-base) / float64(n)
				runtime.KeepAlive(old)
			}
			b.ReportMetric(perIndex, "B/agg")
			b.ReportMetric(perMap, "old-B/agg")
			b.ReportMetric(perMap/perIndex, "old/new")
		})
	}
}
