package log_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

func newKafka(t testing.TB, opts ...log.KafkaOption) *log.Kafka {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	base := []log.KafkaOption{
		log.KafkaClient(kgo.SeedBrokers(brokers...)),
		log.WithTopicPrefix("test." + uuid.NewString()[:8] + "."),
		log.WithTopicPartitions(3),
		log.WithReplicationFactor(1),
	}
	k, err := log.NewKafka(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func ctxT(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestKafkaConformance(t *testing.T) {
	k := newKafka(t)
	logtest.Run(t, func(t *testing.T) logtest.Log { return k })
}

func TestNewKafkaReportsEveryProblem(t *testing.T) {
	_, err := log.NewKafka(log.WithTopicPartitions(0), log.WithReplicationFactor(-3), log.WithTransactionalProducers(0))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"seed brokers", "WithTopicPartitions", "WithReplicationFactor", "WithTransactionalProducers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestCheckTopicConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]string
		want []string // settings named in the error; none means accepted
	}{
		{"events topic", map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}, nil},
		{"compacted", map[string]string{"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}, []string{"cleanup.policy"}},
		{"compact and delete", map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "-1", "retention.bytes": "-1"}, []string{"cleanup.policy"}},
		{"seven days", map[string]string{"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"}, []string{"retention.ms"}},
		{"size bound", map[string]string{"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "1073741824"}, []string{"retention.bytes"}},
		{"unknown settings", map[string]string{}, []string{"cleanup.policy", "retention.ms", "retention.bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := log.CheckTopicConfig("snaplog.events.Order", func(k string) (string, bool) { v, ok := tc.cfg[k]; return v, ok })
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, log.ErrTopicConfig) || !strings.Contains(err.Error(), "snaplog.events.Order") {
				t.Fatalf("err = %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %s: %v", w, err)
				}
			}
		})
	}
}

// TestKafkaRefusesTopicsThatLoseEvents: on the real broker, an events topic
// that is compacted or has finite retention is refused before any write.
func TestKafkaRefusesTopicsThatLoseEvents(t *testing.T) {
	k := newKafka(t)
	adm := kadm.NewClient(kafkatest.Client(t))
	for _, tc := range []struct {
		typ     string
		setting string
		cfg     map[string]*string
	}{
		{"Compacted", "cleanup.policy", map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}},
		{"Week", "retention.ms", map[string]*string{"retention.ms": kadm.StringPtr("604800000")}},
		{"Sized", "retention.bytes", map[string]*string{"retention.ms": kadm.StringPtr("-1"), "retention.bytes": kadm.StringPtr("1000000000")}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			topic := k.Topic(tc.typ)
			if _, err := adm.CreateTopic(ctxT(t), 1, 1, tc.cfg, topic); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { adm.DeleteTopics(context.Background(), topic) })
			id := uuid.New()
			_, err := k.Append(ctxT(t), tc.typ, id, log.Expected{}, logtest.Events(tc.typ, id, 0, 1))
			if !errors.Is(err, log.ErrTopicConfig) || !strings.Contains(err.Error(), topic) || !strings.Contains(err.Error(), tc.setting) {
				t.Fatalf("append to a %s topic: err = %v", tc.setting, err)
			}
			if err := k.EnsureTopic(ctxT(t), tc.typ); !errors.Is(err, log.ErrTopicConfig) {
				t.Fatalf("EnsureTopic: err = %v", err)
			}
			// Nothing was written.
			end, err := adm.ListEndOffsets(ctxT(t), topic)
			if err != nil {
				t.Fatal(err)
			}
			end.Each(func(o kadm.ListedOffset) {
				if o.Offset != 0 {
					t.Fatalf("%s/%d has %d records", topic, o.Partition, o.Offset)
				}
			})
		})
	}
}

// TestKafkaRecordsAreReadableWithoutSnaplog: a plain consumer sees the key,
// the payload and the headers, and the record sits in the partition the Java
// client's default partitioner (and franz-go's Kafka-compatible hasher)
// picks for the key.
func TestKafkaRecordsAreReadableWithoutSnaplog(t *testing.T) {
	k := newKafka(t)
	id := uuid.New()
	evs := logtest.Events("Order", id, 0, 2)
	out, err := k.Append(ctxT(t), "Order", id, log.Expected{}, evs)
	if err != nil {
		t.Fatal(err)
	}
	topic := k.Topic("Order")
	if want := log.Partition(id, 3); out[0].Position.Partition != want {
		t.Fatalf("stored in partition %d, murmur2 says %d", out[0].Position.Partition, want)
	}
	// A producer that knows nothing of snaplog, partitioning by key the
	// Kafka way, puts the same key in the same partition.
	plain := kafkatest.Client(t) // franz-go's default partitioner hashes keys with murmur2
	pr := &kgo.Record{Topic: topic, Key: []byte(id.String()), Value: []byte("x")}
	if err := plain.ProduceSync(ctxT(t), pr).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if pr.Partition != out[0].Position.Partition {
		t.Fatalf("a plain producer put the key in partition %d, the log in %d", pr.Partition, out[0].Position.Partition)
	}
	raw := kafkatest.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {out[0].Position.Partition: kgo.NewOffset().At(out[0].Position.Offset)},
	}), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	fetches := raw.PollRecords(ctxT(t), 2)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	recs := fetches.Records()
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	r := recs[0]
	if string(r.Key) != id.String() || string(r.Value) != string(evs[0].Payload) {
		t.Fatalf("key %q value %q", r.Key, r.Value)
	}
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	for k, want := range map[string]string{
		log.HeaderEventID: evs[0].ID.String(), log.HeaderEventType: evs[0].Type, log.HeaderAggregateType: "Order",
		log.HeaderVersion: "1", log.HeaderExpected: "0", log.HeaderSave: out[0].Save.String(), log.HeaderSaveEvents: "2",
		log.HeaderContentType: "application/json", log.HeaderCorrelationID: evs[0].Metadata.CorrelationID.String(),
		log.HeaderCausationID: evs[0].Metadata.CausationID.String(), log.HeaderMetaPrefix + "tenant": "acme",
		log.HeaderOccurredAt: evs[0].OccurredAt.Format(time.RFC3339Nano),
	} {
		if h[k] != want {
			t.Errorf("header %s = %q, want %q", k, h[k], want)
		}
	}
	if !r.Timestamp.Equal(evs[0].OccurredAt.Truncate(time.Millisecond)) {
		t.Errorf("record timestamp %s, occurred at %s", r.Timestamp, evs[0].OccurredAt)
	}
}

