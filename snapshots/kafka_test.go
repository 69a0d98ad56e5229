package snapshots_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshots/snapshotstest"
)

func accountCodec(t testing.TB) *snapshots.AvroCodec {
	c := snapshots.NewAvroCodec()
	if err := c.Register("Account", accountSchema); err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// kafkaEnv is an events topic prefix and a snapshot topic prefix unused by
// any other test, with the Account events topic created.
type kafkaEnv struct {
	events, snaps string
	partitions    int32
}

func newEnv(t testing.TB, partitions int32) kafkaEnv {
	t.Helper()
	run := uuid.NewString()[:8]
	env := kafkaEnv{events: "test." + run + ".events.", snaps: "test." + run + ".snapshots.", partitions: partitions}
	adm := kadm.NewClient(kafkatest.Client(t))
	if _, err := adm.CreateTopic(ctxT(t), partitions, 1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1"), "retention.bytes": kadm.StringPtr("-1"),
	}, env.events+"Account"); err != nil {
		t.Fatal(err)
	}
	kafkatest.DeleteTopicsOnCleanup(t, env.events+"Account", env.snaps+"Account")
	// A topic just created may not be in every metadata answer yet.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		td, err := adm.ListTopics(ctxT(t), env.events+"Account")
		if err == nil && td[env.events+"Account"].Err == nil && len(td[env.events+"Account"].Partitions) == int(partitions) {
			led := true
			for _, p := range td[env.events+"Account"].Partitions {
				led = led && p.Leader >= 0
			}
			if led {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not visible with leaders 30s after its creation: %v", env.events+"Account", err)
		}
	}
	return env
}

