package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnvBrokers names the environment variable that lists the brokers of a
// running Kafka cluster, comma-separated host:port pairs, for example
// "127.0.0.1:9092".
const EnvBrokers = "SNAPLOG_KAFKA_BROKERS"

// envCI is set to a true value by CI systems.
const envCI = "CI"

const (
	// pingTimeout bounds the check that the brokers named in EnvBrokers
	// answer.
	pingTimeout = 5 * time.Second
	// dockerProbeTimeout bounds the check for a Docker engine. Without one
	// configured the check returns in well under a millisecond.
	dockerProbeTimeout = 2 * time.Second
	// containerTimeout bounds pulling the image and starting the broker.
	containerTimeout = 5 * time.Minute
	// cleanupTimeout bounds deleting a test's topics.
	cleanupTimeout = 30 * time.Second

	// kafkaImage is the broker image for Docker hosts: the Kafka version
	// that scripts/kafka.sh runs.
	kafkaImage = "apache/kafka:4.4.0"
	// clientPort is the container port of the listener that tests use; the
	// host port it is published on is chosen by Docker.
	clientPort = "9092/tcp"
	// starterPath is where the script that launches the broker is copied
	// once the published port, which it advertises, is known.
	starterPath = "/tmp/snaplog-kafka-start.sh"
)

// HowToStart is what a test that is skipped for want of a real broker, or
// fails for want of one in CI, tells the reader to do. A project sets its
// own, naming its script or make target, before its tests run (in an init
// function of its test helpers, or in TestMain).
var HowToStart = "start a Kafka broker and run the tests with " + EnvBrokers + " set to its host:port list"

// need is what a test asks of the broker.
type need int

const (
	anyBroker  need = iota + 1 // Kafka's protocol: a real broker or the in-process fake
	realBroker                 // Apache Kafka itself, for what the fake does not do faithfully
)

func (n need) String() string {
	switch n {
	case anyBroker:
		return "any broker"
	case realBroker:
		return "real broker"
	}
	return "need(" + strconv.Itoa(int(n)) + ")"
}

// action is where the brokers come from, or what happens without.
type action int

const (
	useEnv    action = iota + 1 // the brokers listed in EnvBrokers
	useDocker                   // a broker in a container started for this test binary
	useFake                     // the in-process kfake cluster of this test binary
	skipTest                    // no real broker, outside CI, for a test that needs one
	failTest                    // no real broker, in CI
)

