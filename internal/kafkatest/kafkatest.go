package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/kafkatest"
)

// EnvBrokers names the environment variable that lists the brokers of a
// running Kafka cluster: kafkatest.EnvBrokers.
const EnvBrokers = kafkatest.EnvBrokers

func init() {
	kafkatest.HowToStart = "start one with `bash scripts/kafka.sh start`, then run " +
		"`" + EnvBrokers + "=127.0.0.1:9092 go test ./...` (or `make test`, which does both)"
}

// Brokers is kafkatest.Brokers.
func Brokers(t testing.TB) []string { t.Helper(); return kafkatest.Brokers(t) }

// RealBrokers is kafkatest.RealBrokers.
func RealBrokers(t testing.TB) []string { t.Helper(); return kafkatest.RealBrokers(t) }

// Client is kafkatest.Client.
func Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return kafkatest.Client(t, opts...)
}

// Admin is kafkatest.Admin.
func Admin(t testing.TB) *kadm.Client { t.Helper(); return kafkatest.Admin(t) }

// Topic is kafkatest.Topic.
func Topic(t testing.TB, prefix string) string { t.Helper(); return kafkatest.Topic(t, prefix) }

// DeleteTopicsOnCleanup is kafkatest.DeleteTopicsOnCleanup.
func DeleteTopicsOnCleanup(t testing.TB, names ...string) {
	t.Helper()
	kafkatest.DeleteTopicsOnCleanup(t, names...)
}
