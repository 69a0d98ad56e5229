package consumer_test

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/consumer"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
)

// TestSubscriptionRefusesGrownTopic: an operator grows an events topic from
// 3 to 6 partitions under a running subscription. The growth makes the
// group rebalance; at the assignment the subscription refuses the topic and
// Run returns an error naming it and both counts. A subscription started
// afterwards hands nothing of the topic to its handler. The topic's
// placement record is never handed over nor dead-lettered.
func TestSubscriptionRefusesGrownTopic(t *testing.T) {
	e := newEnv(t, 3)
	topic := e.prefix + typ
	ids := newIDs(20)
	for _, id := range ids {
		e.save(id, 1, false)
	}
	var dead atomic.Int64
	hooks := consumer.WithHooks(consumer.Hooks{DeadLettered: func(string, int32, int64, error) { dead.Add(1) }})
	// The group leader sees new partitions at its next metadata refresh.
	fastMetadata := consumer.KafkaClient(kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(500*time.Millisecond))
	rec := newRecorder()
	r := run(t, e.subscribe(rec, hooks, fastMetadata))
	waitFor(t, 30*time.Second, "the 20 events", func() bool { return len(rec.handled()) == len(ids) })

	if _, err := e.adm.UpdatePartitions(ctxT(t), 6, topic); err != nil {
		t.Fatal(err)
	}
	grown := time.Now()
	err := returned(t, r, "the topic grew")
	t.Logf("Run returned %s after the topic grew: %v", time.Since(grown).Round(time.Millisecond), err)
	wantRefused(t, err, topic)
	if n := len(rec.handled()); n != len(ids) {
		t.Errorf("%d events handled, want %d", n, len(ids))
	}
	if n := dead.Load(); n != 0 {
		t.Errorf("%d records dead-lettered", n)
	}

	// A subscription of another group, reading from the start, delivers
	// nothing of the topic.
	e.group = kafkatest.Topic(t, "consumer-group")
	kafkatest.DeleteTopicsOnCleanup(t, e.group+consumer.DefaultDeadLetterSuffix)
	late := newRecorder()
	r2 := run(t, e.subscribe(late, fastMetadata))
	err = returned(t, r2, "a subscription started after the growth")
	wantRefused(t, err, topic)
	if n := len(late.handled()); n != 0 {
		t.Errorf("a subscription started after the growth handled %d events", n)
	}
}

// returned waits for Run to return by itself.
func returned(t *testing.T, r *running, since string) error {
	t.Helper()
	select {
	case err := <-r.errc:
		r.once.Do(func() { r.err = err })
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("Run still runs 30s after %s", since)
		return nil
	}
}

func wantRefused(t *testing.T, err error, topic string) {
	t.Helper()
	var pe *log.PlacementError
	if !errors.Is(err, log.ErrPlacement) || !errors.As(err, &pe) || pe.Placed != 3 || pe.Partitions != 6 {
		t.Fatalf("Run: %v, want a *log.PlacementError of 3 and 6 partitions", err)
	}
	for _, want := range []string{topic, "has 6 partitions", "placed with 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Run's error does not say %q: %v", want, err)
		}
	}
}

// TestSubscriptionDeclaredPlacement: a topic with no placement record and
// log.PlacementScan records in partition 0 is refused unless its placement
// is declared.
func TestSubscriptionDeclaredPlacement(t *testing.T) {
	e := newEnv(t, 3)
	legacy := "Legacy"
	topic := e.prefix + legacy
	kafkatest.DeleteTopicsOnCleanup(t, topic)
	// An events topic written before placement records: made by the
	// operator, 1000 records in partition 0.
	cfg := map[string]*string{"cleanup.policy": ptr("delete"), "retention.ms": ptr("-1"), "retention.bytes": ptr("-1")}
	if _, err := e.adm.CreateTopic(ctxT(t), 3, 1, cfg, topic); err != nil {
		t.Fatal(err)
	}
	cl := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	recs := make([]*kgo.Record, log.PlacementScan)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: []byte("foreign"), Value: []byte("x")}
	}
	if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	s := e.subscribe(newRecorder(), consumer.WithTopics(legacy))
	err := returned(t, run(t, s), "it started")
	if !errors.Is(err, log.ErrPlacement) || !strings.Contains(err.Error(), topic) || !strings.Contains(err.Error(), "no placement record") {
		t.Fatalf("Run: %v", err)
	}

	// Declared: the foreign records go to the dead-letter topic, the
	// events of the other topic are handled.
	e.group = kafkatest.Topic(t, "consumer-group")
	kafkatest.DeleteTopicsOnCleanup(t, e.group+consumer.DefaultDeadLetterSuffix)
	id := uuid.New()
	e.save(id, 1, false)
	var dead atomic.Int64
	rec := newRecorder()
	r2 := run(t, e.subscribe(rec, consumer.WithTopics(legacy), consumer.WithPlacement(legacy, 3), consumer.WithLogger(slog.New(slog.DiscardHandler)),
		consumer.WithHooks(consumer.Hooks{DeadLettered: func(string, int32, int64, error) { dead.Add(1) }})))
	waitFor(t, 30*time.Second, "the event and the dead letters", func() bool { return rec.seen(e.winnersInOrder()[0].ID) && dead.Load() == log.PlacementScan })
	if err, _ := r2.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := consumer.New("g", rec, consumer.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")), consumer.WithTopics(legacy), consumer.WithPlacement(legacy, 0)); err == nil ||
		!strings.Contains(err.Error(), "WithPlacement") {
		t.Fatalf("WithPlacement(%q, 0): %v", legacy, err)
	}
}

func ptr(s string) *string { return &s }
