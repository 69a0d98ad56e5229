package aggregate_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// kafkaSetup is an events topic and a snapshot topic for Account that no
// other test uses.
type kafkaSetup struct {
	events, snaps string
	partitions    int32
	log           *log.Kafka
}

func newKafkaSetup(t testing.TB, partitions int32, snapshotTopicConfig map[string]string) *kafkaSetup {
	t.Helper()
	run := uuid.NewString()[:8]
	ks := &kafkaSetup{events: "agg." + run + ".events.", snaps: "agg." + run + ".snapshots.", partitions: partitions}
	l, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)), log.WithTopicPrefix(ks.events),
		log.WithTopicPartitions(partitions), log.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.EnsureTopic(ctxT(t), "Account"); err != nil {
		t.Fatal(err)
	}
	ks.log = l
	kafkatest.DeleteTopicsOnCleanup(t, ks.events+"Account", ks.snaps+"Account")
	if snapshotTopicConfig != nil {
		st := ks.store(t, snapshots.WithTopicConfig(snapshotTopicConfig))
		if err := st.EnsureTopic(ctxT(t), "Account"); err != nil {
			t.Fatal(err)
		}
	}
	return ks
}

func (ks *kafkaSetup) codec(t testing.TB) *snapshots.AvroCodec {
	c := snapshots.NewAvroCodec()
	if err := c.Register("Account", accountSchema); err != nil {
		t.Fatal(err)
	}
	return c
}

// store returns a new store, so with a view restored from the topic.
func (ks *kafkaSetup) store(t testing.TB, opts ...snapshots.KafkaOption) *snapshots.Kafka {
	t.Helper()
	base := []snapshots.KafkaOption{
		snapshots.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
		snapshots.WithTopicPrefix(ks.snaps), snapshots.WithEventsTopicPrefix(ks.events), snapshots.WithReplicationFactor(1),
	}
	s, err := snapshots.NewKafka(ks.codec(t), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestKafkaRepositoryModes(t *testing.T) {
	ks := newKafkaSetup(t, 3, nil)
	for _, mode := range []aggregate.SnapshotMode{aggregate.SnapshotSync, aggregate.SnapshotBackground, aggregate.SnapshotManual} {
		t.Run(mode.String(), func(t *testing.T) {
			store := ks.store(t)
			repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(5), aggregate.WithSnapshotMode(mode))
			a := repo.New(uuid.New())
			grow(t, a, 7)
			if err := repo.Save(ctxT(t), a); err != nil {
				t.Fatal(err)
			}
			if mode == aggregate.SnapshotManual {
				if _, err := repo.CreateSnapshot(ctxT(t), a); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := repo.AwaitPendingSnapshots(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			grow(t, a, 2)
			if err := repo.Save(ctxT(t), a); err != nil {
				t.Fatal(err)
			}
			// A second process: its own repository and a freshly restored store.
			other := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)))
			got, err := other.Load(ctxT(t), a.ID())
			if err != nil {
				t.Fatal(err)
			}
			if got.Version() != 9 || got.State() != a.State() {
				t.Fatalf("loaded v%d %+v, want v9 %+v", got.Version(), got.State(), a.State())
			}
			if st := other.Stats(); st.LoadsFromSnapshot != 1 || st.EventsReplayed != 2 {
				t.Fatalf("stats %+v: want a load from the snapshot at 7 replaying 2 events", st)
			}
		})
	}
}

func TestKafkaRepositoryRefusesOwnedTopic(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	sidecar := ks.store(t, snapshots.WithOwner("snapshotter"))
	if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: 0}); err != nil {
		t.Fatal(err)
	}
	var failures []aggregate.SnapshotFailure
	repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)), aggregate.WithSnapshotThreshold(1),
		aggregate.WithHooks(aggregate.Hooks{SnapshotFailed: func(f aggregate.SnapshotFailure) { failures = append(failures, f) }}))
	a := repo.New(uuid.New())
	grow(t, a, 1)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if len(failures) != 1 || !errors.Is(failures[0].Err, snapshots.ErrOwned) {
		t.Fatalf("snapshot into an owned topic: %+v", failures)
	}
	if _, err := repo.CreateSnapshot(ctxT(t), a); !errors.Is(err, snapshots.ErrOwned) {
		t.Fatalf("CreateSnapshot into an owned topic: %v", err)
	}
}

