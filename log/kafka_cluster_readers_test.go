//go:build kafkacluster

package log_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/consumer"
	"github.com/snaplog/snaplog/internal/invariant"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// The readers that run through the cluster's faults: a consumer group and
// the snapshotter, on the torture writers' events (Deposited {amount}).

type deposited struct {
	Amount int64 `json:"amount"`
}

type balance struct {
	Sum int64 `avro:"sum"`
	Ops int64 `avro:"ops"`
}

const balanceSchema = `{"type":"record","name":"Balance","namespace":"snaplog.test","fields":[
	{"name":"sum","type":"long"},{"name":"ops","type":"long"}]}`

func balanceType(t *testing.T, name string) aggregate.Type[balance] {
	t.Helper()
	reg := aggregate.NewRegistry(nil)
	if err := aggregate.Register[deposited](reg, "Deposited"); err != nil {
		t.Fatal(err)
	}
	return aggregate.Type[balance]{Name: name, Events: reg, StateSchema: balanceSchema, Apply: func(s balance, e aggregate.Envelope) (balance, error) {
		d, ok := e.Event.(deposited)
		if !ok {
			return s, fmt.Errorf("unexpected %T", e.Event)
		}
		s.Sum += d.Amount
		s.Ops++
		return s, nil
	}}
}

// handled is what the consumer group handled, in order per aggregate.
type handled struct {
	mu     sync.Mutex
	byAgg  map[uuid.UUID][]uuid.UUID // event ids, in the order handled
	counts map[uuid.UUID]int         // handlings per event id
}

// runReaders runs a consumer group and the snapshotter on the session's
// topic until the returned stop is called; a member or a snapshotter whose
// Run fails is replaced, as a supervisor would, and counted.
func runReaders(t *testing.T, s *tortureSession, prefix, snapPrefix, typ string) (h *handled, stop func() (consumerRestarts, snapshotterRestarts int)) {
	h = &handled{byAgg: map[uuid.UUID][]uuid.UUID{}, counts: map[uuid.UUID]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	restarts := map[string]int{}
	supervise := func(what string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				err := run(ctx)
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				restarts[what]++
				mu.Unlock()
				t.Logf("%s stopped with %v; starting another", what, err)
				time.Sleep(time.Second)
			}
		}()
	}
	group := "ctorture-consumer-" + uuid.NewString()[:8]
	supervise("consumer", func(ctx context.Context) error {
		sub, err := consumer.New(group, consumer.HandlerFunc(func(_ context.Context, e consumer.Event) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.counts[e.ID]++
			h.byAgg[e.AggregateID] = append(h.byAgg[e.AggregateID], e.ID)
			return nil
		}), consumer.KafkaClient(kgo.SeedBrokers(s.brokers...)), consumer.WithTopicPrefix(prefix), consumer.WithTopics(typ))
		if err != nil {
			return err
		}
		defer sub.Close()
		return sub.Run(ctx)
	})
	snapGroup := "ctorture-snapshotter-" + uuid.NewString()[:8]
	supervise("snapshotter", func(ctx context.Context) error {
		sn, err := snapshotter.New(snapGroup, []snapshotter.Type{snapshotter.Register(balanceType(t, typ))},
			snapshotter.KafkaClient(kgo.SeedBrokers(s.brokers...)), snapshotter.WithEventsTopicPrefix(prefix),
			snapshotter.WithSnapshotsTopicPrefix(snapPrefix), snapshotter.WithThreshold(10),
			snapshotter.WithCheckpointInterval(time.Second))
		if err != nil {
			return err
		}
		return sn.Run(ctx)
	})
	return h, func() (int, int) {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return restarts["consumer"], restarts["snapshotter"]
	}
}

