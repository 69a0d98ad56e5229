package log_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

// TestKafkaWithClient: a log given only an existing client passes the
// conformance suite, and leaves the client open when it closes.
func TestKafkaWithClient(t *testing.T) {
	cl := kafkatest.Client(t)
	k, err := log.NewKafka(log.WithClient(cl), log.WithTopicPrefix("test."+uuid.NewString()[:8]+"."),
		log.WithTopicPartitions(3), log.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	logtest.Run(t, func(t *testing.T) logtest.Log { return k })
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(ctxT(t)); err != nil {
		t.Fatalf("the client given to the log does not work after the log's Close: %v", err)
	}
}

// TestWithClientRefusesConsumingClients: the clients a log makes from a
// shared client's options would consume its topics, join its group or
// fence its transactions along with it; such a client is refused, naming
// why.
func TestWithClientRefusesConsumingClients(t *testing.T) {
	seeds := kgo.SeedBrokers("127.0.0.1:1")
	for _, tc := range []struct {
		opts []kgo.Opt
		want string
	}{
		{[]kgo.Opt{kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t")}, `consumer group "g"`},
		{[]kgo.Opt{kgo.ConsumeTopics("t")}, "consumes topics [t]"},
		{[]kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset()}})}, "consumes partitions"},
		{[]kgo.Opt{kgo.TransactionalID("x")}, "transactional (x)"},
	} {
		cl, err := kgo.NewClient(append([]kgo.Opt{seeds}, tc.opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		_, err = log.NewKafka(log.WithClient(cl))
		cl.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithClient of a client with %s: %v", tc.want, err)
		}
	}
	if _, err := log.NewKafka(log.WithClient(nil)); err == nil || !strings.Contains(err.Error(), "nil client") {
		t.Errorf("WithClient(nil): %v", err)
	}
	cl, err := kgo.NewClient(seeds)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	k, err := log.NewKafka(log.WithClient(cl))
	if err != nil {
		t.Fatalf("WithClient of a client of connection settings only: %v", err)
	}
	k.Close()
}
