package aggregate_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

func TestThresholdRule(t *testing.T) {
	for _, tc := range []struct {
		name  string
		n     int64
		saves []int // events per save
		want  []int64
	}{
		{"lands on the multiple", 5, []int{5}, []int64{5}},
		{"one event at a time", 5, []int{1, 1, 1, 1, 1, 1}, []int64{5}},
		{"below the threshold", 5, []int{4}, nil},
		{"never lands on a multiple", 5, []int{3, 3, 3, 3}, []int64{6, 12}},
		{"crosses several multiples in one save", 5, []int{12}, []int64{12}},
		{"crosses several, then one", 3, []int{7, 1, 1}, []int64{7, 9}},
		{"two at a time, threshold 3", 3, []int{2, 2, 2, 2, 2}, []int64{4, 6, 10}},
		{"threshold 1 snapshots every save", 1, []int{1, 2, 1}, []int64{1, 3, 4}},
		{"seed performance example", 50, []int{201}, []int64{201}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newRecordingStore()
			repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(tc.n))
			a := repo.New(uuid.New())
			for _, k := range tc.saves {
				grow(t, a, k)
				if err := repo.Save(ctxT(t), a); err != nil {
					t.Fatal(err)
				}
			}
			if got := store.versions(); !slices.Equal(got, tc.want) {
				t.Fatalf("snapshots at %v, want %v", got, tc.want)
			}
		})
	}
}

func TestThresholdMustBePositive(t *testing.T) {
	for _, n := range []int64{0, -1, -50} {
		_, err := aggregate.NewRepository(newLog(t), accountType(t, 1),
			aggregate.WithSnapshotStore(snapshots.NewMemory()), aggregate.WithSnapshotThreshold(n))
		if err == nil || !strings.Contains(err.Error(), "threshold must be positive") {
			t.Fatalf("threshold %d: err = %v", n, err)
		}
	}
}

func TestNewRepositoryReportsEveryProblem(t *testing.T) {
	typ := accountType(t, 1)
	typ.Name, typ.Apply = "", nil
	_, err := aggregate.NewRepository[Account](nil, typ,
		aggregate.WithSnapshotThreshold(0), aggregate.WithMaxPendingSnapshots(-1), aggregate.WithSnapshotMode(aggregate.SnapshotBackground))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"nil event log", "empty Name", "nil Apply", "threshold must be positive",
		"WithMaxPendingSnapshots", "WithSnapshotThreshold needs WithSnapshotStore", "SnapshotBackground needs WithSnapshotStore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestSnapshotModeValues(t *testing.T) {
	var zero aggregate.SnapshotMode
	if zero != aggregate.SnapshotSync {
		t.Fatal("the zero SnapshotMode is not SnapshotSync")
	}
	seen := map[string]bool{}
	for _, m := range []aggregate.SnapshotMode{aggregate.SnapshotSync, aggregate.SnapshotBackground, aggregate.SnapshotManual} {
		seen[m.String()] = true
	}
	if len(seen) != 3 || !seen["sync"] || !seen["background"] || !seen["manual"] {
		t.Fatalf("mode names %v", seen)
	}
}

func TestSyncModeWritesInsideSave(t *testing.T) {
	store := newRecordingStore()
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(5))
	a := repo.New(uuid.New())
	grow(t, a, 5)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Get(ctxT(t), "Account", a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 5 || snap.SchemaVersion != 1 || snap.Position != a.Position() || stateIn(t, snap).Balance != 2+3+4+5 {
		t.Fatalf("snapshot %v state %v", snap, stateIn(t, snap))
	}
	if repo.PendingSnapshots() != 0 {
		t.Fatal("sync mode left pending snapshots")
	}
}

