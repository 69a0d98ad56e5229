package aggregate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// loadPair times, side by side in one run, a load that replays every event
// against a load from a current snapshot, and reports both and their ratio.
func loadPair(b *testing.B, replay, fromSnapshot func() error) {
	var tReplay, tSnap time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := replay(); err != nil {
			b.Fatal(err)
		}
		tReplay += time.Since(start)
		start = time.Now()
		if err := fromSnapshot(); err != nil {
			b.Fatal(err)
		}
		tSnap += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(tReplay.Nanoseconds())/float64(b.N), "replay-ns/load")
	b.ReportMetric(float64(tSnap.Nanoseconds())/float64(b.N), "snapshot-ns/load")
	b.ReportMetric(float64(tReplay)/float64(tSnap), "speedup")
	b.ReportMetric(0, "ns/op") // the two figures above are the result
}

// BenchmarkLoadMemory: the in-memory default, an account whose state does not
// grow with its events and the seed's Order whose state does.
func BenchmarkLoadMemory(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("Account/events=%d", n), func(b *testing.B) {
			l := newLog(b)
			store := snapshots.NewMemory()
			plain := newRepo(b, l)
			snap := newRepo(b, l, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotMode(aggregate.SnapshotManual))
			a := plain.New(uuid.New())
			grow(b, a, n)
			if err := plain.Save(ctx, a); err != nil {
				b.Fatal(err)
			}
			if _, err := snap.CreateSnapshot(ctx, a); err != nil {
				b.Fatal(err)
			}
			check := func(r *aggregate.Repository[Account]) func() error {
				return func() error {
					got, err := r.Load(ctx, a.ID())
					if err == nil && got.Version() != int64(n) {
						err = fmt.Errorf("loaded version %d", got.Version())
					}
					return err
				}
			}
			loadPair(b, check(plain), check(snap))
			if st := snap.Stats(); st.LoadsFromSnapshot != st.Loads {
				b.Fatalf("%d of %d loads used the snapshot", st.LoadsFromSnapshot, st.Loads)
			}
		})
	}
	for _, n := range []int{200, 1000, 10000} {
		b.Run(fmt.Sprintf("Order/events=%d", n), func(b *testing.B) {
			l, err := log.NewMemory()
			if err != nil {
				b.Fatal(err)
			}
			typ, err := order.Type(1)
			if err != nil {
				b.Fatal(err)
			}
			plain, err := aggregate.NewRepository(l, typ)
			if err != nil {
				b.Fatal(err)
			}
			snap, err := aggregate.NewRepository(l, typ, aggregate.WithSnapshotStore(snapshots.NewMemory()), aggregate.WithSnapshotMode(aggregate.SnapshotManual))
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
			}
			if err := plain.Save(ctx, o.Root); err != nil {
				b.Fatal(err)
			}
			if _, err := snap.CreateSnapshot(ctx, o.Root); err != nil {
				b.Fatal(err)
			}
			check := func(r *aggregate.Repository[order.OrderState]) func() error {
				return func() error {
					_, err := r.Load(ctx, o.ID())
					return err
				}
			}
			loadPair(b, check(plain), check(snap))
		})
	}
}
