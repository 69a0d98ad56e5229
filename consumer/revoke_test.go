package consumer_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/consumer"
	"github.com/snaplog/snaplog/log"
)

// revokeLog records how long the subscription's revokes took, from its
// "partitions revoked" log lines, and passes every record on.
type revokeLog struct {
	slog.Handler
	mu   *sync.Mutex
	took *[]time.Duration
}

func newRevokeLog(t *testing.T) revokeLog {
	return revokeLog{Handler: testLogger(t).Handler(), mu: new(sync.Mutex), took: new([]time.Duration)}
}

func (h revokeLog) Enabled(context.Context, slog.Level) bool { return true }

func (h revokeLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "partitions revoked" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "took" {
				h.mu.Lock()
				*h.took = append(*h.took, a.Value.Duration())
				h.mu.Unlock()
			}
			return true
		})
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h revokeLog) WithAttrs(as []slog.Attr) slog.Handler {
	return revokeLog{Handler: h.Handler.WithAttrs(as), mu: h.mu, took: h.took}
}

func (h revokeLog) WithGroup(name string) slog.Handler {
	return revokeLog{Handler: h.Handler.WithGroup(name), mu: h.mu, took: h.took}
}

func (h revokeLog) revokes() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), *h.took...)
}

// committedAt returns the group's committed offset of a partition, -1 for
// none.
func (e *env) committedAt(p int32) int64 {
	e.t.Helper()
	offs, err := e.adm.FetchOffsets(ctxT(e.t), e.group)
	if err != nil {
		e.t.Fatal(err)
	}
	o, ok := offs.Lookup(e.prefix+typ, p)
	if !ok {
		return -1
	}
	return o.At
}