func (env kafkaEnv) store(t testing.TB, opts ...snapshots.KafkaOption) *snapshots.Kafka {
	t.Helper()
	base := []snapshots.KafkaOption{
		snapshots.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
		snapshots.WithTopicPrefix(env.snaps),
		snapshots.WithEventsTopicPrefix(env.events),
		snapshots.WithReplicationFactor(1),
	}
	s, err := snapshots.NewKafka(accountCodec(t), append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestKafkaConformance(t *testing.T) {
	env := newEnv(t, 3)
	s := env.store(t)
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Harness {
		return snapshotstest.Harness{Store: s, Type: "Account", Partitions: env.partitions, State: countState, Count: stateCount}
	})
}

func TestNewKafkaReportsEveryProblem(t *testing.T) {
	_, err := snapshots.NewKafka(nil, snapshots.WithReplicationFactor(0), snapshots.WithOwner(""),
		snapshots.WithTopicConfig(map[string]string{"cleanup.policy": "delete"}))
	for _, want := range []string{"seed brokers", "WithReplicationFactor", "WithOwner", "cleanup.policy must be compact"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

// TestKafkaRefusesBadTopics: a snapshot topic that is not compacted, or not
// partitioned like its events topic, is refused with an error naming it.
func TestKafkaRefusesBadTopics(t *testing.T) {
	adm := kadm.NewClient(kafkatest.Client(t))
	for _, tc := range []struct {
		name       string
		partitions int32
		cfg        map[string]*string
		want       string
	}{
		{"not compacted", 3, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, "cleanup.policy"},
		{"compacted and deleted", 3, map[string]*string{"cleanup.policy": kadm.StringPtr("compact,delete")}, "cleanup.policy"},
		{"other partition count", 2, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, "partitions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, 3)
			if _, err := adm.CreateTopic(ctxT(t), tc.partitions, 1, tc.cfg, env.snaps+"Account"); err != nil {
				t.Fatal(err)
			}
			err := env.store(t).EnsureTopic(ctxT(t), "Account")
			if !errors.Is(err, snapshots.ErrTopicLayout) || !strings.Contains(err.Error(), env.snaps+"Account") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func put(t testing.TB, s *snapshots.Kafka, env kafkaEnv, id uuid.UUID, v int64) {
	t.Helper()
	h := snapshotstest.Harness{Type: "Account", Partitions: env.partitions, State: countState}
	if err := s.Put(ctxT(t), h.Snapshot(id, v)); err != nil {
		t.Fatal(err)
	}
}

// TestKafkaViewRestoresAndTails: a second store sees the first one's
// snapshots by restoring, then by tailing.
func TestKafkaViewRestoresAndTails(t *testing.T) {
	env := newEnv(t, 3)
	a, b := env.store(t), env.store(t)
	id := uuid.New()
	put(t, a, env, id, 3)
	if got, err := b.Get(ctxT(t), "Account", id); err != nil || got.Version != 3 {
		t.Fatalf("restored view: %v %v", got, err)
	}
	put(t, a, env, id, 8)
	if err := b.Caught(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctxT(t), "Account", id); err != nil || got.Version != 8 {
		t.Fatalf("tailed view: %v %v", got, err)
	}
	if st := b.Stats(); st.Aggregates != 1 || st.RestoredPartitions != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestKafkaViewSurvivesBadRecords: corrupt bytes, a foreign key and a
// snapshot filed under another aggregate's key are skipped (and counted);
// the good snapshots stay readable and the partition keeps moving. An older
// version written after a newer one is the key's snapshot, in the live view
// and in a fresh restore alike, as it will be once compaction has run: the
// view follows the topic (a forged high version must not block the real
// snapshots written after it).
func TestKafkaViewSurvivesBadRecords(t *testing.T) {
	env := newEnv(t, 1)
	s := env.store(t)
	id, other := uuid.New(), uuid.New()
	put(t, s, env, id, 10)
	put(t, s, env, other, 2)
	h := snapshotstest.Harness{Type: "Account", Partitions: 1, State: countState}
	codec := accountCodec(t)
	older, _ := codec.Encode(h.Snapshot(id, 4))
	misfiled, _ := codec.Encode(h.Snapshot(other, 6))
	raw := kafkatest.Client(t)
	topic := env.snaps + "Account"
	for _, r := range []*kgo.Record{
		{Topic: topic, Key: []byte(id.String()), Value: []byte{0xC3, 0x01, 1, 2, 3}},
		{Topic: topic, Key: []byte("not-an-id"), Value: []byte("{}")},
		{Topic: topic, Key: []byte(id.String()), Value: misfiled},
		{Topic: topic, Key: []byte(id.String()), Value: older},
		{Topic: topic, Key: []byte(snapshots.CheckpointKey), Value: []byte("garbage")},
	} {
		if err := raw.ProduceSync(ctxT(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	put(t, s, env, other, 3)
	for _, st := range []*snapshots.Kafka{s, env.store(t)} { // the live view and a fresh restore
		if err := st.Caught(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Get(ctxT(t), "Account", id); err != nil || got.Version != 4 {
			t.Fatalf("Get %s: %v %v, want the last record's version 4", id, got, err)
		}
		if got, err := st.Get(ctxT(t), "Account", other); err != nil || got.Version != 3 {
			t.Fatalf("Get %s: %v %v", other, got, err)
		}
		if n := st.Stats().Skipped; n != 4 {
			t.Fatalf("skipped %d records, want 4 (corrupt, foreign key, misfiled, bad checkpoint)", n)
		}
	}
}

// TestKafkaOwnedTopicRefusesRepositoryWrites: once a snapshotter's
// checkpoint declares it the owner of a partition, a store without that
// owner refuses to write snapshots there.
func TestKafkaOwnedTopicRefusesRepositoryWrites(t *testing.T) {
	env := newEnv(t, 1)
	sidecar := env.store(t, snapshots.WithOwner("snapshotter-orders"))
	repo := env.store(t)
	id := uuid.New()
	put(t, repo, env, id, 1) // not owned yet
	if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: 5}); err != nil {
		t.Fatal(err)
	}
	if err := repo.Caught(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	h := snapshotstest.Harness{Type: "Account", Partitions: 1, State: countState}
	err := repo.Put(ctxT(t), h.Snapshot(id, 2))
	if !errors.Is(err, snapshots.ErrOwned) || !strings.Contains(err.Error(), "snapshotter-orders") {
		t.Fatalf("repository Put into an owned partition: %v", err)
	}
	if err := repo.Delete(ctxT(t), "Account", id); !errors.Is(err, snapshots.ErrOwned) {
		t.Fatalf("repository Delete in an owned partition: %v", err)
	}
	put(t, sidecar, env, id, 3) // the owner writes on
	cp, err := repo.CheckpointOf(ctxT(t), "Account", id)
	if err != nil || cp.Offset != 5 || cp.Owner != "snapshotter-orders" || cp.EventsTopic != env.events+"Account" {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
}

// TestKafkaViewCacheBudget: beyond the cache budget values are fetched
// from Kafka on demand.
func TestKafkaViewCacheBudget(t *testing.T) {
	env := newEnv(t, 1)
	s := env.store(t, snapshots.WithViewCacheBytes(150))
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}
	for i, id := range ids {
		put(t, s, env, id, int64(i+1))
	}
	if st := s.Stats(); st.CachedBytes > 150 {
		t.Fatalf("view holds %d bytes, budget 150", st.CachedBytes)
	}
	for i, id := range ids {
		if got, err := s.Get(ctxT(t), "Account", id); err != nil || got.Version != int64(i+1) {
			t.Fatalf("Get %d: %v %v", i, got, err)
		}
	}
}

// TestKafkaPutRightAfterAGetOfAMissingTopic: a Get finds the snapshot topic
// missing (and remembers so for a few seconds); a Put just after creates the
// topic and stores the snapshot. Before, the Put found the topic missing
// again by that memory and failed with a nil pointer dereference.
func TestKafkaPutRightAfterAGetOfAMissingTopic(t *testing.T) {
	env := newEnv(t, 1)
	s := env.store(t)
	id := uuid.New()
	if _, err := s.Get(ctxT(t), "Account", id); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("Get without a snapshot topic: %v", err)
	}
	put(t, s, env, id, 3)
	if got, err := s.Get(ctxT(t), "Account", id); err != nil || got.Version != 3 {
		t.Fatalf("Get after Put: %v %v", got, err)
	}
}

// TestKafkaGetTellsADeletedSnapshot: after a tombstone, in the live view
// and in a fresh restore, Get reports ErrNotFound with ErrDeleted, which a
// never-snapshotted aggregate does not get; a new snapshot clears it.
func TestKafkaGetTellsADeletedSnapshot(t *testing.T) {
	env := newEnv(t, 1)
	s := env.store(t)
	id := uuid.New()
	put(t, s, env, id, 3)
	if err := s.Delete(ctxT(t), "Account", id); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*snapshots.Kafka{s, env.store(t)} {
		if _, err := st.Get(ctxT(t), "Account", id); !errors.Is(err, snapshots.ErrNotFound) || !errors.Is(err, snapshots.ErrDeleted) {
			t.Fatalf("Get after a tombstone: %v, want ErrNotFound and ErrDeleted", err)
		}
		if _, err := st.Get(ctxT(t), "Account", uuid.New()); !errors.Is(err, snapshots.ErrNotFound) || errors.Is(err, snapshots.ErrDeleted) {
			t.Fatalf("Get of an aggregate never snapshotted: %v, want ErrNotFound alone", err)
		}
	}
	put(t, s, env, id, 4)
	if got, err := env.store(t).Get(ctxT(t), "Account", id); err != nil || got.Version != 4 {
		t.Fatalf("Get after a new snapshot: %v %v", got, err)
	}
}

// TestKafkaWithClient: a store given only an existing client passes the
// conformance suite, and leaves the client open when it closes.
func TestKafkaWithClient(t *testing.T) {
	env := newEnv(t, 3)
	cl := kafkatest.Client(t)
	s, err := snapshots.NewKafka(accountCodec(t), snapshots.WithClient(cl), snapshots.WithTopicPrefix(env.snaps),
		snapshots.WithEventsTopicPrefix(env.events), snapshots.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Harness {
		return snapshotstest.Harness{Store: s, Type: "Account", Partitions: env.partitions, State: countState, Count: stateCount}
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Ping(ctxT(t)); err != nil {
		t.Fatalf("the client given to the store does not work after the store's Close: %v", err)
	}
}

// TestKafkaDeleteTypeAsOwner: on partitions a snapshotter checkpoints, a
// store without its name (none, or another) gets ErrOwned from DeleteType
// and deletes nothing; the owner deletes exactly the snapshots below the
// schema version, in every partition, and leaves the checkpoints. Loads
// then see the deleted snapshots as deleted (ErrDeleted, so never unborn
// under the checkpoint) and read those aggregates from the log.
func TestKafkaDeleteTypeAsOwner(t *testing.T) {
	env := newEnv(t, 3)
	const owner = "snapshotter-accounts"
	sidecar := env.store(t, snapshots.WithOwner(owner))
	h := snapshotstest.Harness{Type: "Account", Partitions: env.partitions, State: countState}
	bySchema := map[int][]uuid.UUID{}
	for i := range 12 {
		id, schema := uuid.New(), 1+i%2
		s := h.Snapshot(id, 4)
		s.SchemaVersion = schema
		if err := sidecar.Put(ctxT(t), s); err != nil {
			t.Fatal(err)
		}
		bySchema[schema] = append(bySchema[schema], id)
	}
	for p := range env.partitions {
		if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: p, Offset: 100 + int64(p)}); err != nil {
			t.Fatal(err)
		}
	}

	for _, s := range []*snapshots.Kafka{env.store(t), env.store(t, snapshots.WithOwner("someone-else"))} {
		n, err := s.DeleteType(ctxT(t), "Account", 2)
		if !errors.Is(err, snapshots.ErrOwned) || !strings.Contains(err.Error(), owner) || n != 0 {
			t.Fatalf("DeleteType by a store that is not the owner: %d, %v; want 0 and ErrOwned naming %s", n, err, owner)
		}
	}
	if existed, err := sidecar.Remove(ctxT(t), "Account", bySchema[1][0]); !errors.Is(err, snapshots.ErrOwned) || existed {
		t.Fatalf("Remove in an owned partition by its owner: %v, %v; want ErrOwned as Delete", existed, err)
	}

	planned, err := env.store(t, snapshots.WithOwner(owner)).CountTypeByPartition(ctxT(t), "Account", 2)
	if err != nil || len(planned) != int(env.partitions) {
		t.Fatalf("CountTypeByPartition: %v, %v", planned, err)
	}
	total := 0
	for i, c := range planned {
		if c.Partition != int32(i) || c.Owner != owner {
			t.Fatalf("partition %d counted as %+v", i, c)
		}
		total += c.Snapshots
	}
	if total != len(bySchema[1]) {
		t.Fatalf("counted %d snapshots below schema version 2, want %d (nothing was deleted yet)", total, len(bySchema[1]))
	}

	deleted, err := sidecar.DeleteTypeByPartition(ctxT(t), "Account", 2)
	if err != nil || !slices.Equal(deleted, planned) {
		t.Fatalf("DeleteTypeByPartition: %+v, %v; want what CountTypeByPartition counted, %+v", deleted, err, planned)
	}

	fresh := env.store(t) // a repository's store, restoring the topic now
	for schema, ids := range bySchema {
		for _, id := range ids {
			_, getErr := fresh.Get(ctxT(t), "Account", id)
			cp, err := fresh.CheckpointOf(ctxT(t), "Account", id)
			if err != nil || cp.Owner != owner {
				t.Fatalf("checkpoint of %s after DeleteType: %+v, %v", id, cp, err)
			}
			switch {
			case schema == 1 && (!errors.Is(getErr, snapshots.ErrNotFound) || !errors.Is(getErr, snapshots.ErrDeleted)):
				t.Fatalf("Get of a deleted snapshot: %v, want ErrNotFound and ErrDeleted", getErr)
			case schema == 1 && cp.Unborn(id, getErr):
				t.Fatalf("an aggregate whose snapshot was deleted is unborn under %s", cp)
			case schema == 2 && getErr != nil:
				t.Fatalf("Get of a snapshot of schema version 2: %v", getErr)
			}
		}
	}
	for p := range env.partitions {
		if _, err := fresh.RestorePartition(ctxT(t), "Account", p); err != nil {
			t.Fatalf("the checkpoint of partition %d did not survive DeleteType: %v", p, err)
		}
	}
	if n, err := fresh.CountType(ctxT(t), "Account", 0); err != nil || n != len(bySchema[2]) {
		t.Fatalf("CountType of what is left: %d, %v; want %d", n, err, len(bySchema[2]))
	}
}

// TestKafkaDeleteTypeWithoutSnapshotTopic: an aggregate type whose snapshot
// topic does not exist has nothing to count or delete, and DeleteType does
// not create the topic.
func TestKafkaDeleteTypeWithoutSnapshotTopic(t *testing.T) {
	env := newEnv(t, 2)
	s := env.store(t)
	if counts, err := s.CountTypeByPartition(ctxT(t), "Account", 0); err != nil || len(counts) != 0 {
		t.Fatalf("CountTypeByPartition: %v, %v", counts, err)
	}
	if n, err := s.DeleteType(ctxT(t), "Account", 0); err != nil || n != 0 {
		t.Fatalf("DeleteType: %d, %v", n, err)
	}
	td, err := kadm.NewClient(kafkatest.Client(t)).ListTopics(ctxT(t), env.snaps+"Account")
	if err != nil {
		t.Fatal(err)
	}
	if td.Has(env.snaps + "Account") {
		t.Fatalf("DeleteType created %s", env.snaps+"Account")
	}
}