// TestKafkaCreationAfterTheWindow: a log that has been reading a partition
// from the middle learns, when asked to create an aggregate, whether it
// exists from an index of the partition built once, and refuses to create
// it twice.
func TestKafkaCreationAfterTheWindow(t *testing.T) {
	first := newKafka(t, log.WithTopicPartitions(1))
	prefix := first.Topic("")
	x, z := uuid.New(), uuid.New()
	for _, id := range []uuid.UUID{x, z} {
		if _, err := first.Append(ctxT(t), "Order", id, log.Expected{}, logtest.Events("Order", id, 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	second := newKafka(t, log.WithTopicPrefix(prefix), log.WithTopicPartitions(1))
	tail, err := second.Read(ctxT(t), "Order", z, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Its window starts where it read z: after x's creation.
	if _, err := second.Append(ctxT(t), "Order", z, log.Expected{Version: 1, ReadTo: tail.End}, logtest.Events("Order", z, 1, 1)); err != nil {
		t.Fatal(err)
	}
	var ce *log.ConflictError
	if _, err := second.Append(ctxT(t), "Order", x, log.Expected{}, logtest.Events("Order", x, 0, 1)); !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("creating an existing aggregate: %v", err)
	}
	w := uuid.New()
	if _, err := second.Append(ctxT(t), "Order", w, log.Expected{}, logtest.Events("Order", w, 0, 1)); err != nil {
		t.Fatalf("creating a new aggregate: %v", err)
	}
	for id, want := range map[uuid.UUID]int{x: 1, z: 2, w: 1} {
		tail, err := first.Read(ctxT(t), "Order", id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(logtest.Winners(t, tail.Events)); got != want {
			t.Fatalf("%s has %d events, want %d", id, got, want)
		}
	}
}

// TestKafkaAppendChecksAgainstTheIndex: an Append whose caller claims a
// version the aggregate never had at the offset it names (a version read
// with read_uncommitted, a ReadTo computed by hand) gets the verdict every
// reader decides once the log holds the partition's index: a conflict, not
// a success no reader shows.
func TestKafkaAppendChecksAgainstTheIndex(t *testing.T) {
	k := newKafka(t, log.WithTopicPartitions(1))
	typ, id := "Account", uuid.New()
	out, err := k.Append(ctxT(t), typ, id, log.Expected{}, logtest.Events(typ, id, 0, 1)) // a creation: the index is built
	if err != nil {
		t.Fatal(err)
	}
	end := out[0].Position.Offset + 1
	var ce *log.ConflictError
	_, err = k.Append(ctxT(t), typ, id, log.Expected{Version: 2, ReadTo: end}, logtest.Events(typ, id, 2, 1))
	if !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("Append expecting version 2 of an aggregate at 1: %v, want a conflict at 1", err)
	}
	tail, err := k.Read(ctxT(t), typ, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if w := logtest.Winners(t, tail.Events); len(w) != 1 {
		t.Fatalf("history of %d events, want 1", len(w))
	}
}

// TestKafkaEventAtOutsideCommittedRecords: EventAt of a record in an
// aborted transaction, and of one in a transaction still open, reports
// ErrNoEvent at once (it does not wait for the transaction to end).
func TestKafkaEventAtOutsideCommittedRecords(t *testing.T) {
	kafkatest.RealBrokers(t) // kfake omits the aborted transactions from a fetch response its byte limit cuts short
	k := newKafka(t, log.WithTopicPartitions(1))
	typ, id := "Account", uuid.New()
	if _, err := k.Append(ctxT(t), typ, id, log.Expected{}, logtest.Events(typ, id, 0, 1)); err != nil {
		t.Fatal(err)
	}
	txn := kafkatest.Client(t, kgo.TransactionalID("eventat-"+uuid.NewString()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func() *kgo.Record {
		t.Helper()
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		e := logtest.Events(typ, id, 1, 1)[0]
		e.Expected, e.Save, e.SaveEvents = 1, uuid.New(), 1
		r := log.Record(k.Topic(typ), e)
		if err := txn.ProduceSync(ctxT(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return r
	}
	aborted := produce()
	if err := txn.EndTransaction(ctxT(t), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	if _, err := k.EventAt(ctxT(t), typ, id, aborted.Offset); !errors.Is(err, log.ErrNoEvent) {
		t.Fatalf("EventAt of an aborted record: %v, want ErrNoEvent", err)
	}
	open := produce()
	ctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
	defer cancel()
	if _, err := k.EventAt(ctx, typ, id, open.Offset); !errors.Is(err, log.ErrNoEvent) {
		t.Fatalf("EventAt of a record of an open transaction: %v, want ErrNoEvent at once", err)
	}
	if err := txn.EndTransaction(ctxT(t), kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}
