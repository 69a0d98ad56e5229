package kafkatest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDecide is the decision table of Brokers (need anyBroker) and
// RealBrokers (need realBroker).
func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name     string
		brokers  string // SNAPLOG_KAFKA_BROKERS
		ci       string // CI
		dockerOK bool
		any      action // Brokers
		real     action // RealBrokers
		probed   bool   // whether Docker is asked
	}{
		{"brokers set", "127.0.0.1:9092", "", false, useEnv, useEnv, false},
		{"brokers set, in CI", "127.0.0.1:9092", "true", false, useEnv, useEnv, false},
		{"brokers set, Docker too", "127.0.0.1:9092", "", true, useEnv, useEnv, false},
		{"brokers set, invalid", "nonsense", "true", true, useEnv, useEnv, false},
		{"brokers blank, Docker", "  ", "", true, useDocker, useDocker, true},
		{"Docker", "", "", true, useDocker, useDocker, true},
		{"Docker, in CI", "", "true", true, useDocker, useDocker, true},
		{"nothing", "", "", false, useFake, skipTest, true},
		{"nothing, CI blank", "", " ", false, useFake, skipTest, true},
		{"nothing, CI=false", "", "false", false, useFake, skipTest, true},
		{"nothing, CI=0", "", "0", false, useFake, skipTest, true},
		{"nothing, in CI", "", "true", false, failTest, failTest, true},
		{"nothing, CI=1", "", "1", false, failTest, failTest, true},
		{"nothing, CI=TRUE", "", "TRUE", false, failTest, failTest, true},
		{"nothing, CI=yes", "", "yes", false, failTest, failTest, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{EnvBrokers: tc.brokers, envCI: tc.ci}
			for _, c := range []struct {
				n    need
				want action
			}{{anyBroker, tc.any}, {realBroker, tc.real}} {
				probed := false
				got := decide(env, c.n, func() bool { probed = true; return tc.dockerOK })
				if got != c.want {
					t.Errorf("decide(%q, %v, docker %t) = %v, want %v", env, c.n, tc.dockerOK, got, c.want)
				}
				if probed != tc.probed {
					t.Errorf("%v: Docker probed: %t, want %t", c.n, probed, tc.probed)
				}
			}
		})
	}
}

func TestDecideMissingVariables(t *testing.T) {
	for _, c := range []struct {
		n    need
		want action
	}{{anyBroker, useFake}, {realBroker, skipTest}} {
		if got := decide(nil, c.n, func() bool { return false }); got != c.want {
			t.Errorf("decide(nil, %v) = %v, want %v", c.n, got, c.want)
		}
	}
}

func TestParseBrokers(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "127.0.0.1:9092", want: []string{"127.0.0.1:9092"}},
		{in: " a:1, b:2 ,,c:3,", want: []string{"a:1", "b:2", "c:3"}},
		{in: "[::1]:9092", want: []string{"[::1]:9092"}},
		{in: " , ", wantErr: "no broker listed"},
		{in: "localhost", wantErr: `"localhost" is not host:port`},
		{in: "a:1,b:", wantErr: `"b:" is not host:port`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseBrokers(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), EnvBrokers) {
					t.Fatalf("parseBrokers(%q) error = %v, want one naming %s and %s", tc.in, err, EnvBrokers, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("parseBrokers(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestTopicName(t *testing.T) {
	for _, tc := range []struct {
		prefix  string
		want    string
		wantErr string
	}{
		{prefix: "orders", want: "orders-0123456789"},
		{prefix: "test.log_v2-x", want: "test.log_v2-x-0123456789"},
		{prefix: "", want: "0123456789"},
		{prefix: "a b", wantErr: `" " is not allowed`},
		{prefix: "a/b", wantErr: `"/" is not allowed`},
		{prefix: strings.Repeat("x", 238), want: strings.Repeat("x", 238) + "-0123456789"},
		{prefix: strings.Repeat("x", 239), wantErr: "250 characters"},
	} {
		t.Run(fmt.Sprintf("%.20s/%d", tc.prefix, len(tc.prefix)), func(t *testing.T) {
			got, err := topicName(tc.prefix, "0123456789")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("topicName(%q) error = %v, want one containing %s", tc.prefix, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("topicName(%q) = %q, %v, want %q", tc.prefix, got, err, tc.want)
			}
		})
	}
}

func TestTopicIsUnique(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		name := Topic(t, "unique")
		if !strings.HasPrefix(name, "unique-") || len(name) != len("unique-")+10 {
			t.Fatalf("Topic = %q, want unique- and ten hex digits", name)
		}
		if seen[name] {
			t.Fatalf("Topic returned %q twice", name)
		}
		seen[name] = true
	}
}

func TestStarterScriptAdvertisesPublishedAddress(t *testing.T) {
	got := starterScript("localhost:32771", "f00dcafe")
	for _, want := range []string{
		"KAFKA_ADVERTISED_LISTENERS='PLAINTEXT://localhost:32771,BROKER://f00dcafe:9094'",
		"exec /etc/kafka/docker/run",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("starter script lacks %q:\n%s", want, got)
		}
	}
}

