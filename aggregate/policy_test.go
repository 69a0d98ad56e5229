package aggregate_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/snapshots"
)

// saveEach applies each event to a and saves it on its own.
func saveEach(t *testing.T, repo *aggregate.Repository[Account], a *aggregate.Root[Account], events ...any) {
	t.Helper()
	for _, ev := range events {
		if err := a.Apply(ev); err != nil {
			t.Fatal(err)
		}
		if err := repo.Save(ctxT(t), a); err != nil {
			t.Fatal(err)
		}
	}
}

// Invalid policies are refused at construction, every problem named.
func TestSnapshotPolicyValidation(t *testing.T) {
	bad := aggregate.AnyOf(aggregate.Every(0), aggregate.When[Account](nil), aggregate.MinInterval(-time.Second),
		aggregate.AfterCostlyLoad(0, 0), aggregate.AllOf())
	_, err := aggregate.NewRepository(newLog(t), accountType(t, 1), aggregate.WithSnapshotPolicy(bad))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"AnyOf[0]: Every: n must be positive, got 0", "AnyOf[1]: When: nil predicate",
		"AnyOf[2]: MinInterval: must be positive, got -1s", "AnyOf[3]: AfterCostlyLoad", "AnyOf[4]: AllOf: no policies",
		"WithSnapshotPolicy needs WithSnapshotStore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if _, err := aggregate.NewRepository(newLog(t), accountType(t, 1), aggregate.WithSnapshotStore(snapshots.NewMemory()),
		aggregate.WithSnapshotPolicy(aggregate.When(func(aggregate.Envelope, string) bool { return true }))); err == nil ||
		!strings.Contains(err.Error(), "a When policy for state string") {
		t.Errorf("a When of another state type: %v", err)
	}
	if _, err := aggregate.NewRepository(newLog(t), accountType(t, 1), aggregate.WithSnapshotPolicy(nil)); err == nil ||
		!strings.Contains(err.Error(), "nil policy") {
		t.Errorf("a nil policy: %v", err)
	}
}

// A predicate over the event and the state after the save: a withdrawal
// of an account left below 10 is snapshotted, nothing else.
func TestSnapshotWhen(t *testing.T) {
	store := newRecordingStore()
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotPolicy(
		aggregate.When(func(e aggregate.Envelope, s Account) bool { _, w := e.Event.(Withdrawn); return w && s.Balance < 10 })))
	a := repo.New(uuid.New())
	saveEach(t, repo, a, Opened{Owner: "ada"}, Deposited{Amount: 30}, Withdrawn{Amount: 5}, Withdrawn{Amount: 20}, Deposited{Amount: 1})
	if got := store.versions(); !slices.Equal(got, []int64{4}) {
		t.Fatalf("snapshots at versions %v, want [4] (the withdrawal that left 5)", got)
	}
}

// A minimum time between snapshots spaces out another policy's.
func TestSnapshotMinInterval(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	store := newRecordingStore()
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithClock(clock),
		aggregate.WithSnapshotPolicy(aggregate.AllOf(aggregate.Every(1), aggregate.MinInterval(time.Minute))))
	a := repo.New(uuid.New())
	saveEach(t, repo, a, Opened{Owner: "ada"}) // no snapshot known: due
	advance(30 * time.Second)
	saveEach(t, repo, a, Deposited{Amount: 1}) // 30 s after it: not due
	advance(31 * time.Second)
	saveEach(t, repo, a, Deposited{Amount: 1}) // 61 s: due
	// A root loaded from the snapshot knows its time.
	advance(10 * time.Second)
	loaded, err := repo.Load(ctxT(t), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	saveEach(t, repo, loaded, Deposited{Amount: 1})
	if got := store.versions(); !slices.Equal(got, []int64{1, 3}) {
		t.Fatalf("snapshots at versions %v, want [1 3]", got)
	}
}

// After a load that applied more events than the bound, the load writes a
// snapshot; the next load starts from it and writes none.
func TestSnapshotAfterCostlyLoad(t *testing.T) {
	l := newLog(t)
	writer := newRepo(t, l)
	a := writer.New(uuid.New())
	grow(t, a, 12)
	if err := writer.Save(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	store := newRecordingStore()
	repo := newRepo(t, l, aggregate.WithSnapshotStore(store), aggregate.WithSnapshotPolicy(aggregate.AfterCostlyLoad(5, 0)))
	for range 2 {
		if got, err := repo.Load(ctxT(t), a.ID()); err != nil || got.Version() != 12 {
			t.Fatalf("load: %v %v", got, err)
		}
	}
	if got := store.versions(); !slices.Equal(got, []int64{12}) {
		t.Fatalf("snapshots at versions %v, want [12]", got)
	}
	if st := repo.Stats(); st.LoadsFromSnapshot != 1 {
		t.Fatalf("stats %+v: the second load did not start from the snapshot", st)
	}
	// A save is no load: no snapshot.
	got, _ := repo.Load(ctxT(t), a.ID())
	saveEach(t, repo, got, Deposited{Amount: 1})
	if got := store.versions(); len(got) != 1 {
		t.Fatalf("snapshots at versions %v after a save", got)
	}
}

// Every is the threshold rule, as WithSnapshotThreshold has it, and the
// settings say what the options set.
func TestSnapshotSettings(t *testing.T) {
	store := snapshots.NewMemory()
	repo := newRepo(t, newLog(t), aggregate.WithSnapshotStore(store), aggregate.WithSnapshotThreshold(5),
		aggregate.WithSnapshotMode(aggregate.SnapshotBackground))
	s := repo.SnapshotSettings()
	if s.Store != store || s.Mode != aggregate.SnapshotBackground || s.SchemaVersion != 1 || s.Policy == nil ||
		!s.Policy.Due(aggregate.PolicyContext{Before: 4, Version: 5}) || s.Policy.Due(aggregate.PolicyContext{Before: 5, Version: 9}) {
		t.Fatalf("settings %+v", s)
	}
	if s := newRepo(t, newLog(t)).SnapshotSettings(); s.Store != nil || s.Policy != nil {
		t.Fatalf("settings without snapshots %+v", s)
	}
}