// TestKafkaLoadEqualsReplay (I4): for random aggregates and random snapshot
// situations, a load through the Kafka snapshot store equals a full replay.
func TestKafkaLoadEqualsReplay(t *testing.T) {
	ks := newKafkaSetup(t, 2, nil)
	writer := newRepo(t, ks.log)
	codec := ks.codec(t)
	foreign := snapshots.NewAvroCodec()
	if err := foreign.Register("Account", `{"type":"record","name":"Other","namespace":"x","fields":[{"name":"n","type":"int"}]}`); err != nil {
		t.Fatal(err)
	}
	raw := kafkatest.Client(t)
	topic := ks.snaps + "Account"
	sidecarStore := ks.store(t)
	if err := sidecarStore.EnsureTopic(ctxT(t), "Account"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	situations := []string{"none", "stale", "current", "corrupt", "foreign schema", "other schema version", "older after newer"}
	type agg struct {
		id        uuid.UUID
		situation string
	}
	var aggs []agg
	for i := 0; i < 28; i++ {
		a := writer.New(uuid.New())
		for s := 0; s < 1+rng.IntN(4); s++ {
			grow(t, a, 1+rng.IntN(6))
			if err := writer.Save(ctxT(t), a); err != nil {
				t.Fatal(err)
			}
		}
		sit := situations[i%len(situations)]
		aggs = append(aggs, agg{a.ID(), sit})
		snapAt := func(v int64) snapshots.Snapshot {
			tail, err := ks.log.Read(ctxT(t), "Account", a.ID(), 0)
			if err != nil {
				t.Fatal(err)
			}
			var st Account
			var seq log.Sequencer
			var last log.Event
			// A snapshot stands at the end of a save: the last one ending
			// at or before v, or the first.
			for _, e := range tail.Events {
				out, evs := seq.Next(e)
				if out != log.Accepted || (last.AggregateVersion > 0 && evs[len(evs)-1].AggregateVersion > v) {
					continue
				}
				for _, e := range evs {
					ev, _ := accountRegistry(t).Decode(e.Type, e.ContentType, e.Payload)
					st, _ = applyAccount(st, aggregate.Envelope{Event: ev})
					last = e
				}
			}
			v = last.AggregateVersion
			return snapshots.Snapshot{AggregateID: a.ID(), AggregateType: "Account", Version: v, SchemaVersion: 1, CreatedAt: time.Now(),
				Position: last.Position, Save: last.Save, State: accountState(t, st)}
		}
		produce := func(value []byte) {
			if err := raw.ProduceSync(ctxT(t), &kgo.Record{Topic: topic, Partition: log.Partition(a.ID(), ks.partitions), Key: log.Key(a.ID()), Value: value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		enc := func(s snapshots.Snapshot, c *snapshots.AvroCodec) []byte {
			b, err := c.Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		v := a.Version()
		switch sit {
		case "stale":
			produce(enc(snapAt(max(1, v/2)), codec))
		case "current":
			produce(enc(snapAt(v), codec))
		case "corrupt":
			produce(append([]byte{0xC3, 0x01}, []byte("definitely not avro")...))
		case "foreign schema":
			s := snapAt(v)
			s.State = []byte{0x0e} // n = 7
			produce(enc(s, foreign))
		case "other schema version":
			s := snapAt(v)
			s.SchemaVersion = 2
			s.State = accountState(t, Account{Owner: "mallory", Balance: -5, Ops: 0})
			produce(enc(s, codec))
		case "older after newer":
			produce(enc(snapAt(v), codec))
			produce(enc(snapAt(max(1, v-3)), codec))
		}
	}
	store := ks.store(t) // restores everything written above
	repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(store))
	replayer := newRepo(t, ks.log)
	for _, a := range aggs {
		got, err := repo.Load(ctxT(t), a.id)
		if err != nil {
			t.Fatalf("%s (%s): %v", a.id, a.situation, err)
		}
		want, err := replayer.Load(ctxT(t), a.id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version() != want.Version() || got.State() != want.State() || got.Position() != want.Position() {
			t.Fatalf("%s (%s): loaded v%d %+v, full replay gives v%d %+v", a.id, a.situation, got.Version(), got.State(), want.Version(), want.State())
		}
	}
	st := repo.Stats()
	t.Logf("%d loads, %d from a snapshot, misses %v, %d records skipped by the view", st.Loads, st.LoadsFromSnapshot, st.Misses, store.Stats().Skipped)
	if st.LoadsFromSnapshot == 0 || st.Misses[aggregate.MissSchemaVersion] == 0 || st.Misses[aggregate.MissNotFound] == 0 {
		t.Fatalf("the situations were not all exercised: %+v", st)
	}
}

// TestKafkaCheckpointBoundsLoad (I5): with a checkpoint, the records a load
// reads are bounded by the records after the checkpoint, however old the
// aggregate and however busy its partition was before.
func TestKafkaCheckpointBoundsLoad(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	writer := newRepo(t, ks.log)
	old := writer.New(uuid.New())
	grow(t, old, 300)
	if err := writer.Save(ctxT(t), old); err != nil {
		t.Fatal(err)
	}
	// Busy neighbours in the same partition.
	for i := 0; i < 20; i++ {
		n := writer.New(uuid.New())
		grow(t, n, 50)
		if err := writer.Save(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
	}
	sidecar := ks.store(t, snapshots.WithOwner("snapshotter"))
	snap := snapshots.Snapshot{AggregateID: old.ID(), AggregateType: "Account", Version: old.Version(), SchemaVersion: 1, CreatedAt: time.Now(),
		Position: old.Position(), Save: mustSave(t, ks, old), State: accountState(t, old.State())}
	if err := sidecar.Put(ctxT(t), snap); err != nil {
		t.Fatal(err)
	}
	end := endOffset(t, ks)
	if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: end}); err != nil {
		t.Fatal(err)
	}
	// After the checkpoint: a few events of the old aggregate and a new one.
	grow(t, old, 3)
	if err := writer.Save(ctxT(t), old); err != nil {
		t.Fatal(err)
	}
	fresh := writer.New(uuid.New())
	grow(t, fresh, 4)
	if err := writer.Save(ctxT(t), fresh); err != nil {
		t.Fatal(err)
	}
	after := endOffset(t, ks) - end

	repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)))
	replayer := newRepo(t, ks.log)
	for _, id := range []uuid.UUID{old.ID(), fresh.ID()} {
		before := repo.Stats().RecordsScanned
		got, err := repo.Load(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		read := repo.Stats().RecordsScanned - before
		want, _ := replayer.Load(ctxT(t), id)
		if got.Version() != want.Version() || got.State() != want.State() {
			t.Fatalf("%s: loaded v%d %+v, replay v%d %+v", id, got.Version(), got.State(), want.Version(), want.State())
		}
		if read > uint64(after) {
			t.Fatalf("%s: the load read %d records; %d were written after the checkpoint (%d before it)", id, read, after, end)
		}
		t.Logf("%s: read %d records (%d after the checkpoint at %d)", id, read, after, end)
	}
	if _, err := repo.Load(ctxT(t), uuid.New()); !errors.Is(err, aggregate.ErrNotFound) {
		t.Fatalf("unknown aggregate under a checkpoint: %v", err)
	}
	if st := repo.Stats(); st.LoadsFromCheckpoint != 1 || st.LoadsFromSnapshot != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func mustSave(t *testing.T, ks *kafkaSetup, a *aggregate.Root[Account]) uuid.UUID {
	tail, err := ks.log.Read(ctxT(t), "Account", a.ID(), a.Position().Offset)
	if err != nil || len(tail.Events) == 0 {
		t.Fatalf("read back %s: %v", a.ID(), err)
	}
	return tail.Events[0].Save
}

func endOffset(t *testing.T, ks *kafkaSetup) int64 {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t))
	ends, err := adm.ListEndOffsets(ctxT(t), ks.events+"Account")
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ends.Lookup(ks.events+"Account", 0)
	return o.Offset
}

// TestKafkaSnapshotCompaction: many snapshots of the same aggregates; once
// the broker's cleaner has run, the superseded records are gone and every
// aggregate still loads as a full replay would.
func TestKafkaSnapshotCompaction(t *testing.T) {
	kafkatest.RealBrokers(t) // needs Kafka's log compaction; the kfake of kafkatest does not compact
	ks := newKafkaSetup(t, 1, map[string]string{"segment.ms": "100", "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"})
	store := ks.store(t)
	repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(1))
	const aggregates, saves = 5, 40
	var ids []uuid.UUID
	for i := 0; i < aggregates; i++ {
		a := repo.New(uuid.New())
		ids = append(ids, a.ID())
		for s := 0; s < saves; s++ {
			grow(t, a, 1)
			if err := repo.Save(ctxT(t), a); err != nil {
				t.Fatal(err)
			}
		}
	}
	topic := ks.snaps + "Account"
	raw := kafkatest.Client(t)
	adm := kadm.NewClient(raw)
	ends, err := adm.ListEndOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	written := end.Offset
	// records returns how many records each key has in the topic now.
	records := func() map[string]int {
		cl := kafkatest.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		ends, _ := adm.ListEndOffsets(ctxT(t), topic)
		end, _ := ends.Lookup(topic, 0)
		keys := map[string]int{}
		for {
			c, cancel := context.WithTimeout(ctxT(t), 2*time.Second)
			fs := cl.PollFetches(c)
			cancel()
			done := fs.NumRecords() == 0
			fs.EachRecord(func(r *kgo.Record) {
				keys[string(r.Key)]++
				done = done || r.Offset >= end.Offset-1
			})
			if done {
				return keys
			}
		}
	}
	compacted := func(keys map[string]int) bool {
		for _, id := range ids {
			if keys[id.String()] != 1 {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	var keys map[string]int
	for {
		// The active segment is never cleaned: roll it with a record
		// written after segment.ms.
		time.Sleep(200 * time.Millisecond)
		if err := raw.ProduceSync(ctxT(t), &kgo.Record{Topic: topic, Key: []byte("roll"), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if keys = records(); compacted(keys) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d snapshot records written; after compaction, records per key: %v", written, keys)
	if written < aggregates*saves || !compacted(keys) {
		t.Fatalf("superseded snapshots not compacted away: %v", keys)
	}
	fresh := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)))
	for _, id := range ids {
		got, err := fresh.Load(ctxT(t), id)
		if err != nil || got.Version() != saves || got.State().Ops != saves {
			t.Fatalf("%s after compaction: %v %v", id, got, err)
		}
	}
	if st := fresh.Stats(); st.LoadsFromSnapshot != aggregates {
		t.Fatalf("stats %+v", st)
	}
}

// TestKafkaCheckpointPastStaleSnapshot: a checkpoint promises the snapshot
// includes every event before it; when the log shows otherwise (a save after
// the checkpoint expected a version the snapshot does not have), the load
// replays everything instead of trusting the promise.
func TestKafkaCheckpointPastStaleSnapshot(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	writer := newRepo(t, ks.log)
	a := writer.New(uuid.New())
	grow(t, a, 5)
	if err := writer.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	sidecar := ks.store(t, snapshots.WithOwner("snapshotter"))
	stale := snapshots.Snapshot{AggregateID: a.ID(), AggregateType: "Account", Version: 5, SchemaVersion: 1, CreatedAt: time.Now(),
		Position: a.Position(), Save: mustSave(t, ks, a), State: accountState(t, Account{Owner: "ada", Balance: a.State().Balance, Ops: 5})}
	if err := sidecar.Put(ctxT(t), stale); err != nil {
		t.Fatal(err)
	}
	grow(t, a, 5) // versions 6-10, before the checkpoint, not in the snapshot
	if err := writer.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: endOffset(t, ks)}); err != nil {
		t.Fatal(err)
	}
	grow(t, a, 1)
	if err := writer.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)))
	got, err := repo.Load(ctxT(t), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != 11 || got.State() != a.State() {
		t.Fatalf("loaded v%d %+v, want v11 %+v", got.Version(), got.State(), a.State())
	}
	if st := repo.Stats(); st.Misses[aggregate.MissPosition] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestKafkaSnapshotOfOlderStateSchema: a snapshot written with an older,
// compatible state schema (the current one adds a field with a default) is
// used without a replay once the older schema is registered as a writer
// schema; without it the snapshot does not decode and the load replays.
func TestKafkaSnapshotOfOlderStateSchema(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	writer := newRepo(t, ks.log)
	a := writer.New(uuid.New())
	grow(t, a, 6)
	if err := writer.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	old := ks.store(t) // the Account schema as it was: owner, balance, ops
	if err := old.Put(ctxT(t), snapshots.Snapshot{AggregateID: a.ID(), AggregateType: "Account", Version: 6, SchemaVersion: 1,
		CreatedAt: time.Now(), Position: a.Position(), Save: mustSave(t, ks, a),
		State: accountState(t, a.State())}); err != nil {
		t.Fatal(err)
	}
	const current = `{"type":"record","name":"Account","namespace":"snaplog.test","fields":[
		{"name":"owner","type":"string"},{"name":"balance","type":"long"},{"name":"ops","type":"long"},
		{"name":"currency","type":"string","default":"EUR"}]}`
	// One registration: the repository registers its type's schemas with
	// a store whose codec has none.
	for _, tc := range []struct {
		older        bool
		fromSnapshot uint64
		miss         aggregate.MissReason
	}{{true, 1, 0}, {false, 0, aggregate.MissNotFound}} { // the view skips (and counts) what it cannot decode
		store, err := snapshots.NewKafka(nil, snapshots.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
			snapshots.WithTopicPrefix(ks.snaps), snapshots.WithEventsTopicPrefix(ks.events))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		typ := accountType(t, 1)
		typ.StateSchema = current
		if tc.older {
			typ.OlderStateSchemas = []string{accountSchema}
		}
		repo, err := aggregate.NewRepository(ks.log, typ, aggregate.WithSnapshotStore(store))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { repo.Close() })
		if tc.older {
			snap, err := store.Get(ctxT(t), "Account", a.ID())
			var state map[string]any
			if err == nil {
				state, err = store.Schema("Account").DecodeGeneric(snap.State)
			}
			if err != nil || state["currency"] != "EUR" {
				t.Fatalf("resolved snapshot %v: %v", state, err)
			}
		}
		got, err := repo.Load(ctxT(t), a.ID())
		if err != nil || got.Version() != 6 || got.State() != a.State() {
			t.Fatalf("older writer schema registered %v: loaded %v %v", tc.older, got, err)
		}
		st := repo.Stats()
		if st.LoadsFromSnapshot != tc.fromSnapshot || (tc.fromSnapshot == 0 && st.Misses[tc.miss] != 1) {
			t.Fatalf("older writer schema registered %v: stats %+v", tc.older, st)
		}
		if skipped := store.Stats().Skipped; (skipped == 1) == tc.older {
			t.Fatalf("older writer schema registered %v: the view skipped %d records", tc.older, skipped)
		}
	}
}
