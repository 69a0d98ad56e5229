package aggregate_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// fillPartition writes n created aggregates (one event each) to partition 0
// of the setup's events topic, as fast as the broker takes them, and
// returns their ids.
func fillPartition(t *testing.T, ks *kafkaSetup, n int) []uuid.UUID {
	t.Helper()
	raw := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(n+1))
	ids := make([]uuid.UUID, n)
	var mu sync.Mutex
	var firstErr error
	for i := range ids {
		ids[i] = uuid.New()
		e := rawEvent(t, ids[i], uuid.New(), 0, 1, 0, Opened{Owner: "filler"})
		raw.Produce(ctxT(t), log.Record(ks.events+"Account", e), func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				mu.Unlock()
			}
		})
	}
	if err := raw.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return ids
}

// TestKafkaCreationsBoundedByTheCheckpoint: in a process that has not read a
// partition of 3,000 aggregates, a creation through a repository whose
// snapshot store has a checkpoint at the partition's end reads nothing
// before the checkpoint; a creation of an aggregate that has a snapshot
// there is still checked against the log and conflicts. Before, every
// creation in a fresh process read the whole partition (0.8-2.65 s at a
// million records).
func TestKafkaCreationsBoundedByTheCheckpoint(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	old := fillPartition(t, ks, 3000)
	sidecar := ks.store(t, snapshots.WithOwner("snapshotter"))
	tail, err := ks.log.Read(ctxT(t), "Account", old[0], 0)
	if err != nil || len(tail.Events) != 1 {
		t.Fatalf("read back: %v %v", tail, err)
	}
	first := tail.Events[0]
	if err := sidecar.Put(ctxT(t), snapshots.Snapshot{AggregateID: old[0], AggregateType: "Account", Version: 1, SchemaVersion: 1,
		Position: first.Position, Save: first.Save, State: accountState(t, Account{Owner: "filler", Balance: 0, Ops: 1})}); err != nil {
		t.Fatal(err)
	}
	if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: endOffset(t, ks)}); err != nil {
		t.Fatal(err)
	}

	fresh := freshLog(t, ks)
	repo := newRepo(t, fresh, aggregate.WithSnapshotStore(ks.store(t)))
	if _, err := repo.Load(ctxT(t), uuid.New()); !errors.Is(err, aggregate.ErrNotFound) {
		t.Fatalf("load of an unknown aggregate: %v", err)
	}
	for range 3 {
		a := repo.New(uuid.New())
		grow(t, a, 2)
		if err := repo.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
	}
	if st := fresh.Stats(); st.CheckRecords > 100 {
		t.Fatalf("3 creations under a checkpoint read %d records, want only those after it", st.CheckRecords)
	}
	again := repo.New(old[0])
	grow(t, again, 1)
	var ce *log.ConflictError
	if err := repo.Save(ctxT(t), again); !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("creation of an aggregate with a snapshot: %v, want a conflict at version 1", err)
	}
	if st := repo.Stats(); st.Misses[aggregate.MissNotFound] != 1 || st.Loads != 0 {
		t.Fatalf("repository stats %+v", st)
	}
}

// TestKafkaIndexLimit: without a checkpoint, the first creation in a fresh
// process reads the partition of 10,000 aggregates once and indexes it, and
// later creations read only their own records; past WithIndexLimit the
// index is dropped with a warning, and each creation reads the partition.
func TestKafkaIndexLimit(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	const n = 10_000
	old := fillPartition(t, ks, n)
	create := func(l *log.Kafka, id uuid.UUID) error {
		a := newRepo(t, l).New(id)
		grow(t, a, 1)
		return newRepo(t, l).Save(ctxT(t), a)
	}

	// each creates an aggregate and returns the records the log read for it.
	each := func(l *log.Kafka, id uuid.UUID, want error) uint64 {
		t.Helper()
		before := l.Stats().CheckRecords
		if err := create(l, id); !errors.Is(err, want) {
			t.Fatalf("creation of %s: %v, want %v", id, err, want)
		}
		return l.Stats().CheckRecords - before
	}

	indexed := freshLog(t, ks)
	if read := each(indexed, uuid.New(), nil); read < n {
		t.Fatalf("the first creation read %d records, want the whole partition (%d)", read, n)
	}
	for _, c := range []struct {
		id   uuid.UUID
		want error
	}{{uuid.New(), nil}, {old[1234], aggregate.ErrConflict}, {old[n-1], aggregate.ErrConflict}} {
		if read := each(indexed, c.id, c.want); read > 50 {
			t.Fatalf("a creation with the partition indexed read %d records", read)
		}
	}
	if st := indexed.Stats(); st.IndexedPartitions != 1 {
		t.Fatalf("stats %+v: want the partition indexed", st)
	}

	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	limited := freshLog(t, ks, log.WithIndexLimit(1000), log.WithLogger(logger))
	each(limited, uuid.New(), nil)
	for _, c := range []struct {
		id   uuid.UUID
		want error
	}{{uuid.New(), nil}, {old[2345], aggregate.ErrConflict}} {
		if read := each(limited, c.id, c.want); read < n/4 {
			t.Fatalf("a creation past the index limit read %d records, want the partition read again", read)
		}
	}
	if st := limited.Stats(); st.IndexedPartitions != 0 {
		t.Fatalf("stats %+v past the index limit: want no index", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "partition index dropped") || !strings.Contains(logs.String(), "limit=1000") {
		t.Fatalf("no warning when the index was dropped; log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// freshLog is a new log on the setup's topics: a process that has read
// nothing of them yet.
func freshLog(t *testing.T, ks *kafkaSetup, opts ...log.KafkaOption) *log.Kafka {
	t.Helper()
	l, err := log.NewKafka(append([]log.KafkaOption{log.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)), log.WithTopicPrefix(ks.events),
		log.WithTopicPartitions(ks.partitions), log.WithReplicationFactor(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
