package aggregate_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// TestPostgresStore: a repository loads from snapshots kept in PostgreSQL
// exactly as from the other stores: the registration comes from the type,
// a snapshot the log confirms is used, a forged one is not (the load
// equals a replay), and under a checkpoint the load reads from it.
func TestPostgresStore(t *testing.T) {
	l := newLog(t) // three partitions
	store, err := snapshots.NewPostgres(nil, pgtest.Pool(t), snapshots.WithPostgresSchema(pgtest.Schema(t)),
		snapshots.WithPostgresPartitions("Account", 3))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, l, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(5))
	plain := newRepo(t, l)
	a := repo.New(uuid.New())
	grow(t, a, 12)
	if err := repo.Save(ctx, a); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Get(ctx, "Account", a.ID())
	if err != nil || snap.Version != 12 || stateIn(t, snap) != a.State() {
		t.Fatalf("snapshot in PostgreSQL: %v %v", snap, err)
	}
	want, err := plain.Load(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, err := repo.Load(ctx, a.ID())
	if err != nil || got.Version() != 12 || got.State() != want.State() {
		t.Fatalf("load from the PostgreSQL snapshot: %v %v", got, err)
	}
	if st := repo.Stats(); st.LoadsFromSnapshot != 1 {
		t.Fatalf("stats %+v", st)
	}

	// A snapshot whose state lies, at a position the log does not confirm:
	// not used.
	lying := snap
	lying.Version, lying.State = 13, accountState(t, Account{Owner: "mallory", Balance: -1, Ops: 13})
	if err := store.Put(ctx, lying); err != nil {
		t.Fatal(err)
	}
	if got, err := repo.Load(ctx, a.ID()); err != nil || got.Version() != 12 || got.State() != want.State() {
		t.Fatalf("load under a forged snapshot: %v %+v, want v12 %+v", got, err, want.State())
	}
	if st := repo.Stats(); st.Misses[aggregate.MissPosition] != 1 {
		t.Fatalf("the forged snapshot was not counted as a position miss: %+v", st)
	}

	// Under a checkpoint past the snapshot, the load reads from the
	// checkpoint and confirms the snapshot with a point read.
	if err := store.Put(ctx, snap); err == nil {
		t.Fatal("a lower version replaced the forged one")
	}
	if _, err := store.Remove(ctx, "Account", a.ID()); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, snap); err != nil {
		t.Fatal(err)
	}
	p := log.Partition(a.ID(), 3)
	other := repo.New(uuidIn(p, 3))
	grow(t, other, 2)
	if err := repo.Save(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := store.PutCheckpoint(ctx, "Account", snapshots.Checkpoint{EventsTopic: store.EventsTopic("Account"), EventsPartition: p,
		Offset: other.Position().Offset + 1, WrittenAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	before := repo.Stats().LoadsFromSnapshot
	if got, err := repo.Load(ctx, a.ID()); err != nil || got.Version() != 12 || got.State() != want.State() {
		t.Fatalf("load under a checkpoint: %v %v", got, err)
	}
	if st := repo.Stats(); st.LoadsFromSnapshot != before+1 {
		t.Fatalf("the load under the checkpoint did not use the snapshot: %+v", st)
	}
}

// uuidIn returns an aggregate id in partition p of n.
func uuidIn(p int32, n int32) uuid.UUID {
	for {
		id := uuid.New()
		if log.Partition(id, n) == p {
			return id
		}
	}
}