func TestNewClusterID(t *testing.T) {
	id, err := newClusterID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 22 || strings.ContainsAny(id, "+/=") {
		t.Errorf("cluster id %q is not 22 URL-safe base64 characters", id)
	}
}

// TestBroker uses the broker Brokers finds: the environment's broker,
// Docker's or, outside CI, the in-process kfake cluster.
func TestBroker(t *testing.T) {
	topic := Topic(t, "kafkatest")
	DeleteTopicsOnCleanup(t, topic)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	adm := Admin(t)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	cl := Client(t, kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic))
	if err := cl.ProduceSync(ctx, kgo.StringRecord("hello")).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "hello" {
		t.Fatalf("fetched %v, want one record \"hello\"", recs)
	}
}

// TestDeleteTopicsOnCleanup checks that a subtest's topics are gone after
// it ends, and that deleting a topic that never existed is not an error.
func TestDeleteTopicsOnCleanup(t *testing.T) {
	adm := Admin(t)
	topic := Topic(t, "kafkatest-cleanup")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Run("creates", func(t *testing.T) {
		DeleteTopicsOnCleanup(t, topic, Topic(t, "kafkatest-never-created"))
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	})
	// Deletion is asynchronous in the broker; metadata catches up quickly.
	deadline := time.Now().Add(30 * time.Second)
	for {
		topics, err := adm.ListTopics(ctx, topic)
		if err != nil {
			t.Fatalf("list topics: %v", err)
		}
		if !topics.Has(topic) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s still exists after the subtest ended", topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTransactions checks that the broker Brokers finds, kfake included,
// has transactions: a read_committed consumer sees the committed record and
// not the aborted one.
func TestTransactions(t *testing.T) {
	topic := Topic(t, "kafkatest-txn")
	DeleteTopicsOnCleanup(t, topic)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Admin(t).CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	txn := Client(t, kgo.DefaultProduceTopic(topic), kgo.TransactionalID(topic))
	for _, commit := range []kgo.TransactionEndTry{kgo.TryAbort, kgo.TryCommit} {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		if err := txn.ProduceSync(ctx, kgo.StringRecord(fmt.Sprint(commit))).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end transaction (%v): %v", commit, err)
		}
	}
	cl := Client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	fs := cl.PollRecords(ctx, 10)
	if err := fs.Err0(); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != fmt.Sprint(kgo.TryCommit) {
		t.Fatalf("fetched %v, want only the committed record", recs)
	}
}

// TestRealBrokersAreShared checks that a test that needs a real broker
// gets the same one from Brokers, so that Client and Admin use it too.
func TestRealBrokersAreShared(t *testing.T) {
	rb := RealBrokers(t)
	if got := Brokers(t); !slices.Equal(got, rb) {
		t.Fatalf("Brokers = %q after RealBrokers = %q, want the same", got, rb)
	}
}