func TestSyncSnapshotFailureDoesNotFailSave(t *testing.T) {
	store := newRecordingStore()
	store.putErr = errBoom
	var buf bytes.Buffer
	var mu sync.Mutex
	var failures []aggregate.SnapshotFailure
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(2),
		aggregate.WithLogger(slog.New(slog.NewJSONHandler(&buf, nil))),
		aggregate.WithHooks(aggregate.Hooks{SnapshotFailed: func(f aggregate.SnapshotFailure) {
			mu.Lock()
			failures = append(failures, f)
			mu.Unlock()
		}}))
	a := repo.New(uuid.New())
	grow(t, a, 3)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatalf("save failed with the snapshot: %v", err)
	}
	if a.CommittedVersion() != 3 {
		t.Fatalf("committed version %d", a.CommittedVersion())
	}
	if st := repo.Stats(); st.SnapshotsFailed != 1 || st.SnapshotsWritten != 0 {
		t.Fatalf("stats %+v", st)
	}
	if len(failures) != 1 || !errors.Is(failures[0].Err, errBoom) || failures[0].Version != 3 || failures[0].AggregateID != a.ID() || failures[0].Mode != aggregate.SnapshotSync {
		t.Fatalf("failures %+v", failures)
	}
	if !strings.Contains(buf.String(), "snapshot not written") || !strings.Contains(buf.String(), a.ID().String()) {
		t.Fatalf("log: %s", buf.String())
	}
	loaded, err := repo.Load(ctxT(t), a.ID())
	if err != nil || loaded.Version() != 3 {
		t.Fatalf("load after failed snapshot: %v %v", loaded, err)
	}
}

func TestManualMode(t *testing.T) {
	store := newRecordingStore()
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotMode(aggregate.SnapshotManual), aggregate.WithSnapshotThreshold(2))
	a := repo.New(uuid.New())
	grow(t, a, 11)
	if _, err := repo.CreateSnapshot(ctxT(t), a); !errors.Is(err, aggregate.ErrUncommitted) {
		t.Fatalf("snapshot of unsaved aggregate: err = %v", err)
	}
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if len(store.versions()) != 0 {
		t.Fatalf("manual mode wrote %v on save", store.versions())
	}
	snap, err := repo.CreateSnapshot(ctxT(t), a)
	if err != nil || snap.Version != 11 {
		t.Fatalf("CreateSnapshot = %v, %v", snap, err)
	}
	grow(t, a, 1)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	snap, err = repo.CreateSnapshot(ctxT(t), a)
	if err != nil || snap.Version != 12 {
		t.Fatalf("CreateSnapshot = %v, %v", snap, err)
	}
	if got := store.versions(); !slices.Equal(got, []int64{11, 12}) {
		t.Fatalf("puts %v", got)
	}
	if _, err := repo.CreateSnapshot(ctxT(t), repo.New(uuid.New())); !errors.Is(err, aggregate.ErrNotFound) {
		t.Fatalf("snapshot of empty aggregate: err = %v", err)
	}
	plain := newRepo(t, newLog(t))
	if _, err := plain.CreateSnapshot(ctxT(t), a); !errors.Is(err, aggregate.ErrNoSnapshotStore) {
		t.Fatalf("snapshot without a store: err = %v", err)
	}
}