func (a action) String() string {
	switch a {
	case useEnv:
		return "use " + EnvBrokers
	case useDocker:
		return "use Docker"
	case useFake:
		return "use kfake"
	case skipTest:
		return "skip"
	case failTest:
		return "fail"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// decide chooses where the brokers of a test that needs n come from, given
// the environment variables EnvBrokers and CI. dockerOK is asked only when
// EnvBrokers is blank. A real broker, when there is one, is chosen for
// every need, so that all tests of a binary share it; the fake is never
// chosen in CI.
func decide(env map[string]string, n need, dockerOK func() bool) action {
	switch {
	case strings.TrimSpace(env[EnvBrokers]) != "":
		return useEnv
	case dockerOK():
		return useDocker
	case InCI(env[envCI]):
		return failTest
	case n == anyBroker:
		return useFake
	default:
		return skipTest
	}
}

// InCI reports whether the value of the environment variable CI says the
// tests run in CI: any value but a blank or false one ("true" as CI systems
// set it, but also "1" or "yes"; not "", "false" or "0"). In CI a test that
// needs a server it cannot find fails instead of skipping. The tests of
// snaplog's other servers (PostgreSQL, the SASL_SSL broker) apply the same
// rule.
func InCI(v string) bool {
	v = strings.TrimSpace(v)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// Each source of brokers is looked up at most once per test binary, when
// the first test that gets its brokers from it asks, and then shared by
// all tests of the binary.
var (
	environment = sync.OnceValue(func() map[string]string {
		return map[string]string{
			EnvBrokers: os.Getenv(EnvBrokers),
			envCI:      os.Getenv(envCI),
		}
	})
	dockerOK     = sync.OnceValue(dockerAvailable)
	envBrokers   = sync.OnceValues(func() ([]string, error) { return pingEnv(environment()[EnvBrokers]) })
	dockerBroker = sync.OnceValues(startContainer)
	fakeBroker   = sync.OnceValues(startFake)
)

// Brokers returns the seed brokers of a Kafka cluster that answers, as the
// package documentation describes: the one named by EnvBrokers, else one
// in Docker, else, outside CI, the in-process kfake cluster. In CI without
// a real broker it fails the test.
func Brokers(t testing.TB) []string {
	t.Helper()
	return brokers(t, anyBroker)
}

// RealBrokers is Brokers for a test that needs Apache Kafka itself rather
// than Kafka's protocol, because it depends on behaviour that kfake does
// not have or does not reproduce faithfully. It never returns the kfake
// cluster: without a real broker it skips the test, or fails it in CI.
//
// A test calls RealBrokers before anything else of this package: Brokers,
// Client and Admin then use the same broker, since a real broker, when
// there is one, is always chosen over kfake.
func RealBrokers(t testing.TB) []string {
	t.Helper()
	return brokers(t, realBroker)
}

func brokers(t testing.TB, n need) []string {
	t.Helper()
	var (
		bs  []string
		err error
	)
	switch a := decide(environment(), n, dockerOK); a {
	case useEnv:
		bs, err = envBrokers()
	case useDocker:
		bs, err = dockerBroker()
	case useFake:
		bs, err = fakeBroker()
	case skipTest:
		t.Skip("kafkatest: this test needs a real Kafka broker, not the in-process kfake (" + EnvBrokers +
			" is not set and no Docker engine answered); " + HowToStart)
	case failTest:
		t.Fatal("kafkatest: CI is true but no Kafka broker is available (" + EnvBrokers +
			" is not set and no Docker engine answered); integration tests must not skip " +
			"or use the in-process kfake in CI: " + HowToStart)
	default:
		t.Fatalf("kafkatest: no broker for %v (%v)", n, a)
	}
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(bs)
}

// pingEnv parses the value of EnvBrokers and checks that a broker answers.
func pingEnv(v string) ([]string, error) {
	bs, err := parseBrokers(v)
	if err != nil {
		return nil, err
	}
	if err := ping(bs, pingTimeout); err != nil {
		return nil, fmt.Errorf("kafkatest: no broker answers at %s=%s within %s (%w): "+
			"%s, or point %s at a running broker",
			EnvBrokers, v, pingTimeout, err, HowToStart, EnvBrokers)
	}
	return bs, nil
}

// parseBrokers splits a comma-separated list of host:port pairs.
func parseBrokers(s string) ([]string, error) {
	var brokers []string
	var errs []error
	for b := range strings.SplitSeq(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("%q is not host:port", b))
			continue
		}
		brokers = append(brokers, b)
	}
	if len(brokers) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no broker listed"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("kafkatest: %s=%q: %w", EnvBrokers, s, errors.Join(errs...))
	}
	return brokers, nil
}

// ping waits until one of the brokers answers a metadata request, trying
// again until timeout passes.
func ping(brokers []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		err := cl.Ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// dockerAvailable reports whether a Docker engine, found the way
// testcontainers-go finds it (DOCKER_HOST, ~/.testcontainers.properties,
// the default and rootless sockets), answers a ping within
// dockerProbeTimeout.
func dockerAvailable() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return false
	}
	defer cli.Close()
	_, err = cli.Ping(ctx, client.PingOptions{})
	return err == nil
}

