package snapshots_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// TestNewKafkaRefusesUnsafeTopicConfig: NewKafka refuses a WithTopicConfig
// that can lose acknowledged records, as far as the replication factor is
// known (min.insync.replicas below 2 with 3 or more replicas,
// unclean.leader.election.enable=true), unless the setting is named in
// WithUnsafeTopicSettings, and refuses unknown names there.
func TestNewKafkaRefusesUnsafeTopicConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []snapshots.KafkaOption
		want []string // settings named in the error; none means accepted
	}{
		{"rf 3 min.insync 1", []snapshots.KafkaOption{snapshots.WithReplicationFactor(3),
			snapshots.WithTopicConfig(map[string]string{"min.insync.replicas": "1"})}, []string{"min.insync.replicas"}},
		{"rf 3 min.insync 2", []snapshots.KafkaOption{snapshots.WithReplicationFactor(3),
			snapshots.WithTopicConfig(map[string]string{"min.insync.replicas": "2"})}, nil},
		{"rf 3 default min.insync", []snapshots.KafkaOption{snapshots.WithReplicationFactor(3)}, nil},
		{"rf 1 min.insync 1", []snapshots.KafkaOption{snapshots.WithReplicationFactor(1),
			snapshots.WithTopicConfig(map[string]string{"min.insync.replicas": "1"})}, nil},
		{"rf 3 min.insync 1 accepted", []snapshots.KafkaOption{snapshots.WithReplicationFactor(3),
			snapshots.WithTopicConfig(map[string]string{"min.insync.replicas": "1"}),
			snapshots.WithUnsafeTopicSettings(log.SettingMinInSyncReplicas)}, nil},
		{"unclean", []snapshots.KafkaOption{snapshots.WithReplicationFactor(1),
			snapshots.WithTopicConfig(map[string]string{"unclean.leader.election.enable": "true"})}, []string{"unclean.leader.election.enable"}},
		{"unclean accepted", []snapshots.KafkaOption{
			snapshots.WithTopicConfig(map[string]string{"unclean.leader.election.enable": "true"}),
			snapshots.WithUnsafeTopicSettings("unclean.leader.election.enable")}, nil},
		{"unknown setting", []snapshots.KafkaOption{snapshots.WithUnsafeTopicSettings("cleanup.policy")}, []string{"WithUnsafeTopicSettings", `"cleanup.policy"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := snapshots.NewKafka(accountCodec(t), append([]snapshots.KafkaOption{
				snapshots.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")),
			}, tc.opts...)...)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %s: %v", w, err)
				}
			}
			if tc.name != "unknown setting" && (!errors.Is(err, snapshots.ErrTopicLayout) || !strings.Contains(err.Error(), "WithUnsafeTopicSettings")) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// TestKafkaRefusesUncleanLeaderElection: on the real broker, a snapshot
// topic with unclean.leader.election.enable=true is refused with
// ErrTopicLayout naming topic and setting, and serves a store that names
// the setting in WithUnsafeTopicSettings.
func TestKafkaRefusesUncleanLeaderElection(t *testing.T) {
	env := newEnv(t, 3)
	adm := kafkatest.Admin(t)
	topic := env.snaps + "Account"
	if _, err := adm.CreateTopic(ctxT(t), 3, 1, map[string]*string{
		"cleanup.policy":                 kadm.StringPtr("compact"),
		"unclean.leader.election.enable": kadm.StringPtr("true"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	err := ensureAccount(t, env.store(t))
	if !errors.Is(err, snapshots.ErrTopicLayout) || !strings.Contains(err.Error(), topic) ||
		!strings.Contains(err.Error(), "unclean.leader.election.enable") || !strings.Contains(err.Error(), "WithUnsafeTopicSettings") {
		t.Fatalf("err = %v", err)
	}
	if err := ensureAccount(t, env.store(t, snapshots.WithUnsafeTopicSettings(log.SettingMinInSyncReplicas))); !errors.Is(err, snapshots.ErrTopicLayout) {
		t.Fatalf("accepting only min.insync.replicas: err = %v", err)
	}
	s := env.store(t, snapshots.WithUnsafeTopicSettings(log.SettingUncleanLeaderElection))
	if err := ensureAccount(t, s); err != nil {
		t.Fatalf("with the opt-out: %v", err)
	}
	id := uuid.New()
	put(t, s, env, id, 3)
	if snap, err := s.Get(ctxT(t), "Account", id); err != nil || snap.Version != 3 {
		t.Fatalf("get: version %d, err %v", snap.Version, err)
	}
}

// TestKafkaCreatesTopicsWithDefaultReplication: without
// WithReplicationFactor the store creates its topic with
// log.DefaultReplicationFactor(brokers) replicas (1 on a single node, with
// no min.insync.replicas of its own), and with -1 the broker's default;
// both serve.
func TestKafkaCreatesTopicsWithDefaultReplication(t *testing.T) {
	adm := kafkatest.Admin(t)
	m, err := adm.BrokerMetadata(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []snapshots.KafkaOption
		want int
	}{
		{"default", nil, int(log.DefaultReplicationFactor(len(m.Brokers)))},
		{"broker default", []snapshots.KafkaOption{snapshots.WithReplicationFactor(-1)}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, 2)
			s, err := snapshots.NewKafka(accountCodec(t), append([]snapshots.KafkaOption{
				snapshots.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
				snapshots.WithTopicPrefix(env.snaps), snapshots.WithEventsTopicPrefix(env.events),
			}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if err := ensureAccount(t, s); err != nil {
				t.Fatal(err)
			}
			id := uuid.New()
			put(t, s, env, id, 1)
			topic := env.snaps + "Account"
			tds, err := adm.ListTopics(ctxT(t), topic)
			if err != nil {
				t.Fatal(err)
			}
			rf := tds[topic].Partitions.NumReplicas()
			if tc.want > 0 && rf != tc.want {
				t.Fatalf("replication factor %d, want %d", rf, tc.want)
			}
			rcs, err := adm.DescribeTopicConfigs(ctxT(t), topic)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := rcs.On(topic, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rc.Configs {
				c := &rc.Configs[i]
				if c.Key != "min.insync.replicas" {
					continue
				}
				topicLevel := c.Source == kmsg.ConfigSourceDynamicTopicConfig
				if rf >= 3 && (!topicLevel || c.MaybeValue() != "2") {
					t.Errorf("replication factor %d: min.insync.replicas %v from %v, want 2 set on the topic", rf, c.MaybeValue(), c.Source)
				}
				if rf < 3 && topicLevel {
					t.Errorf("replication factor %d: min.insync.replicas %v set on the topic", rf, c.MaybeValue())
				}
			}
			if snap, err := s.Get(ctxT(t), "Account", id); err != nil || snap.Version != 1 {
				t.Fatalf("get: version %d, err %v", snap.Version, err)
			}
		})
	}
}

// ensureAccount is s.EnsureTopic("Account"), retried while the events
// topic newEnv created is not visible yet.
func ensureAccount(t *testing.T, s *snapshots.Kafka) error {
	t.Helper()
	for i := 0; ; i++ {
		err := s.EnsureTopic(ctxT(t), "Account")
		if !errors.Is(err, kerr.UnknownTopicOrPartition) || i == 50 {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
