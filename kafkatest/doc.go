// Package kafkatest gives integration tests a Kafka broker: Apache Kafka
// when there is one, else, outside CI, an in-process fake. snaplog's own
// tests use it, and so can the tests of applications built on snaplog:
//
//	func TestOrders(t *testing.T) {
//		events, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
//			log.WithTopicPrefix(kafkatest.Topic(t, "orders")+"."))
//		...
//	}
//
// [NewFake] starts an in-process broker of one's own (see the example).
//
// Tests ask for brokers in one of two ways. [Brokers] (and [Client] and
// [Admin], which use it) serves tests that need Kafka's protocol but not
// behaviour of Apache Kafka that kfake lacks; [RealBrokers] serves tests
// that need Apache Kafka itself: log compaction, topic settings that kfake
// stores but does not act on, broker restarts, or anything else that
// kfake does not reproduce faithfully. Each looks for the brokers in this
// order:
//
//  1. The environment variable SNAPLOG_KAFKA_BROKERS ([EnvBrokers]), a
//     comma-separated list of host:port. The broker must answer a ping
//     within a few seconds; if it does not, every test that asks for it
//     fails with the reason. Nothing falls back to another source: a
//     broker that was named but is down is an error, not a skip.
//  2. Otherwise, if a Docker engine answers within two seconds, a
//     single-node KRaft broker from the apache/kafka image (the same
//     Kafka version and broker settings as snaplog's scripts/kafka.sh) started with
//     testcontainers-go.
//  3. Otherwise, if the environment variable CI is set to anything but a
//     false value ("true" as CI systems set it, but also "1" or "yes"; not
//     "", "false" or "0"), the test fails: in CI an integration test must
//     never pass by skipping, nor on a fake broker.
//  4. Otherwise [Brokers] returns the address of an in-process kfake
//     cluster (github.com/twmb/franz-go/pkg/kfake), and [RealBrokers]
//     skips the test with the instructions of [HowToStart].
//
// A real broker, when there is one, is thus chosen for both, and a test
// that calls [RealBrokers] first gets the same broker from [Brokers],
// [Client] and [Admin] afterwards. Each source is set up at most once per
// test binary, when the first test that gets its brokers from it asks,
// and all tests of the binary share it; go test runs one binary per
// package, so each package gets its own container or kfake cluster.
//
// The decision is a pure function of the two environment variables, of
// whether Docker answered and of which of the two functions asks; see the
// table in kafkatest_test.go.
//
// # The kfake cluster
//
// The kfake cluster has one broker and is configured like snaplog's
// development broker as far as kfake has the setting: topics are created
// explicitly (no auto-creation), with one partition unless a count is
// given, one replica, min.insync.replicas=1 and a transaction timeout of
// at most 15 minutes. It has transactions and consumer groups. Its log
// cleaner does not run during the tests: kfake's compaction differs from
// Kafka's (it cleans all but the last batch whatever segment.ms says, and
// moves the log start offset), and tests of compaction use [RealBrokers]. The cluster lives in
// the test binary's memory, listens on a random port of 127.0.0.1 and ends
// with the binary; a child process that the test starts reaches it at the
// address [Brokers] returns.
//
// # Container lifetime
//
// The container is left to testcontainers' reaper (Ryuk), which removes it
// a few seconds after the test binary exits, however it exits: normally,
// by t.Fatal, by a panic or killed by go test's -timeout. Packages need no
// TestMain. With TESTCONTAINERS_RYUK_DISABLED=true there is no reaper and
// the containers keep running after the tests; remove them with
//
//	docker rm -f $(docker ps -q --filter label=org.testcontainers=true --filter ancestor=apache/kafka:4.4.0)
//
// # Isolation
//
// Tests share the broker, and with SNAPLOG_KAFKA_BROKERS so do the
// packages that go test runs in parallel. [Topic] returns a name no other
// test uses; [DeleteTopicsOnCleanup] deletes topics when the test ends so
// that a long-running development broker stays small. Consumer group names
// and transactional IDs need the same care: derive them from [Topic].
//
// # Concurrency
//
// All functions are safe for concurrent use by parallel tests. Clients
// returned by [Client] and [Admin] are closed when the test that asked for
// them ends.
package kafkatest
