package consumer_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/consumer"
)

type Deposited struct{ Amount int64 }

// A projection of account balances. Delivery is at least once, so the
// projection remembers the version it reached per account and ignores an
// event it has already applied.
func Example() {
	reg := aggregate.NewRegistry(nil)
	if err := aggregate.Register[Deposited](reg, "Deposited"); err != nil {
		panic(err)
	}

	var mu sync.Mutex
	type balance struct{ version, amount int64 }
	balances := map[uuid.UUID]balance{}
	project := func(_ context.Context, e consumer.Event) error {
		mu.Lock()
		defer mu.Unlock()
		b := balances[e.AggregateID]
		if e.AggregateVersion <= b.version {
			return nil // handled before a crash, not committed
		}
		if d, ok := e.Value.(Deposited); ok {
			b.amount += d.Amount
		}
		b.version = e.AggregateVersion
		balances[e.AggregateID] = b
		return nil
	}

	sub, err := consumer.New("balances", consumer.HandlerFunc(project),
		consumer.KafkaClient(kgo.SeedBrokers("127.0.0.1:9092")),
		consumer.WithTopics("Account"),
		consumer.WithRegistry(reg))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sub.Close()

	// Run until interrupted; then finish the events in hand, commit and
	// leave the group.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := sub.Run(ctx); err != nil {
		fmt.Println(err)
	}
}

// New checks every option at once, without I/O.
func ExampleNew() {
	_, err := consumer.New("balances", nil,
		consumer.WithTopics("Account"),
		consumer.WithRetries(0, 0, 0))
	fmt.Println(err)
	// Output:
	// consumer: new subscription: nil handler
	// WithRetries: tries must be at least 1, got 0
	// WithRetries: need 0 < base <= max, got base 0s, max 0s
	// KafkaClient: no client options (seed brokers are required)
}
