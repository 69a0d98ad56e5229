package snapshotter

import (
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/log"
)

// BenchmarkStateMemory measures what one aggregate's state costs the
// snapshotter beyond its Go value: the bookkeeping and the map slot.
//
//	go test -run '^$' -bench BenchmarkStateMemory ./snapshotter/
func BenchmarkStateMemory(b *testing.B) {
	const n = 100_000
	type value struct{ Balance, Ops int64 } // a 16-byte state
	var perState float64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		st := &partState{aggs: make(map[uuid.UUID]*aggState)}
		for k := 0; k < n; k++ {
			st.aggs[uuid.New()] = &aggState{state: value{int64(k), 1}, seq: log.Sequencer{Version: 1}, save: uuid.New(),
				last: log.Position{Offset: int64(k)}, snapVersion: 1, used: time.Now()}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perState = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(st)
	}
	b.ReportMetric(perState, "bytes/state")
	b.ReportMetric(0, "ns/op")
}
