package kafkatest

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// fakeOptions configure the in-process cluster like snaplog's development
// broker (scripts/kafka.sh in its repository), as far as kfake has the
// setting: one broker, so
// that every topic has one replica; one partition for a topic created
// without a count; no topic auto-creation; the same transaction timeout
// bound. kfake has transactions and consumer groups, and no initial
// rebalance delay.
//
// The log cleaner keeps kfake's default backoff of an hour, so that it
// never runs during a test. kfake's compaction is not Kafka's: it cleans
// every batch but the last, ignoring segment.ms and the active segment,
// and moves the log start offset to the first batch it keeps, so that a
// read from offset 0 of a compacted topic fails with OFFSET_OUT_OF_RANGE.
// With Kafka, a compacted topic whose segments have not rolled (the
// snapshot topics' segment.ms is an hour) is not cleaned during a test
// either; tests of compaction use RealBrokers.
func fakeOptions() []kfake.Opt {
	return []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(1),
		kfake.ClusterID("snaplog-kafkatest"),
		kfake.BrokerConfigs(map[string]string{
			"default.replication.factor": "1",
			"min.insync.replicas":        "1",
			"transaction.max.timeout.ms": "900000",
		}),
	}
}

// NewFake starts an in-process kfake cluster configured as the one Brokers
// falls back to (one broker, explicit topic creation, transactions and
// consumer groups, no log cleaning), for programs and examples that want
// one of their own. Close it when done; its address is ListenAddrs.
func NewFake() (*kfake.Cluster, error) {
	c, err := kfake.NewCluster(fakeOptions()...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: start the in-process kfake cluster: %w", err)
	}
	return c, nil
}

// startFake starts the shared in-process kfake cluster and returns its
// address. It runs until the test binary exits.
func startFake() ([]string, error) {
	c, err := NewFake()
	if err != nil {
		return nil, err
	}
	return c.ListenAddrs(), nil
}