// checkReaders checks, once writers and readers have stopped: the consumer
// handled every winning event and nothing else, in version order per
// aggregate (redeliveries aside); every aggregate loads, through the
// snapshotter's snapshots and checkpoints, as a full replay loads it; no
// snapshot topic key ever went back to a lower version.
func checkReaders(t *testing.T, s *tortureSession, h *handled, prefix, snapPrefix, typ string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	read, err := invariant.ReadTopic(ctx, s.topic, kgo.SeedBrokers(s.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	histories := invariant.Histories(read.Records)

	// The consumer group.
	h.mu.Lock()
	winners, missing, foreign, outOfOrder, redelivered := 0, 0, 0, 0, 0
	inHistory := map[uuid.UUID]bool{}
	for agg, hist := range histories {
		want := make([]uuid.UUID, len(hist))
		for i, e := range hist {
			want[i] = e.ID
			inHistory[e.ID] = true
		}
		winners += len(want)
		var firsts []uuid.UUID // handled, first handlings only
		seen := map[uuid.UUID]bool{}
		for _, id := range h.byAgg[agg] {
			if !seen[id] {
				seen[id] = true
				firsts = append(firsts, id)
			}
		}
		for _, id := range want {
			if !seen[id] {
				missing++
			}
		}
		if !slices.Equal(firsts, want[:min(len(firsts), len(want))]) {
			outOfOrder++
			t.Errorf("consumer: aggregate %s handled %d events not in version order", agg, len(firsts))
		}
	}
	for id, n := range h.counts {
		if !inHistory[id] {
			foreign++
		}
		redelivered += n - 1
	}
	h.mu.Unlock()
	t.Logf("consumer: %d winning events, %d handled (%d more than once: %d redeliveries), %d missing, %d not winners, %d aggregates out of order",
		winners, len(h.counts), countOver(h.counts), redelivered, missing, foreign, outOfOrder)
	if missing > 0 || foreign > 0 {
		t.Errorf("consumer: %d winning events never handled, %d handled events that are not winners", missing, foreign)
	}

	// The snapshotter: loads through its snapshots equal full replays.
	l, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(s.brokers...)), log.WithTopicPrefix(prefix), log.WithAutoCreateTopics(false))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	codec := snapshots.NewAvroCodec()
	if err := codec.Register(typ, balanceSchema); err != nil {
		t.Fatal(err)
	}
	store, err := snapshots.NewKafka(codec, snapshots.KafkaClient(kgo.SeedBrokers(s.brokers...)),
		snapshots.WithTopicPrefix(snapPrefix), snapshots.WithEventsTopicPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	withSnapshots, err := aggregate.NewRepository(l, balanceType(t, typ), aggregate.WithSnapshotStore(store))
	if err != nil {
		t.Fatal(err)
	}
	replay, err := aggregate.NewRepository(l, balanceType(t, typ))
	if err != nil {
		t.Fatal(err)
	}
	loads := 0
	for agg := range histories {
		want, err := replay.Load(ctx, agg)
		if errors.Is(err, aggregate.ErrNotFound) {
			continue // only losing or incomplete saves
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := withSnapshots.Load(ctx, agg)
		if err != nil {
			t.Fatalf("load of %s through the snapshots: %v", agg, err)
		}
		if got.Version() != want.Version() || got.State() != want.State() {
			t.Errorf("snapshotter: %s loads at v%d %+v through the snapshots, v%d %+v by a full replay", agg, got.Version(), got.State(), want.Version(), want.State())
		}
		loads++
	}
	st := withSnapshots.Stats()
	t.Logf("snapshotter: %d aggregates load through the snapshots as by a full replay (%d from a snapshot, %d from the checkpoint alone, misses %v)",
		loads, st.LoadsFromSnapshot, st.LoadsFromCheckpoint, st.Misses)

	// No snapshot went back to a lower version, no checkpoint backwards.
	snaps, err := invariant.ReadTopic(ctx, snapPrefix+typ, kgo.SeedBrokers(s.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]int64{}
	lastCP := map[int32]int64{}
	regressions := 0
	for _, r := range snaps.Records {
		if snapshots.IsCheckpointKey(r.Key) {
			cp, err := snapshots.DecodeCheckpoint(r.Value)
			if err != nil {
				t.Errorf("checkpoint at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
				continue
			}
			if cp.Offset < lastCP[r.Partition] {
				t.Errorf("checkpoint of partition %d went back from %d to %d at offset %d", r.Partition, lastCP[r.Partition], cp.Offset, r.Offset)
			}
			lastCP[r.Partition] = cp.Offset
			continue
		}
		head, err := codec.DecodeHead(r.Value)
		if err != nil {
			t.Errorf("snapshot at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			continue
		}
		if head.Version < last[string(r.Key)] {
			regressions++
			t.Errorf("snapshot of %s went back from v%d to v%d at %d@%d", r.Key, last[string(r.Key)], head.Version, r.Partition, r.Offset)
		}
		last[string(r.Key)] = head.Version
	}
	t.Logf("snapshot topic: %d records, %d aggregates snapshotted, checkpoints at %v, %d regressions", len(snaps.Records), len(last), lastCP, regressions)
}

func countOver(m map[uuid.UUID]int) int {
	n := 0
	for _, c := range m {
		if c > 1 {
			n++
		}
	}
	return n
}