func TestCreateSnapshotRefusesStaleAggregate(t *testing.T) {
	store := newRecordingStore()
	l := newLog(t)
	repo := newRepo(t, l, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotMode(aggregate.SnapshotManual))
	a := repo.New(uuid.New())
	grow(t, a, 3)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	old, _ := repo.Load(ctxT(t), a.ID())
	grow(t, a, 2)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateSnapshot(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateSnapshot(ctxT(t), old); !errors.Is(err, snapshots.ErrStale) {
		t.Fatalf("older snapshot over a newer one: err = %v", err)
	}
	if snap, _ := store.Get(ctxT(t), "Account", a.ID()); snap.Version != 5 {
		t.Fatalf("store went back to version %d", snap.Version)
	}
}

func TestBackgroundMode(t *testing.T) {
	store := newRecordingStore()
	store.gate = make(chan struct{})
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(5), aggregate.WithSnapshotMode(aggregate.SnapshotBackground))
	a := repo.New(uuid.New())
	grow(t, a, 5)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if n := repo.PendingSnapshots(); n != 1 {
		t.Fatalf("pending = %d, want 1", n)
	}
	// The snapshot is captured at save time: later events do not leak in.
	grow(t, a, 3)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	if n, err := repo.AwaitPendingSnapshots(short); n != 1 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitPendingSnapshots with the write blocked = %d, %v; want 1, deadline exceeded", n, err)
	}
	close(store.gate)
	// The write may finish before the await starts: it waits for at most one.
	if n, err := repo.AwaitPendingSnapshots(ctxT(t)); err != nil || n > 1 {
		t.Fatalf("AwaitPendingSnapshots = %d, %v", n, err)
	}
	snap, err := store.Get(ctxT(t), "Account", a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 5 || stateIn(t, snap) != (Account{Owner: stateIn(t, snap).Owner, Balance: 2 + 3 + 4 + 5, Ops: 5}) {
		t.Fatalf("snapshot %v with state %+v, want the state at version 5", snap, stateIn(t, snap))
	}
	if repo.PendingSnapshots() != 0 {
		t.Fatal("pending after await")
	}
	if n, _ := repo.AwaitPendingSnapshots(ctxT(t)); n != 0 {
		t.Fatalf("second await waited for %d", n)
	}
}

