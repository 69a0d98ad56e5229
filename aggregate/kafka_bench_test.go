package aggregate_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// appendAll writes n deposits to a new account: in saves of up to 500
// events, then the last 10 one by one, the way an aggregate's recent events
// arrive (so the snapshot's own record is not inside a 500-event batch).
func appendAll(b *testing.B, ks *kafkaSetup, repo *aggregate.Repository[Account], n int) *aggregate.Root[Account] {
	b.Helper()
	a := repo.New(uuid.New())
	for a.Version() < int64(n) {
		k := min(500, n-10-int(a.Version()))
		if k <= 0 {
			k = 1
		}
		grow(b, a, k)
		if err := repo.Save(context.Background(), a); err != nil {
			b.Fatal(err)
		}
	}
	return a
}

// bareFetch times one franz-go fetch request of the partition at its last
// record: the floor under any load from Kafka.
func bareFetch(b *testing.B, cl *kgo.Client, topic string, offset int64) time.Duration {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.IsolationLevel = 0, 1, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	start := time.Now()
	if _, err := cl.Request(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkKafkaLoad times, side by side on the real broker, a load from a
// current snapshot (Kafka snapshot store) against a full replay of the
// event log, for an account whose state does not grow with its events, and
// a bare fetch round trip of the same partition as the floor.
func BenchmarkKafkaLoad(b *testing.B) {
	for _, n := range []int{100, 1000, 10000, 100000} {
		b.Run(fmt.Sprintf("Account/events=%d", n), func(b *testing.B) {
			ks := newKafkaSetup(b, 1, nil)
			store := ks.store(b)
			plain := newRepo(b, ks.log)
			snap := newRepo(b, ks.log, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotMode(aggregate.SnapshotManual))
			a := appendAll(b, ks, plain, n)
			if _, err := snap.CreateSnapshot(context.Background(), a); err != nil {
				b.Fatal(err)
			}
			cl := kafkatest.Client(b)
			check := func(r *aggregate.Repository[Account]) func() error {
				return func() error {
					got, err := r.Load(context.Background(), a.ID())
					if err == nil && got.Version() != int64(n) {
						err = fmt.Errorf("loaded version %d", got.Version())
					}
					return err
				}
			}
			var floor time.Duration
			for i := 0; i < 3; i++ { // warm up
				_ = check(snap)()
				bareFetch(b, cl, ks.events+"Account", a.Position().Offset)
			}
			tSnap := loadPairWith(b, check(plain), check(snap), func() { floor += bareFetch(b, cl, ks.events+"Account", a.Position().Offset) })
			b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "fetch-ns")
			b.ReportMetric(float64(tSnap)/float64(floor), "snapshot/fetch")
			if st := snap.Stats(); st.LoadsFromSnapshot != st.Loads {
				b.Fatalf("%d of %d loads used the snapshot", st.LoadsFromSnapshot, st.Loads)
			}

			// Then the same snapshot under a checkpoint past it (another
			// aggregate's event lies between): the load confirms the
			// snapshot with a point read while it reads the tail from the
			// checkpoint. Timed against the bare fetch, alternating.
			later := plain.New(uuid.New())
			grow(b, later, 1)
			if err := plain.Save(context.Background(), later); err != nil {
				b.Fatal(err)
			}
			sidecar := ks.store(b, snapshots.WithOwner("snapshotter"))
			if err := sidecar.PutCheckpoint(context.Background(), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: later.Position().Offset + 1}); err != nil {
				b.Fatal(err)
			}
			cp := newRepo(b, ks.log, aggregate.WithSnapshotStore(ks.store(b)), aggregate.WithSnapshotMode(aggregate.SnapshotManual))
			for i := 0; i < 3; i++ { // warm up
				_ = check(cp)()
			}
			var cpFloor, underCP time.Duration
			b.StartTimer()
			for i := 0; i < b.N; i++ {
				cpFloor += bareFetch(b, cl, ks.events+"Account", a.Position().Offset)
				start := time.Now()
				if err := check(cp)(); err != nil {
					b.Fatal(err)
				}
				underCP += time.Since(start)
			}
			b.StopTimer()
			b.ReportMetric(float64(underCP.Nanoseconds())/float64(b.N), "checkpoint-ns/load")
			b.ReportMetric(float64(underCP)/float64(cpFloor), "checkpoint/fetch")
			if st := cp.Stats(); st.LoadsFromSnapshot != st.Loads {
				b.Fatalf("%d of %d loads under the checkpoint used the snapshot", st.LoadsFromSnapshot, st.Loads)
			}
		})
	}
	for _, n := range []int{200, 10000} {
		b.Run(fmt.Sprintf("Order/events=%d", n), func(b *testing.B) {
			ks := newKafkaSetup(b, 1, nil)
			if err := ks.log.EnsureTopic(context.Background(), order.TypeName); err != nil {
				b.Fatal(err)
			}
			// The repository registers the Order's state schema with the store.
			store, err := snapshots.NewKafka(nil, snapshots.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(b)...)),
				snapshots.WithTopicPrefix(ks.snaps), snapshots.WithEventsTopicPrefix(ks.events), snapshots.WithReplicationFactor(1))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			kafkatest.DeleteTopicsOnCleanup(b, ks.events+order.TypeName, ks.snaps+order.TypeName)
			typ, err := order.Type(1)
			if err != nil {
				b.Fatal(err)
			}
			plain, err := aggregate.NewRepository(ks.log, typ)
			if err != nil {
				b.Fatal(err)
			}
			snap, err := aggregate.NewRepository(ks.log, typ, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotMode(aggregate.SnapshotManual))
			if err != nil {
				b.Fatal(err)
			}
			o := order.Order{Root: plain.New(uuid.New())}
			if err := o.Create(uuid.New(), "customer@example.com"); err != nil {
				b.Fatal(err)
			}
			for i := 1; i < n; i++ {
				if err := o.AddItem(uuid.New(), fmt.Sprintf("Product %d", i), 1, 10+float64(i%100)); err != nil {
					b.Fatal(err)
				}
				if i%500 == 0 || i >= n-10 {
					if err := plain.Save(context.Background(), o.Root); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := plain.Save(context.Background(), o.Root); err != nil {
				b.Fatal(err)
			}
			if _, err := snap.CreateSnapshot(context.Background(), o.Root); err != nil {
				b.Fatal(err)
			}
			check := func(r *aggregate.Repository[order.OrderState]) func() error {
				return func() error {
					_, err := r.Load(context.Background(), o.ID())
					return err
				}
			}
			loadPairWith(b, check(plain), check(snap), nil)
		})
	}
}

// loadPairWith times, in one run, b.N full replays, then b.N loads from the
// snapshot, then b.N calls of also (when not nil), with a garbage
// collection between the phases so that one phase's garbage is not
// collected on the next one's time.
func loadPairWith(b *testing.B, replay, fromSnapshot func() error, also func()) (tSnap time.Duration) {
	phase := func(f func() error) time.Duration {
		runtime.GC()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if err := f(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	b.ResetTimer()
	tReplay := phase(replay)
	tSnap = phase(fromSnapshot)
	if also != nil {
		phase(func() error { also(); return nil })
	}
	b.StopTimer()
	b.ReportMetric(float64(tReplay.Nanoseconds())/float64(b.N), "replay-ns/load")
	b.ReportMetric(float64(tSnap.Nanoseconds())/float64(b.N), "snapshot-ns/load")
	b.ReportMetric(float64(tReplay)/float64(tSnap), "speedup")
	b.ReportMetric(0, "ns/op")
	return tSnap
}

var _ = log.Partition
