package aggregate_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
	"github.com/snaplog/snaplog/snapshots"
)

// errLost is the error a lossyLog returns instead of an Append's verdict.
var errLost = errors.New("append outcome lost: context canceled")

// lossyLog is a real event log whose next Appends lose their verdict: the
// append runs to its end on the broker, and the caller gets an error
// instead of the result, as when a response is lost or a deadline passes
// after the records landed (or lost the race).
type lossyLog struct {
	aggregate.EventLog
	lose atomic.Int32
}

func (l *lossyLog) Append(ctx context.Context, typ string, id uuid.UUID, exp log.Expected, evs []log.Event) ([]log.Event, error) {
	out, err := l.EventLog.Append(ctx, typ, id, exp, evs)
	if l.lose.Add(-1) >= 0 {
		return nil, errLost
	}
	return out, err
}

// lossySetup returns a topic, a lossy log on it, a repository on that and
// an account saved at version 1.
func lossySetup(t *testing.T) (*kafkaSetup, *lossyLog, *aggregate.Repository[Account], uuid.UUID) {
	t.Helper()
	ks := newKafkaSetup(t, 1, nil)
	lossy := &lossyLog{EventLog: ks.log}
	repo := newRepo(t, lossy)
	a := repo.New(uuid.New())
	grow(t, a, 1)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	return ks, lossy, repo, a.ID()
}

// winners returns the aggregate's accepted events, read with the winner
// rule from the start of the log.
func winners(t *testing.T, l aggregate.EventLog, id uuid.UUID) []log.Event {
	t.Helper()
	tail, err := l.Read(ctxT(t), "Account", id, 0)
	if err != nil {
		t.Fatal(err)
	}
	return logtest.Winners(t, tail.Events)
}

// TestKafkaRetryAfterUnknownOutcome: a Save whose records landed but whose
// caller got an error instead of the verdict, followed by more events and
// another Save, stores every event once: the retry of the landed save is
// recognised as the same save, and the later events follow it. Before
// save ids, the second Save reported a conflict while every reader took its
// new event as the next version, so a caller who reloaded and retried the
// command applied it twice.
func TestKafkaRetryAfterUnknownOutcome(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lost   int // events in the save whose verdict is lost
		more   int // events applied after it
		wantOp int64
	}{
		{"one event", 1, 1, 3},
		{"a transaction whose commit response was lost", 2, 1, 4},
		{"no new events: a plain retry", 2, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, lossy, repo, id := lossySetup(t)
			a, err := repo.Load(ctxT(t), id)
			if err != nil {
				t.Fatal(err)
			}
			grow(t, a, tc.lost)
			lossy.lose.Store(1)
			if err := repo.Save(ctxT(t), a); !errors.Is(err, errLost) || errors.Is(err, aggregate.ErrConflict) {
				t.Fatalf("Save with a lost verdict: %v", err)
			}
			grow(t, a, tc.more)
			if err := repo.Save(ctxT(t), a); err != nil {
				t.Fatalf("Save after the unknown outcome: %v", err)
			}
			if a.CommittedVersion() != tc.wantOp || len(a.Uncommitted()) != 0 {
				t.Fatalf("root at committed version %d with %d unsaved events, want %d and 0", a.CommittedVersion(), len(a.Uncommitted()), tc.wantOp)
			}
			got, err := newRepo(t, ks.log).Load(ctxT(t), a.ID())
			if err != nil {
				t.Fatal(err)
			}
			if got.Version() != tc.wantOp || got.State().Ops != tc.wantOp {
				t.Fatalf("loaded version %d with %d operations, want %d", got.Version(), got.State().Ops, tc.wantOp)
			}
			w := winners(t, ks.log, a.ID())
			seen := map[uuid.UUID]bool{}
			for _, e := range w {
				if seen[e.ID] {
					t.Fatalf("event %s applied twice", e.ID)
				}
				seen[e.ID] = true
			}
		})
	}
}

