package snapshots_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshots/snapshotstest"
)

// pgPartitions is the partition count of the Account events topic in the
// Postgres tests.
const pgPartitions = 3

// pgEnv is a pool and a schema no other test uses, dropped when the test
// ends.
type pgEnv struct {
	pool   *pgxpool.Pool
	schema string
}

func newPGEnv(t testing.TB) pgEnv {
	t.Helper()
	return pgEnv{pool: pgtest.Pool(t), schema: pgtest.Schema(t)}
}

// unmigrated returns a store on the env's schema with the Account codec and the
// Account partition count, not migrated.
func (env pgEnv) unmigrated(t testing.TB, opts ...snapshots.PostgresOption) *snapshots.Postgres {
	t.Helper()
	base := []snapshots.PostgresOption{
		snapshots.WithPostgresSchema(env.schema),
		snapshots.WithPostgresPartitions("Account", pgPartitions),
	}
	s, err := snapshots.NewPostgres(accountCodec(t), env.pool, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// store is unmigrated, then migrated.
func (env pgEnv) store(t testing.TB, opts ...snapshots.PostgresOption) *snapshots.Postgres {
	t.Helper()
	s := env.unmigrated(t, opts...)
	if err := s.Migrate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return s
}

func (env pgEnv) table(name string) string { return pgx.Identifier{env.schema, name}.Sanitize() }

var pgAccounts = snapshotstest.Harness{Type: "Account", Partitions: pgPartitions, State: countState, Count: stateCount}

// idIn returns a new aggregate id whose events are in partition p.
func idIn(p int32) uuid.UUID {
	for {
		if id := uuid.New(); log.Partition(id, pgPartitions) == p {
			return id
		}
	}
}

func TestPostgresConformance(t *testing.T) {
	env := newPGEnv(t)
	s := env.store(t)
	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Harness {
		h := pgAccounts
		h.Store = s
		return h
	})
}

func TestNewPostgresReportsEveryProblem(t *testing.T) {
	_, err := snapshots.NewPostgres(nil, nil, snapshots.WithPostgresOwner(""), snapshots.WithPostgresSchema(""),
		snapshots.WithPostgresPartitions("Account", 0), snapshots.WithPostgresEventsTopicPrefix(""))
	for _, want := range []string{"nil pool", "WithPostgresOwner", "WithPostgresSchema", "WithPostgresPartitions", "WithPostgresEventsTopicPrefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

// TestPostgresConcurrentPutsNeverLowerTheVersion: many goroutines Put
// rising, random versions of one aggregate through two stores on one
// table. The
// table ends at the highest version, and no Put succeeds with a version
// lower than one whose Put had completed before it started.
func TestPostgresConcurrentPutsNeverLowerTheVersion(t *testing.T) {
	env := newPGEnv(t)
	stores := []*snapshots.Postgres{env.store(t), env.store(t)}
	id := uuid.New()
	const goroutines, puts = 16, 25
	var (
		completed atomic.Int64 // the highest version a completed Put wrote
		attempted atomic.Int64
		stale     atomic.Int64
		wg        sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			s := stores[g%len(stores)]
			for i := range puts {
				// Versions rise with i, with enough noise that the
				// goroutines' Puts overtake each other.
				v := 1 + int64(i)*20 + rng.Int64N(200)
				for old := attempted.Load(); v > old && !attempted.CompareAndSwap(old, v); old = attempted.Load() {
				}
				floor := completed.Load()
				err := s.Put(ctxT(t), pgAccounts.Snapshot(id, v))
				switch {
				case err == nil:
					if v < floor {
						t.Errorf("Put v%d succeeded after a Put of v%d had completed", v, floor)
					}
					for old := completed.Load(); v > old && !completed.CompareAndSwap(old, v); old = completed.Load() {
					}
				case errors.Is(err, snapshots.ErrStale):
					stale.Add(1)
					if !strings.Contains(err.Error(), fmt.Sprintf("refusing version %d", v)) && !strings.Contains(err.Error(), "higher than") {
						t.Errorf("ErrStale does not name the refused version %d: %v", v, err)
					}
				default:
					t.Errorf("Put v%d: %v", v, err)
				}
			}
		})
	}
	wg.Wait()
	got, err := stores[0].Get(ctxT(t), "Account", id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != attempted.Load() || stateCount(got.State) != got.Version {
		t.Fatalf("after %d concurrent Puts the table holds version %d (state %d), want %d", goroutines*puts, got.Version, stateCount(got.State), attempted.Load())
	}
	if stale.Load() == 0 {
		t.Fatal("no Put was refused: the versions did not race")
	}
	t.Logf("%d Puts, %d refused as stale, final version %d", goroutines*puts, stale.Load(), got.Version)
}

func TestPostgresStaleNamesBothVersions(t *testing.T) {
	s := newPGEnv(t).store(t)
	id := uuid.New()
	if err := s.Put(ctxT(t), pgAccounts.Snapshot(id, 10)); err != nil {
		t.Fatal(err)
	}
	err := s.Put(ctxT(t), pgAccounts.Snapshot(id, 4))
	if !errors.Is(err, snapshots.ErrStale) || !strings.Contains(err.Error(), "have version 10, refusing version 4") {
		t.Fatalf("older Put: %v", err)
	}
}

// TestPostgresDeleteLeavesATombstone: Get after Delete reports ErrDeleted,
// so the aggregate is not unborn under a checkpoint; an aggregate never
// snapshotted is; a Put after the Delete writes the snapshot again, at any
// version.
func TestPostgresDeleteLeavesATombstone(t *testing.T) {
	s := newPGEnv(t).store(t)
	cp := snapshots.Checkpoint{Offset: 100}
	id := uuid.New()
	if err := s.Put(ctxT(t), pgAccounts.Snapshot(id, 8)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctxT(t), "Account", id); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(ctxT(t), "Account", id)
	if !errors.Is(err, snapshots.ErrNotFound) || !errors.Is(err, snapshots.ErrDeleted) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound and ErrDeleted", err)
	}
	if cp.Unborn(id, err) {
		t.Fatal("a deleted snapshot makes its aggregate unborn")
	}
	if err := s.Delete(ctxT(t), "Account", id); err != nil {
		t.Fatalf("Delete of a deleted snapshot: %v", err)
	}
	_, err = s.Get(ctxT(t), "Account", uuid.New())
	if !errors.Is(err, snapshots.ErrNotFound) || errors.Is(err, snapshots.ErrDeleted) || !cp.Unborn(uuid.New(), err) {
		t.Fatalf("Get of an aggregate never snapshotted: %v, want ErrNotFound without ErrDeleted", err)
	}
	if err := s.Put(ctxT(t), pgAccounts.Snapshot(id, 3)); err != nil {
		t.Fatalf("Put of a lower version after Delete: %v", err)
	}
	if got, err := s.Get(ctxT(t), "Account", id); err != nil || got.Version != 3 {
		t.Fatalf("Get after a Put after Delete: %v, %v", got, err)
	}
}

// TestPostgresRowHoldsTheCodecsBytes: the row's bytes are the codec's
// encoding of the snapshot, the value a Kafka snapshot topic holds, and
// its columns say what the bytes say.
func TestPostgresRowHoldsTheCodecsBytes(t *testing.T) {
	env := newPGEnv(t)
	s := env.store(t)
	snap := pgAccounts.Snapshot(uuid.New(), 12)
	if err := s.Put(ctxT(t), snap); err != nil {
		t.Fatal(err)
	}
	var (
		value         []byte
		version       int64
		schemaVersion int
		createdAt     time.Time
		partition     int32
		offset        int64
		save          uuid.UUID
	)
	err := env.pool.QueryRow(ctxT(t), `SELECT snapshot, version, schema_version, created_at, log_partition, log_offset, save FROM `+
		env.table("snapshots")+` WHERE aggregate_type = $1 AND aggregate_id = $2`, "Account", snap.AggregateID).
		Scan(&value, &version, &schemaVersion, &createdAt, &partition, &offset, &save)
	if err != nil {
		t.Fatal(err)
	}
	want, err := accountCodec(t).Encode(snap)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(value, want) {
		t.Fatalf("row bytes\n% x\nwant the codec's\n% x", value, want)
	}
	if version != 12 || schemaVersion != 1 || !createdAt.Equal(snap.CreatedAt) || partition != snap.Position.Partition ||
		offset != snap.Position.Offset || save != snap.Save {
		t.Fatalf("columns %d %d %s %d %d %s, want those of %+v", version, schemaVersion, createdAt, partition, offset, save, snap)
	}
}

// TestPostgresCorruptRow: bytes that do not decode, and bytes that say
// something else than the row's columns, are ErrCorrupt.
func TestPostgresCorruptRow(t *testing.T) {
	env := newPGEnv(t)
	s := env.store(t)
	for _, tc := range []struct {
		name, set string
		args      func(snapshots.Snapshot) []any
		want      string
	}{
		{"garbage bytes", "snapshot = $3", func(snapshots.Snapshot) []any { return []any{[]byte{0xc3, 0x01, 1, 2, 3}} }, "decode"},
		{"truncated bytes", "snapshot = substring(snapshot from 1 for 20)", nil, "decode"},
		{"version column", "version = version + 1", nil, "version 6 in the column, 5 in the bytes"},
		{"position column", "log_offset = 7", nil, "position"},
		{"another aggregate's bytes", "snapshot = $3", func(snapshots.Snapshot) []any {
			return []any{must(accountCodec(t).Encode(pgAccounts.Snapshot(uuid.New(), 5)))}
		}, "the bytes are a snapshot of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snap := pgAccounts.Snapshot(uuid.New(), 5)
			if err := s.Put(ctxT(t), snap); err != nil {
				t.Fatal(err)
			}
			args := []any{"Account", snap.AggregateID}
			if tc.args != nil {
				args = append(args, tc.args(snap)...)
			}
			if _, err := env.pool.Exec(ctxT(t), `UPDATE `+env.table("snapshots")+` SET `+tc.set+
				` WHERE aggregate_type = $1 AND aggregate_id = $2`, args...); err != nil {
				t.Fatal(err)
			}
			_, err := s.Get(ctxT(t), "Account", snap.AggregateID)
			if !errors.Is(err, snapshots.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Get: %v, want ErrCorrupt mentioning %q", err, tc.want)
			}
		})
	}
}

