package log_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

func TestDefaultReplicationFactor(t *testing.T) {
	for _, tc := range []struct {
		brokers int
		want    int16
	}{{0, 1}, {1, 1}, {2, 2}, {3, 3}, {5, 3}, {100, 3}} {
		if got := log.DefaultReplicationFactor(tc.brokers); got != tc.want {
			t.Errorf("DefaultReplicationFactor(%d) = %d, want %d", tc.brokers, got, tc.want)
		}
	}
}

func TestCheckTopicReplication(t *testing.T) {
	const topic = "snaplog.events.Order"
	for _, tc := range []struct {
		name     string
		rf       int
		cfg      map[string]string
		accepted []string
		want     []string // settings named in the error; none means accepted
	}{
		{"rf 3 min.insync 1", 3, map[string]string{"min.insync.replicas": "1"}, nil, []string{"min.insync.replicas"}},
		{"rf 3 min.insync 2", 3, map[string]string{"min.insync.replicas": "2"}, nil, nil},
		{"rf 5 min.insync 3", 5, map[string]string{"min.insync.replicas": "3"}, nil, nil},
		{"rf 3 min.insync unknown", 3, map[string]string{}, nil, []string{"min.insync.replicas"}},
		{"rf 3 min.insync garbage", 3, map[string]string{"min.insync.replicas": "two"}, nil, []string{"min.insync.replicas"}},
		{"rf 1 min.insync 1", 1, map[string]string{"min.insync.replicas": "1"}, nil, nil},
		{"rf 2 min.insync 1", 2, map[string]string{"min.insync.replicas": "1"}, nil, nil},
		{"rf 3 min.insync 1 accepted", 3, map[string]string{"min.insync.replicas": "1"}, []string{"min.insync.replicas"}, nil},
		{"unclean", 1, map[string]string{"unclean.leader.election.enable": "true"}, nil, []string{"unclean.leader.election.enable"}},
		{"unclean upper case", 3, map[string]string{"unclean.leader.election.enable": "TRUE", "min.insync.replicas": "2"}, nil, []string{"unclean.leader.election.enable"}},
		{"clean", 3, map[string]string{"unclean.leader.election.enable": "false", "min.insync.replicas": "2"}, nil, nil},
		{"unclean accepted", 1, map[string]string{"unclean.leader.election.enable": "true"}, []string{"unclean.leader.election.enable"}, nil},
		{"both", 3, map[string]string{"unclean.leader.election.enable": "true", "min.insync.replicas": "1"}, nil,
			[]string{"unclean.leader.election.enable", "min.insync.replicas"}},
		{"both, one accepted", 3, map[string]string{"unclean.leader.election.enable": "true", "min.insync.replicas": "1"},
			[]string{"min.insync.replicas"}, []string{"unclean.leader.election.enable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := log.CheckTopicReplication(topic, tc.rf, func(k string) (string, bool) { v, ok := tc.cfg[k]; return v, ok }, tc.accepted...)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, log.ErrTopicConfig) || !strings.Contains(err.Error(), topic) || !strings.Contains(err.Error(), "WithUnsafeTopicSettings") {
				t.Fatalf("err = %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %s: %v", w, err)
				}
			}
			for _, a := range tc.accepted {
				if strings.Contains(err.Error(), a) {
					t.Errorf("error names accepted %s: %v", a, err)
				}
			}
		})
	}
}