// startContainer starts a single-node KRaft broker and returns the address
// it is published on. The container is not terminated here: the reaper
// removes it after the test binary exits (see the package documentation).
func startContainer() (brokers []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			brokers, err = nil, fmt.Errorf("kafkatest: start %s: testcontainers panicked: %v", kafkaImage, p)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), containerTimeout)
	defer cancel()
	clusterID, err := newClusterID()
	if err != nil {
		return nil, fmt.Errorf("kafkatest: cluster id: %w", err)
	}
	ctr, err := testcontainers.Run(ctx, kafkaImage,
		testcontainers.WithExposedPorts(clientPort),
		testcontainers.WithEnv(containerEnv(clusterID)),
		// The broker must advertise the host port Docker publishes
		// clientPort on, known only once the container runs: the command
		// waits for the starter script that the hook below copies in.
		testcontainers.WithEntrypoint("sh"),
		testcontainers.WithCmd("-c", "while [ ! -f "+starterPath+" ]; do sleep 0.1; done; exec sh "+starterPath),
		testcontainers.WithLifecycleHooks(testcontainers.ContainerLifecycleHooks{
			PostStarts: []testcontainers.ContainerHook{copyStarter},
		}),
		// Runs after copyStarter. KafkaRaftServer logs this once the broker
		// has caught up with the metadata log and is unfenced.
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute, wait.ForLog("Kafka Server started")),
	)
	if err != nil {
		if ctr != nil {
			err = errors.Join(err, testcontainers.TerminateContainer(ctr))
		}
		return nil, fmt.Errorf("kafkatest: start %s: %w", kafkaImage, err)
	}
	addr, err := publishedAddr(ctx, ctr)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: %s: %w", kafkaImage, err)
	}
	brokers = []string{addr}
	if err := ping(brokers, 30*time.Second); err != nil {
		return nil, fmt.Errorf("kafkatest: %s started but does not answer at %s: %w", kafkaImage, addr, err)
	}
	return brokers, nil
}

// copyStarter writes the script that launches the broker into the
// container, advertising the host and port tests reach it on.
func copyStarter(ctx context.Context, c testcontainers.Container) error {
	if err := wait.ForMappedPort(clientPort).WaitUntilReady(ctx, c); err != nil {
		return fmt.Errorf("wait for published port: %w", err)
	}
	addr, err := publishedAddr(ctx, c)
	if err != nil {
		return err
	}
	inspect, err := c.Inspect(ctx)
	if err != nil {
		return fmt.Errorf("inspect: %w", err)
	}
	return c.CopyToContainer(ctx, []byte(starterScript(addr, inspect.Config.Hostname)), starterPath, 0o755)
}

func publishedAddr(ctx context.Context, c testcontainers.Container) (string, error) {
	host, err := c.Host(ctx)
	if err != nil {
		return "", fmt.Errorf("host: %w", err)
	}
	port, err := c.MappedPort(ctx, clientPort)
	if err != nil {
		return "", fmt.Errorf("published port: %w", err)
	}
	return net.JoinHostPort(host, port.Port()), nil
}

// starterScript launches the apache/kafka image's own start script with
// the advertised listeners set: PLAINTEXT is what tests connect to,
// BROKER the inter-broker listener inside the container.
func starterScript(clientAddr, containerHostname string) string {
	return "#!/bin/sh\n" +
		"export KAFKA_ADVERTISED_LISTENERS='PLAINTEXT://" + clientAddr + ",BROKER://" + containerHostname + ":9094'\n" +
		"exec /etc/kafka/docker/run\n"
}

