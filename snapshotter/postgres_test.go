package snapshotter_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/internal/kread"
	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// pgSide is a test's PostgreSQL schema, migrated, dropped when it ends.
type pgSide struct {
	pool   *pgxpool.Pool
	schema string
}

func newPGSide(t testing.TB, e *env) pgSide {
	t.Helper()
	pg := pgSide{pool: pgtest.Pool(t), schema: pgtest.Schema(t)}
	if err := pg.store(t, e).Migrate(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return pg
}

// store returns a store on the schema, as a repository has it (no owner),
// or with opts.
func (pg pgSide) store(t testing.TB, e *env, opts ...snapshots.PostgresOption) *snapshots.Postgres {
	t.Helper()
	c := snapshots.NewAvroCodec()
	if err := c.Register("Account", accountSchema); err != nil {
		t.Fatal(err)
	}
	s, err := snapshots.NewPostgres(c, pg.pool, append([]snapshots.PostgresOption{snapshots.WithPostgresSchema(pg.schema),
		snapshots.WithPostgresEventsTopicPrefix(e.events)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (pg pgSide) table(name string) string { return pgx.Identifier{pg.schema, name}.Sanitize() }

// snapshotter returns a snapshotter of the env's group writing to the
// schema.
func (pg pgSide) snapshotter(t testing.TB, e *env, opts ...snapshotter.Option) *snapshotter.Snapshotter {
	t.Helper()
	base := []snapshotter.Option{
		snapshotter.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
		snapshotter.WithEventsTopicPrefix(e.events),
		snapshotter.WithPostgres(pg.pool, snapshots.WithPostgresSchema(pg.schema)),
		snapshotter.WithThreshold(10), snapshotter.WithCheckpointInterval(300 * time.Millisecond),
	}
	s, err := snapshotter.New(e.group, []snapshotter.Type{snapshotter.Register(accountType(t))}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// consumed returns the consumed offsets the partitions' claims hold.
func (pg pgSide) consumed(t testing.TB) map[int32]int64 {
	t.Helper()
	rows, err := pg.pool.Query(ctxT(t), `SELECT events_partition, consumed_offset FROM `+pg.table("partition_claims"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	var p int32
	var off int64
	if _, err := pgx.ForEachRow(rows, []any{&p, &off}, func() error { out[p] = off; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPostgresEndToEnd: with WithPostgres the snapshotter writes snapshots,
// checkpoints and consumed offsets to PostgreSQL and nothing to Kafka but
// the group's offsets; every load from the PostgreSQL store reads at most
// the records after its partition's checkpoint and equals a replay, and a
// repository's own snapshot writes are refused in the partitions the
// snapshotter owns.
func TestPostgresEndToEnd(t *testing.T) {
	e := newEnv(t, 3)
	pg := newPGSide(t, e)
	s := pg.snapshotter(t, e)
	start(t, s)
	waitFor(t, "ready", 60*time.Second, s.Ready)
	var refused atomic.Int64
	app := e.repo(t, aggregate.WithSnapshotStore(pg.store(t, e)), aggregate.WithSnapshotThreshold(5),
		aggregate.WithHooks(aggregate.Hooks{SnapshotFailed: func(f aggregate.SnapshotFailure) {
			if errors.Is(f.Err, snapshots.ErrOwned) {
				refused.Add(1)
			}
		}}))
	accounts := ids(24)
	writeTraffic(t, app, accounts, 15)
	caughtUp(t, e, s)
	maxRead := checkLoadsFrom(t, e, accounts, pg.store(t, e))
	st := s.Stats()
	t.Logf("snapshotter: %d snapshots, %d checkpoints, %d events applied, %d aborted; loads read at most %d records; %d repository snapshots refused",
		st.SnapshotsTotal, st.Checkpoints, st.EventsApplied, st.Aborted, maxRead, refused.Load())
	if st.SnapshotsTotal == 0 || st.ApplyFailures != 0 || st.Aborted != 0 {
		t.Fatalf("stats %+v", st)
	}
	if refused.Load() == 0 {
		t.Fatal("the repository's own snapshots were not refused in the snapshotter's partitions")
	}
	consumed := pg.consumed(t)
	for _, p := range st.Partitions {
		if consumed[p.Partition] != p.Next {
			t.Errorf("partition %d: consumed offset %d in PostgreSQL, the snapshotter is at %d", p.Partition, consumed[p.Partition], p.Next)
		}
	}
	// The group's offsets in Kafka follow, for the lag tools.
	adm := kadm.NewClient(kafkatest.Client(t))
	waitFor(t, "the consumed offsets committed to the group", 10*time.Second, func() bool {
		offs, err := adm.FetchOffsets(ctxT(t), e.group)
		if err != nil {
			return false
		}
		for p, off := range consumed {
			if o, ok := offs.Lookup(e.events+"Account", p); !ok || o.At != off {
				return false
			}
		}
		return true
	})
	topics, err := adm.ListTopics(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, e.snaps) {
			t.Fatalf("a snapshot topic %s was created with the PostgreSQL store", name)
		}
	}
}

// TestPostgresResumesFromItsCheckpoint: a snapshotter restarted on the
// same group resumes each partition from the checkpoint in PostgreSQL,
// whatever the group's offsets in Kafka say (set back to 0 here): it applies
// only the events written after it.
func TestPostgresResumesFromItsCheckpoint(t *testing.T) {
	e := newEnv(t, 3)
	pg := newPGSide(t, e)
	first := pg.snapshotter(t, e)
	stop := start(t, first)
	app := e.repo(t)
	accounts := ids(9)
	writeTraffic(t, app, accounts, 6)
	caughtUp(t, e, first)
	stop()

	adm := kadm.NewClient(kafkatest.Client(t))
	zero := kadm.Offsets{}
	for p := range e.partitions {
		zero.Add(kadm.Offset{Topic: e.events + "Account", Partition: p, At: 0, LeaderEpoch: -1})
	}
	if _, err := adm.CommitOffsets(ctxT(t), e.group, zero); err != nil {
		t.Fatal(err)
	}
	second := pg.snapshotter(t, e)
	start(t, second)
	caughtUp(t, e, second)
	if n := second.Stats().EventsApplied; n != 0 {
		t.Fatalf("the restarted snapshotter applied %d events with nothing written since the checkpoints", n)
	}
	var want uint64
	for _, id := range accounts[:3] {
		a, err := app.Load(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Apply(Deposited{Amount: 1}); err != nil {
			t.Fatal(err)
		}
		if err := app.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
		want++
	}
	caughtUp(t, e, second)
	if n := second.Stats().EventsApplied; n != want {
		t.Fatalf("the restarted snapshotter applied %d events, %d were written after its checkpoints", n, want)
	}
	checkLoadsFrom(t, e, accounts, pg.store(t, e))
}

// TestPostgresFenced: a claim taken behind the running snapshotter's back
// fences it: its next writes of that partition are refused whole (no
// snapshot, no checkpoint), it forgets the partition, and the other
// partitions go on; if the group leaves the partition with it past its
// session and rebalance timeouts, Run fails naming ErrFenced rather than
// leave the partition unsnapshotted.
func TestPostgresFenced(t *testing.T) {
	e := newEnv(t, 3)
	pg := newPGSide(t, e)
	s := pg.snapshotter(t, e, snapshotter.KafkaClient(kgo.SessionTimeout(6*time.Second), kgo.RebalanceTimeout(6*time.Second)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	returned := false
	defer func() {
		cancel()
		if !returned {
			<-done
		}
	}()
	app := e.repo(t)
	var in0, others []uuid.UUID
	for len(in0) < 3 || len(others) < 3 {
		id := uuid.New()
		if log.Partition(id, e.partitions) == 0 {
			in0 = append(in0, id)
		} else {
			others = append(others, id)
		}
	}
	writeTraffic(t, app, append(append([]uuid.UUID(nil), in0...), others...), 4)
	caughtUp(t, e, s)

	thief := pg.store(t, e, snapshots.WithPostgresOwner(e.group))
	if _, err := thief.Claim(ctxT(t), "Account", e.partitions, 0); err != nil {
		t.Fatal(err)
	}
	before, err := thief.CheckpointOf(ctxT(t), "Account", in0[0])
	if err != nil {
		t.Fatal(err)
	}
	writeTraffic(t, app, append(append([]uuid.UUID(nil), in0...), others...), 2)
	waitFor(t, "the fenced partition forgotten", 30*time.Second, func() bool {
		st := s.Stats()
		return len(st.Partitions) == int(e.partitions)-1 && st.Aborted > 0
	})
	for _, id := range in0 {
		snap, err := thief.Get(ctxT(t), "Account", id)
		if err != nil {
			t.Fatal(err)
		}
		if now, err := app.Load(ctxT(t), id); err != nil || snap.Version == now.Version() {
			t.Fatalf("%s: snapshot at version %d after the fence, the aggregate is at %v (%v)", id, snap.Version, now.Version(), err)
		}
	}
	if after, err := thief.CheckpointOf(ctxT(t), "Account", in0[0]); err != nil || after.Offset != before.Offset {
		t.Fatalf("checkpoint moved from %d to %v (%v) after the fence", before.Offset, after.Offset, err)
	}
	checkLoadsFrom(t, e, others, pg.store(t, e))
	select {
	case err := <-done:
		returned = true
		if !errors.Is(err, snapshots.ErrFenced) || !strings.Contains(err.Error(), pg.schema) {
			t.Fatalf("Run: %v, want ErrFenced naming the schema", err)
		}
		t.Logf("Run: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("Run went on with a partition fenced from outside the group")
	}
}

// TestPostgresDeletedSnapshotIsWrittenAgain: a snapshot deleted in
// PostgreSQL under the snapshotter's checkpoint (the owner's purge) is
// written again, the aggregate rebuilt from the log.
func TestPostgresDeletedSnapshotIsWrittenAgain(t *testing.T) {
	e := newEnv(t, 1)
	pg := newPGSide(t, e)
	s := pg.snapshotter(t, e, snapshotter.WithMaxStates(1))
	start(t, s)
	app := e.repo(t)
	gone, other := uuid.New(), uuid.New()
	writeTraffic(t, app, []uuid.UUID{gone}, 4)
	writeTraffic(t, app, []uuid.UUID{other}, 4) // evicts gone's state
	caughtUp(t, e, s)
	want, err := app.Load(ctxT(t), gone)
	if err != nil {
		t.Fatal(err)
	}
	owner := pg.store(t, e, snapshots.WithPostgresOwner(e.group))
	if n, err := owner.DeleteType(ctxT(t), "Account", 0); err != nil || n != 2 {
		t.Fatalf("purge: %d %v", n, err)
	}
	waitFor(t, "the deleted snapshots written again", 30*time.Second, func() bool {
		got, err := owner.Get(ctxT(t), "Account", gone)
		return err == nil && got.Version == want.Version()
	})
	checkLoadsFrom(t, e, []uuid.UUID{gone, other}, pg.store(t, e))
}

// TestPostgresNotMigrated: Run on a schema Migrate has not prepared fails
// at once, saying so.
func TestPostgresNotMigrated(t *testing.T) {
	e := newEnv(t, 1)
	pg := pgSide{pool: pgtest.Pool(t), schema: pgtest.Schema(t)}
	s := pg.snapshotter(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.Run(ctx)
	if !errors.Is(err, snapshots.ErrNotMigrated) || !strings.Contains(err.Error(), "Migrate") {
		t.Fatalf("Run: %v, want ErrNotMigrated naming Migrate", err)
	}
}

// TestPostgresOptionConflicts: the options of the snapshot topics are
// refused with WithPostgres.
func TestPostgresOptionConflicts(t *testing.T) {
	_, err := snapshotter.New("g", []snapshotter.Type{snapshotter.Register(accountType(t))},
		snapshotter.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")), snapshotter.WithPostgres(nil),
		snapshotter.WithSnapshotsTopicPrefix("x."), snapshotter.WithReplicationFactor(3), snapshotter.WithTransactionalID("t"))
	for _, want := range []string{"nil pool", "WithSnapshotsTopicPrefix", "WithReplicationFactor", "WithTransactionalID"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v, want it to name %s", err, want)
		}
	}
}

// pgState is what the tables held at one moment, read in one transaction.
type pgState struct {
	versions    map[uuid.UUID]int64 // snapshots not deleted
	checkpoints map[int32]snapshots.Checkpoint
}

// watch reads the schema's snapshots and checkpoints in a repeatable-read
// transaction every 20 ms, until the returned function is called, which
// returns the states read. Each state is one moment of the database: what
// a load starting then would find.
func (pg pgSide) watch(t testing.TB, e *env) (stop func() []pgState) {
	var (
		states []pgState
		halt   = make(chan struct{})
		done   = make(chan struct{})
	)
	read := func() (pgState, error) {
		st := pgState{versions: map[uuid.UUID]int64{}, checkpoints: map[int32]snapshots.Checkpoint{}}
		err := pgx.BeginTxFunc(ctxT(t), pg.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctxT(t), `SELECT aggregate_id, version FROM `+pg.table("snapshots")+` WHERE deleted_at IS NULL`)
			if err != nil {
				return err
			}
			var id uuid.UUID
			var v int64
			if _, err := pgx.ForEachRow(rows, []any{&id, &v}, func() error { st.versions[id] = v; return nil }); err != nil {
				return err
			}
			rows, err = tx.Query(ctxT(t), `SELECT events_partition, checkpoint_offset, unsnapshotted FROM `+pg.table("checkpoints"))
			if err != nil {
				return err
			}
			var cp snapshots.Checkpoint
			_, err = pgx.ForEachRow(rows, []any{&cp.EventsPartition, &cp.Offset, &cp.Unsnapshotted}, func() error {
				st.checkpoints[cp.EventsPartition] = cp
				return nil
			})
			return err
		})
		return st, err
	}
	go func() {
		defer close(done)
		for {
			st, err := read()
			if err != nil {
				t.Errorf("read the tables: %v", err)
				return
			}
			states = append(states, st)
			select {
			case <-halt:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() []pgState {
		close(halt)
		<-done
		return states
	}
}

// verifyPostgres checks the states read against the events topic: no
// aggregate's snapshot goes back to a lower version, no checkpoint goes back,
// and no checkpoint claims more than the snapshots beside it give: every
// aggregate with events before a checkpoint's offset (and not listed as
// unsnapshotted) has, in the same state, a snapshot of at least its
// version at that offset.
func verifyPostgres(t *testing.T, e *env, states []pgState) {
	t.Helper()
	cl := kafkatest.Client(t)
	rd := kread.NewReader(cl)
	evTopic, err := kread.Describe(ctxT(t), cl, e.events+"Account")
	if err != nil {
		t.Fatal(err)
	}
	histories := make([]history, e.partitions)
	for p := range e.partitions {
		histories[p] = readHistory(t, rd, evTopic, p)
	}
	best := map[uuid.UUID]int64{}
	last := map[int32]int64{}
	for i, st := range states {
		for id, v := range st.versions {
			if v < best[id] {
				t.Fatalf("state %d: the snapshot of %s went back from version %d to %d", i, id, best[id], v)
			}
			best[id] = v
		}
		for p, cp := range st.checkpoints {
			if cp.Offset < last[p] {
				t.Fatalf("state %d: the checkpoint of partition %d went back from %d to %d", i, p, last[p], cp.Offset)
			}
			last[p] = cp.Offset
			for id := range histories[p] {
				if v := histories[p].before(id, cp.Offset); v > 0 && cp.Covers(id) && st.versions[id] < v {
					t.Fatalf("state %d: checkpoint %d@%d overstates: %s is at version %d before it, its snapshot is at %d",
						i, p, cp.Offset, id, v, st.versions[id])
				}
			}
		}
	}
	if len(states) < 10 || len(last) != int(e.partitions) {
		t.Fatalf("%d states read, checkpoints of %d partitions: too few to verify", len(states), len(last))
	}
}

// TestPostgresCrash: kill -9 a snapshotter writing to PostgreSQL
// mid-stream and start another: at every moment the tables held, no
// snapshot or checkpoint went back and no checkpoint overstated what the
// snapshots give, and every load equals a replay, bounded by the
// checkpoints.
func TestPostgresCrash(t *testing.T) {
	e := newEnv(t, 3)
	pg := newPGSide(t, e)
	watch := pg.watch(t, e)
	first := e.startChildOn(t, pg.schema)
	accounts := ids(12)
	stop := traffic(t, e, accounts)
	time.Sleep(3 * time.Second)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	time.Sleep(time.Second)
	second := e.startChildOn(t, pg.schema)
	time.Sleep(3 * time.Second)
	stop()
	pg.caughtUp(t, e, 2*time.Minute)
	states := watch()
	verifyPostgres(t, e, states)
	maxRead := checkLoadsFrom(t, e, accounts, pg.store(t, e))
	t.Logf("%d states of the tables verified; loads read at most %d records", len(states), maxRead)
	_ = second.cmd.Process.Signal(syscall.SIGTERM)
	<-second.done
	if code := second.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the snapshotter exited with %d on SIGTERM", code)
	}
}

// TestPostgresZombie: a snapshotter paused (SIGSTOP) until another took
// its partitions, then resumed, writes nothing to PostgreSQL: its claims
// are fenced, and no state of the tables goes back or overstates.
func TestPostgresZombie(t *testing.T) {
	e := newEnv(t, 3)
	pg := newPGSide(t, e)
	watch := pg.watch(t, e)
	zombie := e.startChildOn(t, pg.schema)
	accounts := ids(12)
	stop := traffic(t, e, accounts)
	time.Sleep(3 * time.Second)
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e.startChildOn(t, pg.schema)
	time.Sleep(12 * time.Second) // past the paused member's session timeout: the new one takes every partition
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	stop()
	pg.caughtUp(t, e, 2*time.Minute)
	states := watch()
	verifyPostgres(t, e, states)
	checkLoadsFrom(t, e, accounts, pg.store(t, e))
	t.Logf("%d states of the tables verified; the resumed snapshotter had %d partition writes fenced", len(states), zombie.fenced.Load())
}

// caughtUp waits until every partition's checkpoint in PostgreSQL has
// nothing but transaction markers after it.
func (pg pgSide) caughtUp(t *testing.T, e *env, d time.Duration) {
	t.Helper()
	probe := map[int32]uuid.UUID{}
	for int32(len(probe)) < e.partitions {
		id := uuid.New()
		probe[log.Partition(id, e.partitions)] = id
	}
	store := pg.store(t, e)
	waitFor(t, "the checkpoints in PostgreSQL at the end of the log", d, func() bool {
		for p, id := range probe {
			cp, err := store.CheckpointOf(ctxT(t), "Account", id)
			if err != nil || cp.EventsPartition != p {
				return false
			}
			tail, err := e.log.Read(ctxT(t), "Account", id, cp.Offset)
			if err != nil || tail.Scanned != 0 {
				return false
			}
		}
		return true
	})
}

// TestPostgresForgedSnapshotIsReplaced: a snapshot row of a high version
// the log does not confirm (forged, or written by a foreign tool) does not
// stop the snapshotter from snapshotting the aggregate, although the
// table's version guard refuses lower versions: the owner rebuilds the
// aggregate from the log and replaces the row, whether the row was there
// when the snapshotter started or was written while it ran.
func TestPostgresForgedSnapshotIsReplaced(t *testing.T) {
	e := newEnv(t, 1)
	pg := newPGSide(t, e)
	first := pg.snapshotter(t, e)
	stop := start(t, first)
	app := e.repo(t)
	id := uuid.New()
	writeTraffic(t, app, []uuid.UUID{id}, 6)
	caughtUp(t, e, first)
	stop()

	owner := pg.store(t, e, snapshots.WithPostgresOwner(e.group))
	forge := func(v int64) {
		t.Helper()
		snap, err := owner.Get(ctxT(t), "Account", id)
		if err != nil {
			t.Fatal(err)
		}
		snap.Version = v // at the same position: the log's event there says otherwise
		if err := owner.Put(ctxT(t), snap); err != nil {
			t.Fatal(err)
		}
	}
	replaced := func(what string) {
		t.Helper()
		want, err := app.Load(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, what, 30*time.Second, func() bool {
			got, err := owner.Get(ctxT(t), "Account", id)
			return err == nil && got.Version == want.Version()
		})
	}
	forge(1000)
	second := pg.snapshotter(t, e)
	start(t, second)
	writeTraffic(t, app, []uuid.UUID{id}, 3)
	replaced("the forged snapshot found at the start replaced")
	if st := second.Stats(); st.Replays == 0 {
		t.Fatalf("stats %+v: the aggregate was not rebuilt from the log", st)
	}
	caughtUp(t, e, second)
	forge(2000)
	writeTraffic(t, app, []uuid.UUID{id}, 3)
	replaced("the snapshot forged while the snapshotter ran replaced")
	checkLoadsFrom(t, e, []uuid.UUID{id}, pg.store(t, e))
}
