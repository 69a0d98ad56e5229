package kafkatest_test

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/kafkatest"
	"github.com/snaplog/snaplog/log"
)

// An in-process broker of one's own, and snaplog's event log on it. In a
// test, kafkatest.Brokers(t) gives the brokers instead: the ones an
// environment variable names, a container, or the shared fake.
func ExampleNewFake() {
	cluster, err := kafkatest.NewFake()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cluster.Close()
	events, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(cluster.ListenAddrs()...)),
		log.WithTopicPartitions(3), log.WithReplicationFactor(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer events.Close()

	ctx := context.Background()
	id := uuid.New()
	stored, err := events.Append(ctx, "Order", id, log.Expected{}, []log.Event{
		{ID: uuid.New(), Type: "OrderCreated", AggregateID: id, AggregateType: "Order", AggregateVersion: 1, Payload: []byte(`{}`)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	tail, err := events.Read(ctx, "Order", id, 0)
	fmt.Println(len(stored), len(tail.Events), tail.Events[0].Type, err)
	// Output: 1 1 OrderCreated <nil>
}