// TestKafkaRetryOfASaveThatLost: a save that lost its race, whose caller
// got an error instead of the conflict, is reported as a conflict when
// retried, and none of its events, nor those applied after it, is stored.
func TestKafkaRetryOfASaveThatLost(t *testing.T) {
	ks, lossy, repo, id := lossySetup(t)
	mine, err := repo.Load(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := repo.Load(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	grow(t, theirs, 1)
	if err := repo.Save(ctxT(t), theirs); err != nil {
		t.Fatal(err)
	}
	grow(t, mine, 2)
	lossy.lose.Store(1)
	if err := repo.Save(ctxT(t), mine); !errors.Is(err, errLost) {
		t.Fatalf("Save with a lost verdict: %v", err)
	}
	grow(t, mine, 1)
	var ce *aggregate.ConflictError
	if err := repo.Save(ctxT(t), mine); !errors.As(err, &ce) || ce.Expected != 1 || ce.Actual != 2 {
		t.Fatalf("retry of a save that lost: %v, want a conflict expecting 1 at 2", err)
	}
	w := winners(t, ks.log, id)
	if len(w) != 2 || w[1].Position != theirs.Position() {
		t.Fatalf("history of %d events, want 2 ending with the rival's at %s", len(w), theirs.Position())
	}
	for _, e := range mine.Uncommitted() {
		for _, got := range w {
			if got.ID == e.ID {
				t.Fatalf("event %s of the losing save is in the log's history", e.ID)
			}
		}
	}
}

// rawEvent is a snaplog event of Account built by hand, as a producer in
// another language would write it.
func rawEvent(t *testing.T, id, save uuid.UUID, expected int64, saveEvents, index int, v any) log.Event {
	t.Helper()
	payload, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	name := "Deposited"
	if _, ok := v.(Opened); ok {
		name = "Opened"
	}
	return log.Event{ID: uuid.New(), Type: name, AggregateType: "Account", AggregateID: id,
		AggregateVersion: expected + int64(index) + 1, OccurredAt: time.Now().UTC(), ContentType: "application/json",
		Payload: payload, Expected: expected, Save: save, SaveEvents: saveEvents}
}

// TestKafkaRecordBetweenASavesRecords: a committed two-event save S (v1,
// v2, expected 0) and, between its two records, a save T claiming v2 with
// expected 1 (what a writer reading with read_uncommitted sees, or a
// producer in another language). S is the aggregate's history, whole, and
// T's Append reports the conflict every reader decides. Before the save's
// event count was in its records, every reader took S's v1 and T's v2, and
// T's Append reported success.
func TestKafkaRecordBetweenASavesRecords(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	topic := ks.events + "Account"
	id, save := uuid.New(), uuid.New()
	s0 := rawEvent(t, id, save, 0, 2, 0, Opened{Owner: "ada"})
	s1 := rawEvent(t, id, save, 0, 2, 1, Deposited{Amount: 5})
	txn := kafkatest.Client(t, kgo.TransactionalID("snaplog-test-"+uuid.NewString()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txn.ProduceSync(ctxT(t), log.Record(topic, s0)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// T is appended through the log while S is open; its check waits for
	// S to end.
	type result struct {
		out []log.Event
		err error
	}
	done := make(chan result, 1)
	tEvent := logtest.Events("Account", id, 1, 1)
	go func() {
		out, err := ks.log.Append(ctxT(t), "Account", id, log.Expected{Version: 1}, tEvent)
		done <- result{out, err}
	}()
	adm := kadm.NewClient(txn)
	for end := int64(0); end < 2; {
		offs, err := adm.ListEndOffsets(ctxT(t), topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup(topic, 0)
		end = o.Offset
		time.Sleep(10 * time.Millisecond)
	}
	if err := txn.ProduceSync(ctxT(t), log.Record(topic, s1)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctxT(t), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	res := <-done
	var ce *log.ConflictError
	if !errors.As(res.err, &ce) {
		t.Fatalf("T's Append between S's records: %v (%d events), want a conflict", res.err, len(res.out))
	}
	w := winners(t, ks.log, id)
	if len(w) != 2 || w[0].ID != s0.ID || w[1].ID != s1.ID {
		t.Fatalf("history %v, want S's two events", w)
	}
	got, err := newRepo(t, ks.log).Load(ctxT(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != 2 || got.State().Balance != 5 {
		t.Fatalf("loaded version %d balance %d, want 2 and 5", got.Version(), got.State().Balance)
	}
}

// TestKafkaTombstoneUnderACheckpoint: an aggregate whose events all lie
// before a checkpoint and whose snapshot was deleted (a tombstone, through
// the store's Delete) loads at its version, not as not found. Before, "no
// snapshot under a checkpoint" was read as "no events before it" and the
// load returned ErrNotFound for an aggregate with events.
func TestKafkaTombstoneUnderACheckpoint(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	writer := newRepo(t, ks.log)
	gone := writer.New(uuid.New())
	grow(t, gone, 2)
	if err := writer.Save(ctxT(t), gone); err != nil {
		t.Fatal(err)
	}
	sidecar := ks.store(t, snapshots.WithOwner("snapshotter"))
	snap := snapshots.Snapshot{AggregateID: gone.ID(), AggregateType: "Account", Version: gone.Version(), SchemaVersion: 1, CreatedAt: time.Now(),
		Position: gone.Position(), Save: mustSave(t, ks, gone), State: accountState(t, gone.State())}
	if err := sidecar.Put(ctxT(t), snap); err != nil {
		t.Fatal(err)
	}
	if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: endOffset(t, ks)}); err != nil {
		t.Fatal(err)
	}
	if err := sidecar.Delete(ctxT(t), "Account", gone.ID()); !errors.Is(err, snapshots.ErrOwned) {
		t.Fatalf("Delete on a partition a snapshotter checkpoints: %v, want ErrOwned", err)
	}
	// A tombstone written all the same.
	if err := kafkatest.Client(t).ProduceSync(ctxT(t), &kgo.Record{Topic: ks.snaps + "Account", Partition: 0, Key: log.Key(gone.ID())}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)))
	got, err := repo.Load(ctxT(t), gone.ID())
	if err != nil {
		t.Fatalf("load of an aggregate with 2 events whose snapshot was deleted under a checkpoint: %v", err)
	}
	if got.Version() != 2 || got.State() != gone.State() {
		t.Fatalf("loaded v%d %+v, want v2 %+v", got.Version(), got.State(), gone.State())
	}
	if _, err := repo.Load(ctxT(t), uuid.New()); !errors.Is(err, aggregate.ErrNotFound) {
		t.Fatalf("unknown aggregate under a checkpoint: %v", err)
	}
}

// TestKafkaInflatedSnapshotUnderACheckpoint: a validly encoded snapshot
// claiming version 1000 at the real position and save of the aggregate's
// last event (v10), under a checkpoint past it. Before, the load took the
// snapshot's version on the checkpoint's word: it returned v1000, a save on
// top of it was acknowledged and no replay showed it. Now the load confirms
// the snapshot's last event in the log, counts the miss, replays, and the
// next real snapshot of the aggregate is used again.
func TestKafkaInflatedSnapshotUnderACheckpoint(t *testing.T) {
	ks := newKafkaSetup(t, 1, nil)
	writer := newRepo(t, ks.log)
	a := writer.New(uuid.New())
	for range 5 {
		grow(t, a, 2)
		if err := writer.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
	}
	stateOf := func(a *aggregate.Root[Account]) []byte {
		return accountState(t, a.State())
	}
	real := snapshots.Snapshot{AggregateID: a.ID(), AggregateType: "Account", Version: a.Version(), SchemaVersion: 1, CreatedAt: time.Now(),
		Position: a.Position(), Save: mustSave(t, ks, a), State: stateOf(a)}
	sidecar := ks.store(t, snapshots.WithOwner("snapshotter"))
	if err := sidecar.Put(ctxT(t), real); err != nil {
		t.Fatal(err)
	}
	if err := sidecar.PutCheckpoint(ctxT(t), "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: endOffset(t, ks)}); err != nil {
		t.Fatal(err)
	}
	raw := kafkatest.Client(t)
	produce := func(s snapshots.Snapshot) {
		t.Helper()
		v, err := ks.codec(t).Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.ProduceSync(ctxT(t), &kgo.Record{Topic: ks.snaps + "Account", Partition: 0, Key: log.Key(s.AggregateID), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	forged := real
	forged.Version = 1000
	produce(forged)

	repo := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)))
	got, err := repo.Load(ctxT(t), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != 10 || got.State() != a.State() {
		t.Fatalf("loaded v%d %+v under a forged v1000 snapshot, want v10 %+v", got.Version(), got.State(), a.State())
	}
	if st := repo.Stats(); st.Misses[aggregate.MissPosition] != 1 || st.LoadsFromSnapshot != 0 {
		t.Fatalf("stats %+v, want one position miss", st)
	}
	grow(t, got, 1)
	if err := repo.Save(ctxT(t), got); err != nil {
		t.Fatal(err)
	}
	replayed, err := newRepo(t, ks.log).Load(ctxT(t), a.ID())
	if err != nil || replayed.Version() != 11 || replayed.State() != got.State() {
		t.Fatalf("full replay after the save: %v, %v; want v11 %+v", replayed, err, got.State())
	}

	// The next real snapshot, written after the forged one, is used.
	next := real
	next.Version, next.Position, next.Save, next.State = 11, got.Position(), mustSave(t, ks, got), stateOf(got)
	produce(next)
	fresh := newRepo(t, ks.log, aggregate.WithSnapshotStore(ks.store(t)))
	if got, err := fresh.Load(ctxT(t), a.ID()); err != nil || got.Version() != 11 || got.State() != replayed.State() {
		t.Fatalf("load after the real snapshot: %v, %v", got, err)
	}
	if st := fresh.Stats(); st.LoadsFromSnapshot != 1 {
		t.Fatalf("stats %+v, want the load from the real snapshot", st)
	}
}
