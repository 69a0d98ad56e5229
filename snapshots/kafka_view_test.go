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
