package snapshotter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

type Deposited struct {
	Amount int64 `json:"amount"`
}

type Account struct {
	Balance int64 `avro:"balance"`
	Ops     int64 `avro:"ops"`
}

const accountSchema = `{"type":"record","name":"Account","namespace":"snaplog.test","fields":[
	{"name":"balance","type":"long"},{"name":"ops","type":"long"}]}`

// accountState encodes a as snapshot state.
func accountState(t testing.TB, a Account) []byte {
	t.Helper()
	s, err := snapshots.ParseStateSchema(accountSchema)
	if err == nil {
		var b []byte
		if b, err = s.Encode(a); err == nil {
			return b
		}
	}
	t.Fatal(err)
	return nil
}

// stateIn decodes a snapshot's state.
func stateIn(t testing.TB, snap snapshots.Snapshot) Account {
	t.Helper()
	var a Account
	s, err := snapshots.ParseStateSchema(accountSchema)
	if err == nil {
		err = s.Decode(snap.State, &a)
	}
	if err != nil {
		t.Fatalf("state of %s: %v", snap, err)
	}
	return a
}

func accountType(t testing.TB) aggregate.Type[Account] {
	reg := aggregate.NewRegistry(nil)
	if err := aggregate.Register[Deposited](reg, "Deposited"); err != nil {
		t.Fatal(err)
	}
	return aggregate.Type[Account]{Name: "Account", Events: reg, StateSchema: accountSchema, Apply: func(s Account, e aggregate.Envelope) (Account, error) {
		d, ok := e.Event.(Deposited)
		if !ok {
			return s, fmt.Errorf("unexpected %T", e.Event)
		}
		if d.Amount < 0 {
			return s, fmt.Errorf("negative deposit %d", d.Amount)
		}
		s.Balance += d.Amount
		s.Ops++
		return s, nil
	}}
}

func ctxT(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

// env is one test's topics and clients.
type env struct {
	events, snaps string
	group         string
	log           *log.Kafka
	partitions    int32
}

func newEnv(t testing.TB, partitions int32) *env {
	run := uuid.NewString()[:8]
	e := &env{events: "st." + run + ".events.", snaps: "st." + run + ".snapshots.", group: "snapshotter-" + run, partitions: partitions}
	l, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)), log.WithTopicPrefix(e.events),
		log.WithTopicPartitions(partitions), log.WithReplicationFactor(1), log.WithTransactionalProducers(16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.EnsureTopic(ctxT(t), "Account"); err != nil {
		t.Fatal(err)
	}
	e.log = l
	kafkatest.DeleteTopicsOnCleanup(t, e.events+"Account", e.snaps+"Account")
	return e
}