// TestDeadLetterWriteBoundedOnRevoke: the dead-letter topic is deleted
// (and the broker does not create topics), so that writes of poison events
// cannot finish. A rebalance that revokes a partition whose dead-letter
// write is in hand, and a shutdown, each finish within the group's
// rebalance timeout; the poison events stay uncommitted, and once the
// topic exists again the next owner handles them again and dead-letters
// them. Nothing is skipped.
func TestDeadLetterWriteBoundedOnRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 2)
	dlq := e.group + consumer.DefaultDeadLetterSuffix
	ids := spreadIDs(2, 1)
	for _, id := range ids {
		e.save(id, 1, false) // poison
		e.save(id, 1, false)
	}
	all := e.winnersInOrder()
	poison := map[uuid.UUID]log.Event{}
	next := map[int32]log.Event{}
	for _, ev := range all {
		if ev.AggregateVersion == 1 {
			poison[ev.ID] = ev
		} else {
			next[ev.Position.Partition] = ev
		}
	}

	deleted := make(chan struct{})
	type member struct {
		rec    *recorder
		poison atomic.Int64 // handler calls for poison events
		failed atomic.Int64
		log    revokeLog
		run    *running
	}

	start := func() *member {
		m := &member{rec: newRecorder(), log: newRevokeLog(t)}
		sub := e.subscribe(consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
			if _, ok := poison[ev.ID]; ok {
				m.poison.Add(1)
				<-deleted
				return errors.New("poison")
			}
			m.rec.add(ev)
			return nil
		}), consumer.WithRetries(1, 10*time.Millisecond, 50*time.Millisecond),
			// The client waits for a missing topic as long as it
			// takes: only the subscription can end the write.
			consumer.KafkaClient(kgo.SessionTimeout(sessionTimeout), kgo.RebalanceTimeout(rebalanceTimeout), kgo.UnknownTopicRetries(-1)),
			consumer.WithLogger(slog.New(m.log)),
			consumer.WithHooks(consumer.Hooks{Failed: func(string, int32, int64, int, error) { m.failed.Add(1) }}))
		m.run = run(t, sub)
		return m
	}

	// One member holds both partitions; its handler holds both poison
	// events until the dead-letter topic is gone.
	a := start()
	waitFor(t, 30*time.Second, "the poison events to reach the handler", func() bool { return a.poison.Load() == 2 })
	if _, err := e.adm.DeleteTopics(ctxT(t), dlq); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the dead-letter topic to go", func() bool {
		topics, err := e.adm.ListTopics(ctxT(t), dlq)
		return err == nil && !topics.Has(dlq)
	})
	close(deleted)
	waitFor(t, 10*time.Second, "the handler to fail both poison events", func() bool { return a.failed.Load() == 2 })
	time.Sleep(time.Second) // the dead-letter writes are in hand

	// A second member joins, a plain group client that only takes the
	// partitions assigned to it (a subscription would create the
	// dead-letter topic). One partition moves to it once the first member
	// revoked it, with its dead-letter write unfinished.
	joined := time.Now()
	assigned := make(chan time.Duration, 1)
	other, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumerGroup(e.group), kgo.ConsumeTopics(e.prefix+typ),
		kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.DisableAutoCommit(),
		kgo.SessionTimeout(sessionTimeout), kgo.RebalanceTimeout(rebalanceTimeout), kgo.HeartbeatInterval(250*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, tps map[string][]int32) {
			if len(tps[e.prefix+typ]) > 0 {
				select {
				case assigned <- time.Since(joined):
				default:
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	var moved time.Duration
	select {
	case moved = <-assigned:
	case <-time.After(30 * time.Second):
		t.Fatal("no partition moved to the new member within 30s: the revoke did not end")
	}
	other.Close() // leaves the group, committing nothing
	// The revoke ends within the rebalance timeout; the join, the first
	// member's rejoin and the assignment add a few round trips.
	if moved >= rebalanceTimeout+2*time.Second {
		t.Errorf("the partition reached the new member %s after it joined: the revoke did not end within the rebalance timeout %s", moved, rebalanceTimeout)
	}
	revokes := a.log.revokes()
	for _, d := range revokes {
		if d >= rebalanceTimeout {
			t.Errorf("the revoke took %s, not within the rebalance timeout %s", d, rebalanceTimeout)
		}
	}
	// The partition comes back; the member holds both poison events again,
	// with dead-letter writes that cannot finish. Its shutdown (a revoke
	// of every partition) ends within the rebalance timeout.
	waitFor(t, 30*time.Second, "the moved partition's poison event to come back", func() bool { return a.failed.Load() == 3 })
	time.Sleep(300 * time.Millisecond)
	err, took := a.run.stop()
	if err != nil {
		t.Errorf("Run: %v", err)
	}
	if took >= rebalanceTimeout {
		t.Errorf("the shutdown took %s, not within the rebalance timeout %s", took, rebalanceTimeout)
	}
	for _, ev := range poison {
		if got := e.committedAt(ev.Position.Partition); got > ev.Position.Offset {
			t.Errorf("partition %d: committed offset %d, past the poison event at %d that was never dead-lettered", ev.Position.Partition, got, ev.Position.Offset)
		}
	}
	if n := len(a.rec.handled()); n != 0 {
		t.Errorf("the member handled %d events after a poison event that was never dead-lettered", n)
	}

	// With the topic back, the next owner handles the poison events
	// again, dead-letters them and moves on.
	if _, err := e.adm.CreateTopic(ctxT(t), 1, 1, nil, dlq); err != nil {
		t.Fatal(err)
	}
	c := start()
	waitFor(t, 30*time.Second, "the events after the poison", func() bool { return c.rec.seen(next[0].ID) && c.rec.seen(next[1].ID) })
	if err, _ := c.run.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := c.poison.Load(); n != 2 {
		t.Errorf("the next owner's handler was called %d times for the poison events, want 2", n)
	}
	dead := map[string]bool{}
	for _, r := range readAll(t, dlq, 2) {
		dead[headers(r)[consumer.HeaderDLQPartition]+"/"+headers(r)[consumer.HeaderDLQOffset]] = true
	}
	for _, ev := range poison {
		if k := strconv.Itoa(int(ev.Position.Partition)) + "/" + strconv.FormatInt(ev.Position.Offset, 10); !dead[k] {
			t.Errorf("poison event %s not in the dead-letter topic (it holds %v)", ev.Position, dead)
		}
	}
	t.Logf("revokes took %v (the partition was assigned to the new member %s after it joined), the shutdown %s",
		revokes, moved.Round(time.Millisecond), took.Round(time.Millisecond))
}