func TestBackgroundNewestWinsAndBacklogIsBounded(t *testing.T) {
	store := newRecordingStore()
	store.gate = make(chan struct{})
	var mu sync.Mutex
	var failures []aggregate.SnapshotFailure
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(1),
		aggregate.WithSnapshotMode(aggregate.SnapshotBackground), aggregate.WithSnapshotConcurrency(1), aggregate.WithMaxPendingSnapshots(2),
		aggregate.WithHooks(aggregate.Hooks{SnapshotFailed: func(f aggregate.SnapshotFailure) {
			mu.Lock()
			failures = append(failures, f)
			mu.Unlock()
		}}))
	save := func(a *aggregate.Root[Account], n int) {
		t.Helper()
		grow(t, a, n)
		if err := repo.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c, d := repo.New(uuid.New()), repo.New(uuid.New()), repo.New(uuid.New()), repo.New(uuid.New())
	save(a, 1) // taken by the only writer, which blocks in the store
	waitFor(t, func() bool { return store.entered.Load() == 1 })
	save(b, 1) // waiting
	save(b, 1) // replaces b's waiting snapshot
	save(b, 1) // and again
	save(c, 1) // waiting: the backlog is now full (b, c)
	save(d, 1) // dropped and reported
	if n := repo.PendingSnapshots(); n != 3 {
		t.Fatalf("pending = %d, want 3 (a in flight, b and c waiting)", n)
	}
	close(store.gate)
	if _, err := repo.AwaitPendingSnapshots(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := store.versions(); len(got) != 3 {
		t.Fatalf("writes %v, want a@1, b@3, c@1", got)
	}
	if snap, _ := store.Get(ctxT(t), "Account", b.ID()); snap.Version != 3 {
		t.Fatalf("b's snapshot at %d, want the newest (3)", snap.Version)
	}
	st := repo.Stats()
	if st.SnapshotsSuperseded != 2 || st.SnapshotsDropped != 1 || st.SnapshotsWritten != 3 {
		t.Fatalf("stats %+v", st)
	}
	if len(failures) != 1 || failures[0].AggregateID != d.ID() || !errors.Is(failures[0].Err, aggregate.ErrSnapshotBacklog) {
		t.Fatalf("failures %+v", failures)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBackgroundConcurrentSaves(t *testing.T) {
	store := newRecordingStore()
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(3), aggregate.WithSnapshotMode(aggregate.SnapshotBackground))
	var wg sync.WaitGroup
	ids := make([]uuid.UUID, 16)
	for i := range ids {
		ids[i] = uuid.New()
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := repo.New(ids[i])
			for j := 0; j < 10; j++ {
				grow(t, a, 1)
				if err := repo.Save(ctxT(t), a); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := repo.AwaitPendingSnapshots(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		snap, err := store.Get(ctxT(t), "Account", id)
		if err != nil || snap.Version != 9 {
			t.Fatalf("%s: snapshot %v, %v; want version 9", id, snap, err)
		}
		a, err := repo.Load(ctxT(t), id)
		if err != nil || a.Version() != 10 || a.State().Ops != 10 {
			t.Fatalf("%s: load %v %v", id, a, err)
		}
	}
}

func TestCloseWritesWaitingSnapshots(t *testing.T) {
	store := newRecordingStore()
	repo, err := aggregate.NewRepository(newLog(t), accountType(t, 1), aggregate.WithSnapshotStore(store),
		aggregate.WithSnapshotThreshold(1), aggregate.WithSnapshotMode(aggregate.SnapshotBackground))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		a := repo.New(uuid.New())
		grow(t, a, 1)
		if err := repo.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
	}
	repo.Close()
	repo.Close()
	if n := len(store.versions()); n != 20 {
		t.Fatalf("%d snapshots written by Close, want 20", n)
	}
	a := repo.New(uuid.New())
	grow(t, a, 1)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	if st := repo.Stats(); st.SnapshotsFailed != 1 {
		t.Fatalf("snapshot after Close not reported: %+v", st)
	}
}

func TestConflict(t *testing.T) {
	repo := newRepo(t, newLog(t))
	a := repo.New(uuid.New())
	grow(t, a, 2)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	x, _ := repo.Load(ctxT(t), a.ID())
	y, _ := repo.Load(ctxT(t), a.ID())
	grow(t, x, 1)
	grow(t, y, 2)
	if err := repo.Save(ctxT(t), x); err != nil {
		t.Fatal(err)
	}
	err := repo.Save(ctxT(t), y)
	var ce *aggregate.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, aggregate.ErrConflict) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	if ce.AggregateID != a.ID() || ce.Expected != 2 || ce.Actual != 3 {
		t.Fatalf("conflict %+v", ce)
	}
	if len(y.Uncommitted()) != 2 {
		t.Fatal("the loser lost its uncommitted events")
	}
	// Creating an aggregate whose id is taken is a conflict at version 0.
	dup := repo.New(a.ID())
	grow(t, dup, 1)
	if err := repo.Save(ctxT(t), dup); !errors.As(err, &ce) || ce.Expected != 0 || ce.Actual != 3 {
		t.Fatalf("duplicate create: %v", err)
	}
	got, _ := repo.Load(ctxT(t), a.ID())
	if got.Version() != 3 || got.State().Ops != 3 {
		t.Fatalf("after conflicts: version %d state %+v", got.Version(), got.State())
	}
}

func TestLoadNotFoundAndExists(t *testing.T) {
	for _, withStore := range []bool{false, true} {
		var opts []aggregate.Option
		if withStore {
			opts = append(opts, aggregate.WithSnapshotStore(snapshots.NewMemory()), aggregate.WithSnapshotThreshold(1))
		}
		repo := newRepo(t, newLog(t), opts...)
		id := uuid.New()
		if _, err := repo.Load(ctxT(t), id); !errors.Is(err, aggregate.ErrNotFound) || !strings.Contains(err.Error(), id.String()) {
			t.Fatalf("load of unknown: %v", err)
		}
		if ok, err := repo.Exists(ctxT(t), id); ok || err != nil {
			t.Fatalf("Exists(unknown) = %v, %v", ok, err)
		}
		a := repo.New(id)
		grow(t, a, 2)
		if err := repo.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
		if ok, err := repo.Exists(ctxT(t), id); !ok || err != nil {
			t.Fatalf("Exists(saved) = %v, %v", ok, err)
		}
	}
}

func TestSaveWithoutChangesDoesNothing(t *testing.T) {
	repo := newRepo(t, newLog(t))
	if err := repo.Save(ctxT(t), repo.New(uuid.New())); err != nil {
		t.Fatal(err)
	}
}

func TestApplyErrorLeavesAggregateUnchanged(t *testing.T) {
	repo := newRepo(t, newLog(t))
	a := repo.New(uuid.New())
	grow(t, a, 1)
	if err := a.Apply(Withdrawn{Amount: 100}); err == nil {
		t.Fatal("overdraft applied")
	}
	if a.Version() != 1 || len(a.Uncommitted()) != 1 {
		t.Fatalf("version %d, %d uncommitted", a.Version(), len(a.Uncommitted()))
	}
	type Unregistered struct{}
	if err := a.Apply(Unregistered{}); !errors.Is(err, aggregate.ErrUnknownEvent) {
		t.Fatalf("unregistered event: %v", err)
	}
}

func TestLoadFromSnapshotReadsOnlyTheTail(t *testing.T) {
	store := newRecordingStore()
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(100))
	a := repo.New(uuid.New())
	grow(t, a, 103)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	grow(t, a, 4)
	if err := repo.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	before := repo.Stats().EventsReplayed
	got, err := repo.Load(ctxT(t), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Version() != 107 || got.State() != a.State() {
		t.Fatalf("loaded %d %+v, want 107 %+v", got.Version(), got.State(), a.State())
	}
	if n := repo.Stats().EventsReplayed - before; n != 4 {
		t.Fatalf("load replayed %d events, want 4", n)
	}
	if st := repo.Stats(); st.LoadsFromSnapshot != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLoadFallbacks: whatever is wrong with the snapshot, the load equals a
// full replay, and the reason is counted and reported.
func TestLoadFallbacks(t *testing.T) {
	l := newLog(t)
	writer := newRepo(t, l)
	a := writer.New(uuid.New())
	grow(t, a, 12)
	if err := writer.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	other := writer.New(uuid.New())
	grow(t, other, 3)
	if err := writer.Save(ctxT(t), other); err != nil {
		t.Fatal(err)
	}
	want, err := writer.Load(ctxT(t), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	good := snapshots.Snapshot{
		AggregateID: a.ID(), AggregateType: "Account", Version: 12, SchemaVersion: 1, CreatedAt: time.Now(),
		Position: want.Position(), State: accountState(t, Account{Owner: "ada", Balance: want.State().Balance, Ops: 12}),
	}
	// A snapshot whose state is wrong: used, it would give a wrong load.
	lying := good
	lying.State = accountState(t, Account{Owner: "mallory", Balance: -1, Ops: 12})
	with := func(f func(*snapshots.Snapshot)) *snapshots.Snapshot { s := lying; f(&s); return &s }

	for _, tc := range []struct {
		name          string
		schemaVersion int
		snap          *snapshots.Snapshot
		getErr        error
		want          aggregate.MissReason
	}{
		{"no snapshot", 1, nil, nil, aggregate.MissNotFound},
		{"older schema version", 2, &lying, nil, aggregate.MissSchemaVersion},
		{"newer schema version", 1, with(func(s *snapshots.Snapshot) { s.SchemaVersion = 2 }), nil, aggregate.MissSchemaVersion},
		{"undecodable", 1, nil, snapshots.ErrCorrupt, aggregate.MissUndecodable},
		{"another aggregate's snapshot", 1, with(func(s *snapshots.Snapshot) { s.AggregateID = other.ID() }), nil, aggregate.MissUndecodable},
		{"store error", 1, nil, errBoom, aggregate.MissStoreError},
		{"state does not restore", 1, with(func(s *snapshots.Snapshot) { s.State = []byte{0x02} }), nil, aggregate.MissRestoreError},
		{"position of another event", 1, with(func(s *snapshots.Snapshot) { s.Position.Offset-- }), nil, aggregate.MissPosition},
		{"position of another aggregate", 1, with(func(s *snapshots.Snapshot) { s.Position = other.Position() }), nil, aggregate.MissPosition},
		{"position in another partition", 1, with(func(s *snapshots.Snapshot) { s.Position.Partition = (s.Position.Partition + 1) % 3 }), nil, aggregate.MissPosition},
		{"version beyond the log", 1, with(func(s *snapshots.Snapshot) { s.Version = 40 }), nil, aggregate.MissPosition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newRecordingStore()
			store.getSnap, store.getErr = tc.snap, tc.getErr
			var misses []aggregate.SnapshotMiss
			typ := accountType(t, tc.schemaVersion)
			repo, err := aggregate.NewRepository(l, typ, aggregate.WithSnapshotStore(store),
				aggregate.WithHooks(aggregate.Hooks{SnapshotMissed: func(m aggregate.SnapshotMiss) { misses = append(misses, m) }}))
			if err != nil {
				t.Fatal(err)
			}
			got, err := repo.Load(ctxT(t), a.ID())
			if err != nil {
				t.Fatal(err)
			}
			if got.Version() != want.Version() || got.State() != want.State() || got.Position() != want.Position() {
				t.Fatalf("loaded v%d %+v at %s, full replay gives v%d %+v at %s",
					got.Version(), got.State(), got.Position(), want.Version(), want.State(), want.Position())
			}
			st := repo.Stats()
			for _, r := range aggregate.MissReasons() {
				if wantN := map[bool]uint64{true: 1}[r == tc.want]; st.Misses[r] != wantN {
					t.Errorf("misses[%s] = %d, want %d", r, st.Misses[r], wantN)
				}
			}
			if st.LoadsFromSnapshot != 0 || st.EventsReplayed != uint64(want.Version()) {
				t.Errorf("stats %+v", st)
			}
			if len(misses) != 1 || misses[0].Reason != tc.want || misses[0].AggregateID != a.ID() {
				t.Fatalf("hook saw %+v", misses)
			}
			if tc.want != aggregate.MissNotFound && misses[0].Err == nil {
				t.Fatal("miss reported without its cause")
			}
			// The aggregate loaded by fallback saves on as usual.
			grow(t, got, 1)
			if err := repo.Save(ctxT(t), got); err != nil {
				t.Fatal(err)
			}
			a2, _ := writer.Load(ctxT(t), a.ID())
			want = a2
			a = a2
			good.Version, good.Position = a2.Version(), a2.Position()
		})
	}
}

func TestLoadFailsLoudlyOnBadEvents(t *testing.T) {
	l := newLog(t)
	repo := newRepo(t, l)
	id := uuid.New()
	ev := logtestEvent(id, 1, "Opened", `{"owner":"ada"}`)
	bad := logtestEvent(id, 2, "Deposited", `{"amount":`)
	if _, err := l.Append(ctxT(t), "Account", id, log.Expected{}, []log.Event{ev, bad}); err != nil {
		t.Fatal(err)
	}
	_, err := repo.Load(ctxT(t), id)
	if err == nil || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), id.String()) {
		t.Fatalf("load of an undecodable event: %v", err)
	}
	id2 := uuid.New()
	unknown := logtestEvent(id2, 1, "Closed", `{}`)
	if _, err := l.Append(ctxT(t), "Account", id2, log.Expected{}, []log.Event{unknown}); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Load(ctxT(t), id2); !errors.Is(err, aggregate.ErrUnknownEvent) || !strings.Contains(err.Error(), "Deposited") {
		t.Fatalf("load of an unknown event type: %v", err)
	}
}

func logtestEvent(id uuid.UUID, v int64, typ, payload string) log.Event {
	return log.Event{ID: uuid.New(), Type: typ, AggregateType: "Account", AggregateID: id, AggregateVersion: v,
		OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: []byte(payload)}
}

func TestEnvelope(t *testing.T) {
	repo := newRepo(t, newLog(t))
	a := repo.New(uuid.New())
	corr := uuid.New()
	if err := a.ApplyWith(Opened{Owner: "ada"}, aggregate.Metadata{CorrelationID: corr, Values: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	e := a.Uncommitted()[0]
	if e.Type != "Opened" || e.Version != 1 || e.AggregateID != a.ID() || e.AggregateType != "Account" || e.ID == uuid.Nil ||
		e.OccurredAt.Location() != time.UTC || e.Metadata.CorrelationID != corr {
		t.Fatalf("envelope %+v", e)
	}
}