func TestNewKafkaRefusesUnknownUnsafeSettings(t *testing.T) {
	_, err := log.NewKafka(log.WithUnsafeTopicSettings("retention.ms", log.SettingUncleanLeaderElection), log.WithTopicPartitions(0))
	for _, want := range []string{"seed brokers", "WithTopicPartitions", "WithUnsafeTopicSettings", `"retention.ms"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	k, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")),
		log.WithUnsafeTopicSettings("unclean.leader.election.enable", "min.insync.replicas"))
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
}

// TestKafkaRefusesUncleanLeaderElection: on the real broker, an events
// topic with unclean.leader.election.enable=true is refused before any
// write, naming topic and setting, and accepted by a log that names the
// setting in WithUnsafeTopicSettings.
func TestKafkaRefusesUncleanLeaderElection(t *testing.T) {
	k := newKafka(t)
	adm := kafkatest.Admin(t)
	const typ = "Unclean"
	topic := k.Topic(typ)
	if _, err := adm.CreateTopic(ctxT(t), 1, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1"), "retention.bytes": kadm.StringPtr("-1"),
		"unclean.leader.election.enable": kadm.StringPtr("true"),
	}, topic); err != nil {
		t.Fatal(err)
	}
	kafkatest.DeleteTopicsOnCleanup(t, topic)

	id := uuid.New()
	_, err := k.Append(ctxT(t), typ, id, log.Expected{}, logtest.Events(typ, id, 0, 1))
	if !errors.Is(err, log.ErrTopicConfig) || !strings.Contains(err.Error(), topic) ||
		!strings.Contains(err.Error(), "unclean.leader.election.enable") || !strings.Contains(err.Error(), "WithUnsafeTopicSettings") {
		t.Fatalf("append: err = %v", err)
	}
	if err := k.EnsureTopic(ctxT(t), typ); !errors.Is(err, log.ErrTopicConfig) {
		t.Fatalf("EnsureTopic: err = %v", err)
	}
	end, err := adm.ListEndOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	end.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Fatalf("%s/%d has %d records", topic, o.Partition, o.Offset)
		}
	})

	// Opted out by name: the same topic serves.
	prefix := strings.TrimSuffix(topic, typ)
	ok := newKafka(t, log.WithTopicPrefix(prefix), log.WithUnsafeTopicSettings(log.SettingUncleanLeaderElection))
	if err := ok.EnsureTopic(ctxT(t), typ); err != nil {
		t.Fatalf("EnsureTopic with the opt-out: %v", err)
	}
	if _, err := ok.Append(ctxT(t), typ, id, log.Expected{}, logtest.Events(typ, id, 0, 1)); err != nil {
		t.Fatalf("append with the opt-out: %v", err)
	}
	tail, err := ok.Read(ctxT(t), typ, id, 0)
	if err != nil || len(tail.Events) != 1 {
		t.Fatalf("read: %d events, err %v", len(tail.Events), err)
	}
	// Accepting the other setting does not accept this one.
	other := newKafka(t, log.WithTopicPrefix(prefix), log.WithUnsafeTopicSettings(log.SettingMinInSyncReplicas))
	if err := other.EnsureTopic(ctxT(t), typ); !errors.Is(err, log.ErrTopicConfig) {
		t.Fatalf("EnsureTopic accepting only min.insync.replicas: err = %v", err)
	}
}

// TestKafkaCreatesTopicsWithDefaultReplication: without
// WithReplicationFactor the log creates a topic with
// DefaultReplicationFactor(brokers) replicas (1 on a single node, with no
// min.insync.replicas of its own), and with -1 the broker's default; both
// serve.
func TestKafkaCreatesTopicsWithDefaultReplication(t *testing.T) {
	adm := kafkatest.Admin(t)
	m, err := adm.BrokerMetadata(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts []log.KafkaOption
		want int
	}{
		{"default", nil, int(log.DefaultReplicationFactor(len(m.Brokers)))},
		{"broker default", []log.KafkaOption{log.WithReplicationFactor(-1)}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "test." + uuid.NewString()[:8] + "."
			k, err := log.NewKafka(append([]log.KafkaOption{
				log.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
				log.WithTopicPrefix(prefix), log.WithTopicPartitions(2),
			}, tc.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { k.Close() })
			const typ = "Replicated"
			kafkatest.DeleteTopicsOnCleanup(t, k.Topic(typ))
			id := uuid.New()
			if _, err := k.Append(ctxT(t), typ, id, log.Expected{}, logtest.Events(typ, id, 0, 2)); err != nil {
				t.Fatal(err)
			}
			tds, err := adm.ListTopics(ctxT(t), k.Topic(typ))
			if err != nil {
				t.Fatal(err)
			}
			rf := tds[k.Topic(typ)].Partitions.NumReplicas()
			if tc.want > 0 && rf != tc.want {
				t.Fatalf("replication factor %d, want %d", rf, tc.want)
			}
			rcs, err := adm.DescribeTopicConfigs(ctxT(t), k.Topic(typ))
			if err != nil {
				t.Fatal(err)
			}
			rc, err := rcs.On(k.Topic(typ), nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rc.Configs {
				c := &rc.Configs[i]
				if c.Key != "min.insync.replicas" {
					continue
				}
				topicLevel := c.Source == kmsg.ConfigSourceDynamicTopicConfig
				if rf >= 3 && (!topicLevel || c.Value == nil || *c.Value != "2") {
					t.Errorf("replication factor %d: min.insync.replicas %v from %v, want 2 set on the topic", rf, c.MaybeValue(), c.Source)
				}
				if rf < 3 && topicLevel {
					t.Errorf("replication factor %d: min.insync.replicas %v set on the topic", rf, c.MaybeValue())
				}
			}
			tail, err := k.Read(ctxT(t), typ, id, 0)
			if err != nil || len(tail.Events) != 2 {
				t.Fatalf("read: %d events, err %v", len(tail.Events), err)
			}
		})
	}
}
