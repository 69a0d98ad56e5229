package snapshotter_test

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/snapshotter"
)

// A sidecar for the example Order domain: register the aggregate types the
// application's repositories use, with their state schemas, and run until
// SIGTERM, which snapshots what is dirty, checkpoints and leaves the group.
func ExampleNew() {
	orders, err := order.Type(order.SchemaVersion)
	if err != nil {
		panic(err)
	}
	s, err := snapshotter.New("orders-snapshotter",
		[]snapshotter.Type{snapshotter.Register(orders)},
		snapshotter.KafkaClient(kgo.SeedBrokers("127.0.0.1:9092")),
		snapshotter.WithThreshold(100))
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Run(ctx); err != nil {
		panic(err)
	}
}