// TestPostgresMigrate: a store used before Migrate says so; Migrate is
// idempotent, also when run concurrently on a fresh schema.
func TestPostgresMigrate(t *testing.T) {
	env := newPGEnv(t)
	s := env.unmigrated(t)
	id := uuid.New()
	for name, call := range map[string]func() error{
		"Get":           func() error { _, err := s.Get(ctxT(t), "Account", id); return err },
		"Put":           func() error { return s.Put(ctxT(t), pgAccounts.Snapshot(id, 1)) },
		"Delete":        func() error { return s.Delete(ctxT(t), "Account", id) },
		"CheckpointOf":  func() error { _, err := s.CheckpointOf(ctxT(t), "Account", id); return err },
		"PutCheckpoint": func() error { return s.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{Offset: 1}) },
		"CountType":     func() error { _, err := s.CountType(ctxT(t), "Account", 0); return err },
	} {
		err := call()
		if !errors.Is(err, snapshots.ErrNotMigrated) || !strings.Contains(err.Error(), "Migrate") || errors.Is(err, snapshots.ErrNotFound) {
			t.Errorf("%s before Migrate: %v, want ErrNotMigrated naming Migrate", name, err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = env.unmigrated(t).Migrate(ctxT(t)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrates: %v", err)
	}
	if err := s.Migrate(ctxT(t)); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	var steps int
	if err := env.pool.QueryRow(ctxT(t), `SELECT count(*) FROM `+env.table("schema_migrations")).Scan(&steps); err != nil {
		t.Fatal(err)
	}
	if steps != 2 {
		t.Fatalf("schema_migrations has %d rows after six Migrates, want its 2 migrations", steps)
	}
	if err := s.Put(ctxT(t), pgAccounts.Snapshot(id, 1)); err != nil {
		t.Fatalf("Put after Migrate: %v", err)
	}
	// Another store, never migrated itself, on the migrated schema.
	if _, err := env.unmigrated(t).Get(ctxT(t), "Account", id); err != nil {
		t.Fatalf("Get through a second store: %v", err)
	}
	// Tables dropped under a store that had checked them.
	if _, err := env.pool.Exec(ctxT(t), `DROP SCHEMA `+pgx.Identifier{env.schema}.Sanitize()+` CASCADE`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctxT(t), "Account", id); !errors.Is(err, snapshots.ErrNotMigrated) {
		t.Fatalf("Get after the schema was dropped: %v, want ErrNotMigrated", err)
	}
}

// TestPostgresCheckpoints: PutCheckpoint and CheckpointOf round trip, by
// the aggregate's partition; a store without the partition count reads
// the one the writer recorded, and a store configured with another count
// is refused.
func TestPostgresCheckpoints(t *testing.T) {
	env := newPGEnv(t)
	writer := env.store(t, snapshots.WithPostgresOwner("snapshotter-a"))
	reader := env.store(t)
	unconfigured, err := snapshots.NewPostgres(nil, env.pool, snapshots.WithPostgresSchema(env.schema))
	if err != nil {
		t.Fatal(err)
	}
	id := idIn(1)
	if _, err := unconfigured.CheckpointOf(ctxT(t), "Account", id); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("CheckpointOf before any checkpoint: %v, want ErrNotFound", err)
	}
	unsnapshotted := []uuid.UUID{uuid.New(), uuid.New()}
	written := time.Now().Add(-time.Minute)
	if err := writer.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{
		EventsPartition: 1, Offset: 42, Unsnapshotted: unsnapshotted, WrittenAt: written, Owner: "ignored",
	}); err != nil {
		t.Fatal(err)
	}
	want := snapshots.Checkpoint{
		EventsTopic: log.DefaultTopicPrefix + "Account", EventsPartition: 1, Offset: 42, Owner: "snapshotter-a",
		Unsnapshotted: unsnapshotted, WrittenAt: written.UTC().Truncate(time.Microsecond),
	}
	for name, s := range map[string]*snapshots.Postgres{"writer": writer, "reader": reader, "unconfigured reader": unconfigured} {
		got, err := s.CheckpointOf(ctxT(t), "Account", id)
		if err != nil {
			t.Fatalf("%s: CheckpointOf: %v", name, err)
		}
		if got.String() != want.String() || !got.WrittenAt.Equal(want.WrittenAt) || got.WrittenAt.Location() != time.UTC ||
			fmt.Sprint(got.Unsnapshotted) != fmt.Sprint(want.Unsnapshotted) {
			t.Fatalf("%s: CheckpointOf: %+v, want %+v", name, got, want)
		}
		if got.Covers(unsnapshotted[0]) || !got.Covers(id) {
			t.Fatalf("%s: Covers wrong for %+v", name, got)
		}
		if _, err := s.CheckpointOf(ctxT(t), "Account", idIn(2)); !errors.Is(err, snapshots.ErrNotFound) {
			t.Fatalf("%s: CheckpointOf in a partition without one: %v, want ErrNotFound", name, err)
		}
	}
	// A later checkpoint replaces it; an empty list reads back as nil.
	if err := writer.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 1, Offset: 50}); err != nil {
		t.Fatal(err)
	}
	if got, err := reader.CheckpointOf(ctxT(t), "Account", id); err != nil || got.Offset != 50 || got.Unsnapshotted != nil || got.WrittenAt.IsZero() {
		t.Fatalf("CheckpointOf after a second PutCheckpoint: %+v, %v", got, err)
	}

	wrong, err := snapshots.NewPostgres(accountCodec(t), env.pool, snapshots.WithPostgresSchema(env.schema), snapshots.WithPostgresPartitions("Account", 6))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.CheckpointOf(ctxT(t), "Account", id); !errors.Is(err, snapshots.ErrTopicLayout) {
		t.Fatalf("CheckpointOf with another partition count: %v, want ErrTopicLayout", err)
	}
	if err := wrong.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 5, Offset: 1}); !errors.Is(err, snapshots.ErrTopicLayout) {
		t.Fatalf("PutCheckpoint with another partition count: %v, want ErrTopicLayout", err)
	}
	if err := unconfigured.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{Offset: 1}); err == nil || !strings.Contains(err.Error(), "WithPostgresPartitions") {
		t.Fatalf("PutCheckpoint without a partition count: %v", err)
	}
	if err := writer.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: pgPartitions, Offset: 1}); err == nil {
		t.Fatal("PutCheckpoint of a partition the topic does not have: no error")
	}
	if err := writer.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: -1}); err == nil {
		t.Fatal("PutCheckpoint of a negative offset: no error")
	}
}