// containerEnv configures the apache/kafka image (each KAFKA_X_Y variable
// sets the broker property x.y) like scripts/kafka.sh configures its
// broker, so that tests see the same behaviour from both.
func containerEnv(clusterID string) map[string]string {
	return map[string]string{
		"CLUSTER_ID":                                             clusterID,
		"KAFKA_NODE_ID":                                          "1",
		"KAFKA_PROCESS_ROLES":                                    "broker,controller",
		"KAFKA_CONTROLLER_QUORUM_VOTERS":                         "1@localhost:9093",
		"KAFKA_LISTENERS":                                        "PLAINTEXT://0.0.0.0:9092,CONTROLLER://localhost:9093,BROKER://0.0.0.0:9094",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,BROKER:PLAINTEXT",
		"KAFKA_INTER_BROKER_LISTENER_NAME":                       "BROKER",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
		"KAFKA_NUM_PARTITIONS":                                   "1",
		"KAFKA_DEFAULT_REPLICATION_FACTOR":                       "1",
		"KAFKA_MIN_INSYNC_REPLICAS":                              "1",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
		"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":                     "10",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
		"KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS":             "10",
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
		"KAFKA_DELETE_TOPIC_ENABLE":                              "true",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
		"KAFKA_TRANSACTION_MAX_TIMEOUT_MS":                       "900000",
		"KAFKA_LOG_CLEANER_ENABLE":                               "true",
		"KAFKA_LOG_CLEANER_THREADS":                              "1",
		"KAFKA_LOG_CLEANER_BACKOFF_MS":                           "500",
		"KAFKA_LOG_CLEANER_MIN_COMPACTION_LAG_MS":                "0",
		"KAFKA_LOG_CLEANER_MIN_CLEANABLE_RATIO":                  "0.01",
		"KAFKA_LOG_CLEANER_DEDUPE_BUFFER_SIZE":                   "16777216",
	}
}

// newClusterID returns a random KRaft cluster id: 16 bytes in unpadded
// URL-safe base64, the form `kafka-storage random-uuid` prints.
func newClusterID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Client returns a client on Brokers(t) with opts added, closed when the
// test ends.
func Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	brokers := Brokers(t)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns an admin client on Brokers(t), closed when the test ends.
func Admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(Client(t))
}

// Topic returns a topic name that no other test uses: prefix, a dash and
// ten random hex digits, for example "orders-3f9c2a7b1e". The prefix may
// hold only ASCII letters, digits, '.', '_' and '-'. Topic does not create
// the topic; pair it with DeleteTopicsOnCleanup.
func Topic(t testing.TB, prefix string) string {
	t.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("kafkatest: random topic suffix: %v", err)
	}
	name, err := topicName(prefix, hex.EncodeToString(b[:]))
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// maxTopicLen is the longest topic name Kafka accepts.
const maxTopicLen = 249

func topicName(prefix, suffix string) (string, error) {
	name := suffix
	if prefix != "" {
		name = prefix + "-" + suffix
	}
	if i := strings.IndexFunc(prefix, func(r rune) bool { return !legalTopicRune(r) }); i >= 0 {
		return "", fmt.Errorf("kafkatest: topic prefix %q: %q is not allowed in a topic name (only ASCII letters, digits, '.', '_' and '-')", prefix, prefix[i:i+1])
	}
	if len(name) > maxTopicLen {
		return "", fmt.Errorf("kafkatest: topic prefix %q: the name would be %d characters long, more than Kafka's %d", prefix, len(name), maxTopicLen)
	}
	return name, nil
}

func legalTopicRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// DeleteTopicsOnCleanup deletes the named topics when the test ends, so
// that a long-running broker stays small. Topics that were never created
// are ignored; other failures are logged to the test, not failed: a topic
// left behind does not make the test wrong.
func DeleteTopicsOnCleanup(t testing.TB, names ...string) {
	t.Helper()
	if len(names) == 0 {
		return
	}
	brokers := Brokers(t)
	names = slices.Clone(names)
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			t.Logf("kafkatest: delete topics %v: %v", names, err)
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		resps, err := kadm.NewClient(cl).DeleteTopics(ctx, names...)
		if err != nil {
			t.Logf("kafkatest: delete topics %v: %v", names, err)
			return
		}
		for _, r := range resps.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
				t.Logf("kafkatest: delete topic %s: %v", r.Topic, r.Err)
			}
		}
	})
}