func (e *env) store(t testing.TB) *snapshots.Kafka {
	c := snapshots.NewAvroCodec()
	if err := c.Register("Account", accountSchema); err != nil {
		t.Fatal(err)
	}
	s, err := snapshots.NewKafka(c, snapshots.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
		snapshots.WithTopicPrefix(e.snaps), snapshots.WithEventsTopicPrefix(e.events), snapshots.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (e *env) repo(t testing.TB, opts ...aggregate.Option) *aggregate.Repository[Account] {
	r, err := aggregate.NewRepository(e.log, accountType(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func (e *env) snapshotter(t testing.TB, opts ...snapshotter.Option) *snapshotter.Snapshotter {
	base := []snapshotter.Option{
		snapshotter.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(t)...)),
		snapshotter.WithEventsTopicPrefix(e.events), snapshotter.WithSnapshotsTopicPrefix(e.snaps),
		snapshotter.WithReplicationFactor(1), snapshotter.WithThreshold(10),
		snapshotter.WithCheckpointInterval(300 * time.Millisecond),
	}
	s, err := snapshotter.New(e.group, []snapshotter.Type{snapshotter.Register(accountType(t))}, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs s until the test ends (or stop is called) and returns stop.
func start(t testing.TB, s *snapshotter.Snapshotter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Errorf("Run did not return within a minute of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func endOffsets(t testing.TB, topic string) map[int32]int64 {
	adm := kadm.NewClient(kafkatest.Client(t))
	ends, err := adm.ListEndOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// caughtUp waits until the snapshotter has checkpointed every partition at
// its end.
func caughtUp(t testing.TB, e *env, s *snapshotter.Snapshotter) {
	t.Helper()
	probe := map[int32]uuid.UUID{} // an aggregate id of each partition
	for int32(len(probe)) < e.partitions {
		id := uuid.New()
		probe[log.Partition(id, e.partitions)] = id
	}
	waitFor(t, "checkpoints at the end of every partition", 2*time.Minute, func() bool {
		st := s.Stats()
		if len(st.Partitions) != int(e.partitions) {
			return false
		}
		for _, p := range st.Partitions {
			if p.Checkpoint != p.Next {
				return false
			}
			// Nothing but transaction markers after the checkpoint.
			tail, err := e.log.Read(ctxT(t), "Account", probe[p.Partition], p.Checkpoint)
			if err != nil || tail.Scanned != 0 {
				return false
			}
		}
		return true
	})
}

// writeTraffic saves n random deposits spread over the given accounts from
// several goroutines, and returns the accounts' expected states.
func writeTraffic(t testing.TB, repo *aggregate.Repository[Account], ids []uuid.UUID, saves int) {
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < saves; i++ {
				a, err := repo.Load(ctxT(t), id)
				if errors.Is(err, aggregate.ErrNotFound) {
					a, err = repo.New(id), nil
				}
				if err != nil {
					t.Error(err)
					return
				}
				for k := 0; k < 1+i%3; k++ {
					if err := a.Apply(Deposited{Amount: int64(i + k)}); err != nil {
						t.Error(err)
						return
					}
				}
				if err := repo.Save(ctxT(t), a); err != nil && !errors.Is(err, aggregate.ErrConflict) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// checkLoads loads every aggregate through a fresh snapshot store and
// checks the load against a full replay and its cost against the records
// written after its partition's checkpoint.
func checkLoads(t testing.TB, e *env, ids []uuid.UUID) (maxRead uint64) {
	t.Helper()
	return checkLoadsFrom(t, e, ids, e.store(t))
}

// loadStore is a snapshot store loads read checkpoints from.
type loadStore interface {
	snapshots.Store
	snapshots.CheckpointReader
}

// checkLoadsFrom is checkLoads with the snapshots and checkpoints of store.
func checkLoadsFrom(t testing.TB, e *env, ids []uuid.UUID, store loadStore) (maxRead uint64) {
	t.Helper()
	repo := e.repo(t, aggregate.WithSnapshotStore(store))
	replayer := e.repo(t)
	ends := endOffsets(t, e.events+"Account")
	for _, id := range ids {
		cp, err := store.CheckpointOf(ctxT(t), "Account", id)
		if err != nil {
			t.Fatalf("%s: no checkpoint: %v", id, err)
		}
		before := repo.Stats().RecordsScanned
		got, err := repo.Load(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		read := repo.Stats().RecordsScanned - before
		want, err := replayer.Load(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version() != want.Version() || got.State() != want.State() {
			t.Fatalf("%s: loaded v%d %+v, full replay v%d %+v", id, got.Version(), got.State(), want.Version(), want.State())
		}
		if after := ends[cp.EventsPartition] - cp.Offset; read > uint64(max(after, 1)) {
			t.Fatalf("%s: the load read %d records, %d were written after the checkpoint at %d", id, read, after, cp.Offset)
		}
		maxRead = max(maxRead, read)
	}
	return maxRead
}

func ids(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.New()
	}
	return out
}

// TestEndToEnd: appends through the library while the snapshotter runs;
// afterwards every load reads at most the records after its partition's
// checkpoint and equals a full replay, and the repositories' own snapshot
// writes are refused in the snapshotter's topic.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t, 3)
	// Its store and log read through a client of the application's.
	s := e.snapshotter(t, snapshotter.WithClient(kafkatest.Client(t)))
	start(t, s)
	waitFor(t, "ready", 60*time.Second, s.Ready)
	var failures []aggregate.SnapshotFailure
	var mu sync.Mutex
	app := e.repo(t, aggregate.WithSnapshotStore(e.store(t)), aggregate.WithSnapshotThreshold(5),
		aggregate.WithHooks(aggregate.Hooks{SnapshotFailed: func(f aggregate.SnapshotFailure) { mu.Lock(); failures = append(failures, f); mu.Unlock() }}))
	accounts := ids(24)
	writeTraffic(t, app, accounts, 15)
	caughtUp(t, e, s)
	maxRead := checkLoads(t, e, accounts)
	st := s.Stats()
	t.Logf("snapshotter: %d snapshots, %d checkpoints, %d events applied, %d aborted; loads read at most %d records",
		st.SnapshotsTotal, st.Checkpoints, st.EventsApplied, st.Aborted, maxRead)
	if st.SnapshotsTotal == 0 || st.ApplyFailures != 0 {
		t.Fatalf("stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) == 0 || !errors.Is(failures[0].Err, snapshots.ErrOwned) {
		t.Fatalf("the repository's own snapshots were not refused: %d failures %v", len(failures), failures)
	}
}

// TestApplyFailure: an aggregate whose event cannot be applied is reported
// and no longer snapshotted, the partition's checkpoint keeps moving, and
// loads of that aggregate fail loudly while the others load.
func TestApplyFailure(t *testing.T) {
	e := newEnv(t, 1)
	var mu sync.Mutex
	var failed []uuid.UUID
	s := e.snapshotter(t, snapshotter.WithHooks(snapshotter.Hooks{ApplyFailed: func(_ string, _ int32, _ int64, id uuid.UUID, _ error) {
		mu.Lock()
		failed = append(failed, id)
		mu.Unlock()
	}}))
	start(t, s)
	app := e.repo(t)
	good, bad := uuid.New(), uuid.New()
	writeTraffic(t, app, []uuid.UUID{good, bad}, 3)
	// A deposit the snapshotter's apply refuses, appended to the log
	// directly (the application's check was bypassed).
	b, err := app.Load(ctxT(t), bad)
	if err != nil {
		t.Fatal(err)
	}
	poison := log.Event{ID: uuid.New(), Type: "Deposited", AggregateType: "Account", AggregateID: bad, AggregateVersion: b.Version() + 1,
		OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: []byte(`{"amount":-5}`)}
	if _, err := e.log.Append(ctxT(t), "Account", bad, log.Expected{Version: b.Version()}, []log.Event{poison}); err != nil {
		t.Fatal(err)
	}
	writeTraffic(t, app, []uuid.UUID{good}, 3)
	caughtUp(t, e, s)
	mu.Lock()
	if len(failed) != 1 || failed[0] != bad {
		t.Fatalf("apply failures reported for %v, want %s", failed, bad)
	}
	mu.Unlock()
	store := e.store(t)
	cp, err := store.CheckpointOf(ctxT(t), "Account", bad)
	if err != nil || cp.Covers(bad) || !cp.Covers(good) {
		t.Fatalf("checkpoint %+v (%v) should list %s as unsnapshotted", cp, err, bad)
	}
	repo := e.repo(t, aggregate.WithSnapshotStore(store))
	if _, err := repo.Load(ctxT(t), bad); err == nil {
		t.Fatal("the load of an aggregate with an event that does not apply succeeded")
	}
	checkLoads(t, e, []uuid.UUID{good})
}

// TestPoisonRecords: a record of the events topic that is not a snaplog
// event is reported and skipped as every reader skips it (it belongs to no
// aggregate, whatever its key); an event of a type the aggregate does not
// register is reported and its aggregate stops being snapshotted. The
// partition's checkpoint keeps moving past both.
func TestPoisonRecords(t *testing.T) {
	e := newEnv(t, 1)
	var mu sync.Mutex
	reported := map[uuid.UUID]int{}
	s := e.snapshotter(t, snapshotter.WithHooks(snapshotter.Hooks{ApplyFailed: func(_ string, _ int32, _ int64, id uuid.UUID, _ error) {
		mu.Lock()
		reported[id]++
		mu.Unlock()
	}}))
	start(t, s)
	app := e.repo(t)
	garbled, unknown, good := uuid.New(), uuid.New(), uuid.New()
	writeTraffic(t, app, []uuid.UUID{garbled, unknown, good}, 2)
	raw := kafkatest.Client(t)
	if err := raw.ProduceSync(ctxT(t), &kgo.Record{Topic: e.events + "Account", Key: log.Key(garbled), Value: []byte("{not an event")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	u, err := app.Load(ctxT(t), unknown)
	if err != nil {
		t.Fatal(err)
	}
	closed := log.Event{ID: uuid.New(), Type: "AccountClosed", AggregateType: "Account", AggregateID: unknown, AggregateVersion: u.Version() + 1,
		OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: []byte(`{}`)}
	if _, err := e.log.Append(ctxT(t), "Account", unknown, log.Expected{Version: u.Version()}, []log.Event{closed}); err != nil {
		t.Fatal(err)
	}
	writeTraffic(t, app, []uuid.UUID{good}, 2)
	caughtUp(t, e, s)
	mu.Lock()
	if reported[uuid.Nil] != 1 || reported[garbled] != 0 || reported[unknown] != 1 || reported[good] != 0 {
		t.Fatalf("reported %v", reported)
	}
	mu.Unlock()
	cp, err := e.store(t).CheckpointOf(ctxT(t), "Account", good)
	if err != nil || !cp.Covers(garbled) || cp.Covers(unknown) || !cp.Covers(good) {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
	checkLoads(t, e, []uuid.UUID{good, garbled})
}

// TestKeysInOtherSpellings: records with valid snaplog headers under an
// aggregate's id in upper case, or without dashes, in the aggregate's
// partition, claiming its next version before its real next event, are no
// aggregate's events: they are reported, the aggregate's snapshot is the
// replay of its real events, and loads equal a full replay. Before the
// canonical key was the definition, the snapshotter applied the impostor
// and loads returned a state no replay gives.
func TestKeysInOtherSpellings(t *testing.T) {
	e := newEnv(t, 1)
	var mu sync.Mutex
	reported := 0
	s := e.snapshotter(t, snapshotter.WithHooks(snapshotter.Hooks{ApplyFailed: func(_ string, _ int32, _ int64, id uuid.UUID, _ error) {
		mu.Lock()
		reported++
		mu.Unlock()
	}}))
	start(t, s)
	app := e.repo(t)
	id := uuid.New()
	writeTraffic(t, app, []uuid.UUID{id}, 2)
	a, err := app.Load(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	raw := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, key := range []string{strings.ToUpper(id.String()), strings.ReplaceAll(id.String(), "-", "")} {
		impostor := log.Event{ID: uuid.New(), Type: "Deposited", AggregateType: "Account", AggregateID: id,
			AggregateVersion: a.Version() + 1, Expected: a.Version(), Save: uuid.New(), SaveEvents: 1,
			OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: []byte(`{"amount":1000}`)}
		r := log.Record(e.events+"Account", impostor)
		r.Key = []byte(key)
		if err := raw.ProduceSync(ctxT(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Apply(Deposited{Amount: 1}); err != nil {
		t.Fatal(err)
	}
	if err := app.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, e, s)
	mu.Lock()
	if reported != 2 {
		t.Fatalf("%d records reported, want the 2 impostors", reported)
	}
	mu.Unlock()
	snap, err := e.store(t).Get(ctxT(t), "Account", id)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != a.Version() || stateIn(t, snap).Balance != a.State().Balance {
		t.Fatalf("snapshot v%d %+v, want v%d balance %d", snap.Version, stateIn(t, snap), a.Version(), a.State().Balance)
	}
	checkLoads(t, e, []uuid.UUID{id})
}

// TestIncompleteSave: the first record of a two-event save whose second
// record comes much later (a producer that died between them) holds
// checkpoints back for one interval at most, loads of its aggregate equal
// a full replay all along, and once the second record lands the save is
// part of the aggregate for the snapshotter and for loads alike.
func TestIncompleteSave(t *testing.T) {
	e := newEnv(t, 1)
	s := e.snapshotter(t)
	start(t, s)
	app := e.repo(t)
	half, other := uuid.New(), uuid.New()
	writeTraffic(t, app, []uuid.UUID{half, other}, 2)
	a, err := app.Load(ctxT(t), half)
	if err != nil {
		t.Fatal(err)
	}
	save := uuid.New()
	rec := func(i int) *kgo.Record {
		return log.Record(e.events+"Account", log.Event{ID: uuid.New(), Type: "Deposited", AggregateType: "Account", AggregateID: half,
			AggregateVersion: a.Version() + int64(i) + 1, Expected: a.Version(), Save: save, SaveEvents: 2,
			OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: []byte(`{"amount":100}`)})
	}
	raw := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	first := rec(0)
	if err := raw.ProduceSync(ctxT(t), first).FirstErr(); err != nil {
		t.Fatal(err)
	}
	writeTraffic(t, app, []uuid.UUID{other}, 3)
	store := e.store(t)
	waitFor(t, "a checkpoint past the incomplete save", 30*time.Second, func() bool {
		cp, err := store.CheckpointOf(ctxT(t), "Account", other)
		return err == nil && cp.Offset > first.Offset+1 && !cp.Covers(half)
	})
	checkLoads(t, e, []uuid.UUID{other})
	want, err := e.repo(t).Load(ctxT(t), half)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.repo(t, aggregate.WithSnapshotStore(store)).Load(ctxT(t), half); err != nil || got.Version() != a.Version() || got.State() != want.State() {
		t.Fatalf("load with the save incomplete: %v %v, want v%d %+v", got, err, a.Version(), want.State())
	}
	if err := raw.ProduceSync(ctxT(t), rec(1)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, e, s)
	waitFor(t, "a checkpoint covering the aggregate again", 30*time.Second, func() bool {
		cp, err := store.CheckpointOf(ctxT(t), "Account", half)
		return err == nil && cp.Covers(half)
	})
	checkLoads(t, e, []uuid.UUID{half, other})
	got, err := e.repo(t).Load(ctxT(t), half)
	if err != nil || got.Version() != a.Version()+2 {
		t.Fatalf("after the save's second record: %v %v, want version %d", got, err, a.Version()+2)
	}
}

// TestForgedAndDeletedSnapshots: with the snapshotter stopped, one
// aggregate's snapshot is overwritten by a validly encoded one claiming
// version 1000 at the real position, another's is deleted by a tombstone.
// A new snapshotter of the group does not take either topic content on
// trust: it rebuilds both aggregates from the log, snapshots them again,
// and loads afterwards read only the records after the checkpoint and
// equal a full replay. Before, the forged version stuck (every later event
// was rejected as expecting a version not reached) and the deleted
// aggregate restarted at version 0: neither was snapshotted again.
func TestForgedAndDeletedSnapshots(t *testing.T) {
	e := newEnv(t, 1)
	s := e.snapshotter(t)
	stop := start(t, s)
	app := e.repo(t)
	forged, deleted := uuid.New(), uuid.New()
	accounts := []uuid.UUID{forged, deleted}
	writeTraffic(t, app, accounts, 6)
	caughtUp(t, e, s)
	stop()

	snap, err := e.store(t).Get(ctxT(t), "Account", forged)
	if err != nil {
		t.Fatal(err)
	}
	c := snapshots.NewAvroCodec()
	if err := c.Register("Account", accountSchema); err != nil {
		t.Fatal(err)
	}
	snap.Version = 1000
	value, err := c.Encode(snap)
	if err != nil {
		t.Fatal(err)
	}
	raw := kafkatest.Client(t)
	for _, r := range []*kgo.Record{
		{Topic: e.snaps + "Account", Partition: 0, Key: log.Key(forged), Value: value},
		{Topic: e.snaps + "Account", Partition: 0, Key: log.Key(deleted)},
	} {
		if err := raw.ProduceSync(ctxT(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	s2 := e.snapshotter(t)
	start(t, s2)
	writeTraffic(t, app, accounts, 3)
	caughtUp(t, e, s2)
	if st := s2.Stats(); st.Replays != 2 || st.ApplyFailures != 0 {
		t.Fatalf("stats %+v, want the two aggregates rebuilt from the log", st)
	}
	checkLoads(t, e, accounts)
	store := e.store(t)
	for _, id := range accounts {
		want, err := app.Load(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := store.Get(ctxT(t), "Account", id); err != nil || got.Version != want.Version() {
			t.Fatalf("%s: snapshot %v, %v; want version %d", id, got, err, want.Version())
		}
	}
}

// TestDeletedSnapshotIsWrittenAgain: a tombstone written into a partition
// the running snapshotter owns, for an aggregate it no longer holds in
// memory, makes it rebuild the aggregate from the log and write the
// snapshot again, so the checkpoint's promise (a snapshot of every
// aggregate with events before it) holds again. Before, the snapshot stayed
// deleted until the aggregate's next event.
func TestDeletedSnapshotIsWrittenAgain(t *testing.T) {
	e := newEnv(t, 1)
	s := e.snapshotter(t, snapshotter.WithMaxStates(1))
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
	store := e.store(t)
	if got, err := store.Get(ctxT(t), "Account", gone); err != nil || got.Version != want.Version() {
		t.Fatalf("snapshot before the tombstone: %v %v", got, err)
	}
	replaysBefore := s.Stats().Replays
	if err := kafkatest.Client(t).ProduceSync(ctxT(t), &kgo.Record{Topic: e.snaps + "Account", Partition: 0, Key: log.Key(gone)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the aggregate rebuilt from the log", 30*time.Second, func() bool { return s.Stats().Replays > replaysBefore })
	waitFor(t, "the deleted snapshot written again", 30*time.Second, func() bool {
		if err := store.Caught(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		got, err := store.Get(ctxT(t), "Account", gone)
		return err == nil && got.Version == want.Version()
	})
	checkLoads(t, e, []uuid.UUID{gone, other})
}

// TestRefusesEventsTopicThatCanLoseEvents: an events topic the event log
// refuses (compacted: old events would go) makes Run return at once with
// log.ErrTopicConfig naming the topic and the setting, rather than wait for
// ever.
func TestRefusesEventsTopicThatCanLoseEvents(t *testing.T) {
	run := uuid.NewString()[:8]
	e := &env{events: "st." + run + ".events.", snaps: "st." + run + ".snapshots.", group: "snapshotter-" + run, partitions: 1}
	kafkatest.DeleteTopicsOnCleanup(t, e.events+"Account", e.snaps+"Account")
	if _, err := kafkatest.Admin(t).CreateTopic(ctxT(t), 1, 1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, e.events+"Account"); err != nil {
		t.Fatal(err)
	}
	s := e.snapshotter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.Run(ctx)
	if !errors.Is(err, log.ErrTopicConfig) || !strings.Contains(err.Error(), e.events+"Account") || !strings.Contains(err.Error(), "cleanup.policy") {
		t.Fatalf("Run on a compacted events topic: %v, want log.ErrTopicConfig naming the topic and cleanup.policy", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run waited until its context ended")
	}
}

// TestPolicy: between checkpoints the snapshotter snapshots when its
// policy says so (here a predicate on the state after a save), and a
// policy it cannot evaluate is refused.
func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		p    aggregate.Policy
		want string
	}{
		{aggregate.AfterCostlyLoad(5, 0), "loads no aggregate"},
		{aggregate.AnyOf(aggregate.Every(10), aggregate.AfterCostlyLoad(0, time.Second)), "loads no aggregate"},
		{aggregate.Every(0), "WithPolicy: Every: n must be positive"},
		{nil, "WithPolicy: nil policy"},
	} {
		_, err := snapshotter.New("g", []snapshotter.Type{snapshotter.Register(accountType(t))},
			snapshotter.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")), snapshotter.WithPolicy(tc.p))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithPolicy(%v): %v, want an error saying %q", tc.p, err, tc.want)
		}
	}

	e := newEnv(t, 1)
	s := e.snapshotter(t, snapshotter.WithCheckpointInterval(time.Hour),
		snapshotter.WithPolicy(aggregate.When(func(_ aggregate.Envelope, a Account) bool { return a.Balance >= 100 })))
	start(t, s)
	waitFor(t, "ready", 60*time.Second, s.Ready)
	app := e.repo(t)
	a := app.New(uuid.New())
	deposit := func() {
		t.Helper()
		if err := a.Apply(Deposited{Amount: 30}); err != nil {
			t.Fatal(err)
		}
		if err := app.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		deposit() // balance 30, 60, 90
	}
	store := e.store(t)
	time.Sleep(2 * time.Second) // many of the snapshotter's flushes of due snapshots
	if snap, err := store.Get(ctxT(t), "Account", a.ID()); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("before the policy was due: snapshot %v, %v", snap, err)
	}
	deposit() // balance 120
	waitFor(t, "the snapshot the policy made due", 30*time.Second, func() bool {
		snap, err := store.Get(ctxT(t), "Account", a.ID())
		return err == nil && snap.Version == 4
	})
}