// TestPostgresOwnership mirrors the Kafka store's rules: Put and
// PutCheckpoint only by the partition's owner, Delete by nobody on an owned
// partition, DeleteType only by the owner of every partition that has one.
func TestPostgresOwnership(t *testing.T) {
	env := newPGEnv(t)
	owner := env.store(t, snapshots.WithPostgresOwner("snapshotter-a"))
	rival := env.store(t, snapshots.WithPostgresOwner("snapshotter-b"))
	repo := env.store(t)
	owned, free := idIn(0), idIn(1)
	for _, id := range []uuid.UUID{owned, free} {
		if err := repo.Put(ctxT(t), pgAccounts.Snapshot(id, 1)); err != nil {
			t.Fatalf("Put before any checkpoint: %v", err)
		}
	}
	if err := owner.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: 10}); err != nil {
		t.Fatal(err)
	}
	// A checkpoint without an owner leaves partition 1 free.
	if err := repo.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 1, Offset: 10}); err != nil {
		t.Fatal(err)
	}

	for name, s := range map[string]*snapshots.Postgres{"repository": repo, "rival": rival} {
		if err := s.Put(ctxT(t), pgAccounts.Snapshot(owned, 2)); !errors.Is(err, snapshots.ErrOwned) || !strings.Contains(err.Error(), `"snapshotter-a"`) {
			t.Errorf("%s: Put to the owned partition: %v, want ErrOwned naming the owner", name, err)
		}
		if err := s.Put(ctxT(t), pgAccounts.Snapshot(free, 2)); err != nil {
			t.Errorf("%s: Put to a partition without an owner: %v", name, err)
		}
	}
	if err := rival.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: 11}); !errors.Is(err, snapshots.ErrOwned) {
		t.Errorf("rival PutCheckpoint: %v, want ErrOwned", err)
	}
	if err := owner.Put(ctxT(t), pgAccounts.Snapshot(owned, 3)); err != nil {
		t.Errorf("owner Put: %v", err)
	}
	for name, s := range map[string]*snapshots.Postgres{"repository": repo, "rival": rival, "owner": owner} {
		if err := s.Delete(ctxT(t), "Account", owned); !errors.Is(err, snapshots.ErrOwned) {
			t.Errorf("%s: Delete on the owned partition: %v, want ErrOwned", name, err)
		}
	}
	if got, err := repo.Get(ctxT(t), "Account", owned); err != nil || got.Version != 3 {
		t.Fatalf("after the refused writes: %+v, %v; want version 3", got, err)
	}
	if cp, err := repo.CheckpointOf(ctxT(t), "Account", owned); err != nil || cp.Offset != 10 || cp.Owner != "snapshotter-a" {
		t.Fatalf("the rival's refused checkpoint changed it: %+v, %v", cp, err)
	}
	if err := repo.Delete(ctxT(t), "Account", free); err != nil {
		t.Errorf("Delete on a partition without an owner: %v", err)
	}

	for name, s := range map[string]*snapshots.Postgres{"repository": repo, "rival": rival} {
		if _, err := s.DeleteType(ctxT(t), "Account", 0); !errors.Is(err, snapshots.ErrOwned) || !strings.Contains(err.Error(), "/0 belongs to") {
			t.Errorf("%s: DeleteType: %v, want ErrOwned naming partition 0", name, err)
		}
	}
	if ok, err := repo.Exists(ctxT(t), "Account", owned); err != nil || !ok {
		t.Fatalf("a refused DeleteType deleted: %v, %v", ok, err)
	}
	if n, err := owner.DeleteType(ctxT(t), "Account", 0); err != nil || n != 1 {
		t.Fatalf("owner DeleteType: %d, %v; want 1", n, err)
	}
	if _, err := repo.Get(ctxT(t), "Account", owned); !errors.Is(err, snapshots.ErrDeleted) {
		t.Fatalf("Get after DeleteType: %v, want ErrDeleted", err)
	}
	if err := owner.Put(ctxT(t), pgAccounts.Snapshot(owned, 3)); err != nil {
		t.Fatalf("the owner writes the deleted snapshot again: %v", err)
	}
}

// TestPostgresPutChecksThePartition: a snapshot whose last event is not in
// the aggregate's partition is refused.
func TestPostgresPutChecksThePartition(t *testing.T) {
	s := newPGEnv(t).store(t)
	snap := pgAccounts.Snapshot(idIn(0), 4)
	snap.Position.Partition = 2
	if err := s.Put(ctxT(t), snap); err == nil || !strings.Contains(err.Error(), "partition 0") {
		t.Fatalf("Put of a snapshot in another partition: %v", err)
	}
}

// TestPostgresSchemasAreIndependent: stores on two schemas of one database
// share nothing.
func TestPostgresSchemasAreIndependent(t *testing.T) {
	a, b := newPGEnv(t).store(t), newPGEnv(t).store(t)
	id := uuid.New()
	if err := a.Put(ctxT(t), pgAccounts.Snapshot(id, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctxT(t), "Account", id); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("Get from the other schema: %v", err)
	}
}
