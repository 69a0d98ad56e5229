// Package kafkatest gives integration tests a real Apache Kafka broker.
//
// [Brokers] finds the broker once per test binary, in this order:
//
//  1. The environment variable SNAPLOG_KAFKA_BROKERS ([EnvBrokers]), a
//     comma-separated list of host:port. The broker must answer a ping
//     within a few seconds; if it does not, every test that asks for it
//     fails with the reason. Nothing falls back to another source: a
//     broker that was named but is down is an error, not a skip.
//  2. Otherwise, if a Docker engine answers within two seconds, a
//     single-node KRaft broker from the apache/kafka image (the same
//     Kafka version and broker settings as scripts/kafka.sh) started with
//     testcontainers-go. All tests of the binary share it; go test runs
//     one binary per package, so each package gets its own container.
//  3. Otherwise the test is skipped with instructions to start
//     scripts/kafka.sh, unless the environment variable CI is set to
//     anything but a false value ("true" as CI systems set it, but also
//     "1" or "yes"; not "", "false" or "0"): then the test fails, because
//     an integration test must never pass by skipping in CI.
//
// The decision is a pure function of the two environment variables and
// whether Docker answered; see the table in kafkatest_test.go.
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
