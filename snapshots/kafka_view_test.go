package snapshots

import (
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/log"
)

// BenchmarkViewMemory measures what the Kafka store's view costs per
// aggregate: the index alone (values beyond the cache budget) and with the
// encoded values of a small state held.
//
//	go test -run '^$' -bench BenchmarkViewMemory ./snapshots/
func BenchmarkViewMemory(b *testing.B) {
	const n = 100_000
	codec := NewAvroCodec()
	if err := codec.Register("Account", `{"type":"record","name":"Account","namespace":"snaplog.test","fields":[
		{"name":"owner","type":"string"},{"name":"balance","type":"long"},{"name":"ops","type":"long"}]}`); err != nil {
		b.Fatal(err)
	}
	type account struct {
		Owner   string `avro:"owner"`
		Balance int64  `avro:"balance"`
		Ops     int64  `avro:"ops"`
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		id := uuid.New()
		state, err := codec.Schema("Account").Encode(account{Owner: "ada", Balance: int64(i), Ops: int64(i)})
		if err != nil {
			b.Fatal(err)
		}
		v, err := codec.Encode(Snapshot{AggregateID: id, AggregateType: "Account", Version: int64(i + 1), SchemaVersion: 1,
			CreatedAt: time.Now(), Position: log.Position{Offset: int64(i)}, State: state})
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = &kgo.Record{Key: log.Key(id), Value: v, Offset: int64(i)}
	}
	for _, budget := range []int64{0, 1 << 30} {
		b.Run(fmt.Sprintf("cache=%t", budget > 0), func(b *testing.B) {
			var perAggregate float64
			for i := 0; i < b.N; i++ {
				k := &Kafka{codec: codec, cfg: kafkaConfig{cacheBytes: budget, logger: slog.New(slog.DiscardHandler)}}
				kt := &kafkaType{name: "Account", eventsTopic: "snaplog.events.Account"}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				vp := &viewPart{entries: make(map[uuid.UUID]*viewEntry)}
				for _, r := range recs {
					k.apply(kt, vp, r)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if len(vp.entries) != n {
					b.Fatalf("%d entries", len(vp.entries))
				}
				perAggregate = float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(vp)
			}
			b.ReportMetric(perAggregate, "bytes/aggregate")
			b.ReportMetric(float64(len(recs[0].Value)), "value-bytes")
		})
	}
}

// TestViewTombstoneOrder: a tombstone the view learns of after a later
// snapshot of the key (a DeleteType's own bookkeeping racing the tail) does
// not delete that snapshot, and a snapshot older than a tombstone does not
// bring the key back.
func TestViewTombstoneOrder(t *testing.T) {
	k := &Kafka{cfg: kafkaConfig{cacheBytes: 1 << 20}}
	vp := &viewPart{entries: make(map[uuid.UUID]*viewEntry), deleted: make(map[uuid.UUID]int64)}
	id := uuid.New()
	k.remember(vp, id, 2, 1, 5, []byte("v"))
	k.forget(vp, id, 3)
	if e := vp.entries[id]; e == nil || e.offset != 5 {
		t.Fatalf("a tombstone at 3 deleted the snapshot at 5: %+v", e)
	}
	k.forget(vp, id, 7)
	k.remember(vp, id, 3, 1, 6, []byte("v"))
	if _, deleted := vp.deleted[id]; !deleted || vp.entries[id] != nil {
		t.Fatalf("a snapshot at 6 undid the tombstone at 7: %+v", vp.entries[id])
	}
	k.remember(vp, id, 4, 2, 8, []byte("v"))
	if e := vp.entries[id]; e == nil || e.schemaVersion != 2 || len(vp.deleted) != 0 {
		t.Fatalf("the snapshot at 8, after the tombstone: %+v, deleted %v", e, vp.deleted)
	}
}
