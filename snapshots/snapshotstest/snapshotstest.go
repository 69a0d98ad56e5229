// Package snapshotstest is the conformance suite of snaplog snapshot stores.
// The in-memory store and the Kafka store both run it (the subtests of
// snapshots.Housekeeper skip on a store that does not implement it):
//
//	snapshotstest.Run(t, func(t *testing.T) snapshotstest.Harness { ... })
package snapshotstest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// Harness is a store under test and what the suite needs to write to it.
type Harness struct {
	Store snapshots.Store
	// Type is an aggregate type the store accepts snapshots of.
	Type string
	// Partitions is the partition count of the type's events topic (1 for
	// stores that do not care).
	Partitions int32
	// State returns a valid state of the type: its Avro binary encoding in
	// the type's current state schema (see snapshots.Snapshot.State). The
	// suite stores n in it and reads it back from a Get with Count.
	State func(n int64) []byte
	Count func(state []byte) int64
}

// Snapshot returns a valid snapshot of aggregate id at version v.
func (h Harness) Snapshot(id uuid.UUID, v int64) snapshots.Snapshot {
	return snapshots.Snapshot{
		AggregateID:   id,
		AggregateType: h.Type,
		Version:       v,
		SchemaVersion: 1,
		CreatedAt:     time.Now().UTC().Truncate(time.Microsecond),
		Position:      log.Position{Partition: log.Partition(id, h.Partitions), Offset: 10 * v},
		Save:          uuid.New(),
		State:         h.State(v),
	}
}

// Run runs the suite; newHarness is called once per subtest.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"PutGet", testPutGet},
		{"NotFound", testNotFound},
		{"NewerReplaces", testNewerReplaces},
		{"OlderIsRefused", testOlderRefused},
		{"Delete", testDelete},
		{"ConcurrentPutsKeepTheHighest", testConcurrent},
		{"StateIsNotShared", testStateNotShared},
		{"RemoveReportsWhetherASnapshotExisted", testRemove},
		{"Exists", testExists},
		{"DeleteTypeBelowSchemaVersion", testDeleteType},
		{"DeleteTypeArguments", testDeleteTypeArguments},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newHarness(t)) })
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func mustGet(t *testing.T, h Harness, id uuid.UUID) snapshots.Snapshot {
	t.Helper()
	s, err := h.Store.Get(ctx(t), h.Type, id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return s
}

func testPutGet(t *testing.T, h Harness) {
	id := uuid.New()
	want := h.Snapshot(id, 7)
	if err := h.Store.Put(ctx(t), want); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, h, id)
	if got.AggregateID != id || got.AggregateType != h.Type || got.Version != 7 || got.SchemaVersion != 1 ||
		got.Position != want.Position || got.Save != want.Save || !got.CreatedAt.Equal(want.CreatedAt) || h.Count(got.State) != 7 {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func testNotFound(t *testing.T, h Harness) {
	if _, err := h.Store.Get(ctx(t), h.Type, uuid.New()); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("Get of an unknown aggregate: %v", err)
	}
}

func testNewerReplaces(t *testing.T, h Harness) {
	id := uuid.New()
	for _, v := range []int64{3, 5, 5, 9} {
		if err := h.Store.Put(ctx(t), h.Snapshot(id, v)); err != nil {
			t.Fatalf("Put v%d: %v", v, err)
		}
	}
	if got := mustGet(t, h, id); got.Version != 9 || h.Count(got.State) != 9 {
		t.Fatalf("version %d", got.Version)
	}
}

func testOlderRefused(t *testing.T, h Harness) {
	id := uuid.New()
	if err := h.Store.Put(ctx(t), h.Snapshot(id, 10)); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.Put(ctx(t), h.Snapshot(id, 4)); !errors.Is(err, snapshots.ErrStale) {
		t.Fatalf("older Put: %v, want ErrStale", err)
	}
	if got := mustGet(t, h, id); got.Version != 10 {
		t.Fatalf("store went back to version %d", got.Version)
	}
}

func testDelete(t *testing.T, h Harness) {
	id := uuid.New()
	if err := h.Store.Put(ctx(t), h.Snapshot(id, 2)); err != nil {
		t.Fatal(err)
	}
	if err := h.Store.Delete(ctx(t), h.Type, id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.Get(ctx(t), h.Type, id); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := h.Store.Delete(ctx(t), h.Type, uuid.New()); err != nil {
		t.Fatalf("Delete of an unknown aggregate: %v", err)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	id := uuid.New()
	var wg sync.WaitGroup
	for v := int64(1); v <= 20; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.Store.Put(ctx(t), h.Snapshot(id, v)); err != nil && !errors.Is(err, snapshots.ErrStale) {
				t.Errorf("Put v%d: %v", v, err)
			}
		}()
	}
	wg.Wait()
	if got := mustGet(t, h, id); got.Version != 20 {
		t.Fatalf("after concurrent puts the store holds version %d, want 20", got.Version)
	}
}

// The store keeps no reference to the state bytes of a Put, nor hands out
// its own in a Get.
func testStateNotShared(t *testing.T, h Harness) {
	id := uuid.New()
	s := h.Snapshot(id, 6)
	want := append([]byte(nil), s.State...)
	if err := h.Store.Put(ctx(t), s); err != nil {
		t.Fatal(err)
	}
	clear(s.State)
	got := mustGet(t, h, id)
	if !bytes.Equal(got.State, want) || h.Count(got.State) != 6 {
		t.Fatalf("state % x after the caller changed its bytes, want % x", got.State, want)
	}
	clear(got.State)
	if again := mustGet(t, h, id); !bytes.Equal(again.State, want) {
		t.Fatalf("state % x after the caller changed a Get's bytes, want % x", again.State, want)
	}
}

func housekeeper(t *testing.T, h Harness) snapshots.Housekeeper {
	t.Helper()
	hk, ok := h.Store.(snapshots.Housekeeper)
	if !ok {
		t.Skipf("%T does not implement snapshots.Housekeeper", h.Store)
	}
	return hk
}

func testRemove(t *testing.T, h Harness) {
	hk := housekeeper(t, h)
	id := uuid.New()
	if err := h.Store.Put(ctx(t), h.Snapshot(id, 3)); err != nil {
		t.Fatal(err)
	}
	if existed, err := hk.Remove(ctx(t), h.Type, id); err != nil || !existed {
		t.Fatalf("Remove of a snapshot held: %v, %v; want true, nil", existed, err)
	}
	if _, err := h.Store.Get(ctx(t), h.Type, id); !errors.Is(err, snapshots.ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if existed, err := hk.Remove(ctx(t), h.Type, id); err != nil || existed {
		t.Fatalf("Remove of a snapshot removed already: %v, %v; want false, nil", existed, err)
	}
	if existed, err := hk.Remove(ctx(t), h.Type, uuid.New()); err != nil || existed {
		t.Fatalf("Remove of an aggregate never snapshotted: %v, %v; want false, nil", existed, err)
	}
}

func testExists(t *testing.T, h Harness) {
	hk := housekeeper(t, h)
	id := uuid.New()
	exists := func(want bool, when string) {
		t.Helper()
		if got, err := hk.Exists(ctx(t), h.Type, id); err != nil || got != want {
			t.Fatalf("Exists %s: %v, %v; want %v", when, got, err, want)
		}
	}
	exists(false, "before any Put")
	if err := h.Store.Put(ctx(t), h.Snapshot(id, 2)); err != nil {
		t.Fatal(err)
	}
	exists(true, "after a Put")
	if err := h.Store.Delete(ctx(t), h.Type, id); err != nil {
		t.Fatal(err)
	}
	exists(false, "after a Delete")
}

// testDeleteType stores snapshots of schema versions 1 to 3 and deletes by
// schema version: exactly those below the bound, then every one left.
func testDeleteType(t *testing.T, h Harness) {
	hk := housekeeper(t, h)
	// The store may hold the snapshots of other subtests: start from none.
	if _, err := hk.DeleteType(ctx(t), h.Type, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := hk.CountType(ctx(t), h.Type, 0); err != nil || n != 0 {
		t.Fatalf("CountType after deleting every snapshot: %d, %v", n, err)
	}
	bySchema := map[int][]uuid.UUID{}
	for schema := 1; schema <= 3; schema++ {
		for range 3 {
			id := uuid.New()
			s := h.Snapshot(id, 5)
			s.SchemaVersion = schema
			if err := h.Store.Put(ctx(t), s); err != nil {
				t.Fatal(err)
			}
			bySchema[schema] = append(bySchema[schema], id)
		}
	}
	count := func(below, want int) {
		t.Helper()
		if n, err := hk.CountType(ctx(t), h.Type, below); err != nil || n != want {
			t.Fatalf("CountType below %d: %d, %v; want %d", below, n, err, want)
		}
	}
	count(0, 9)
	count(1, 0)
	count(3, 6)
	count(4, 9)
	if n, err := hk.DeleteType(ctx(t), h.Type, 3); err != nil || n != 6 {
		t.Fatalf("DeleteType below 3: %d, %v; want 6", n, err)
	}
	for schema, ids := range bySchema {
		for _, id := range ids {
			exists, err := hk.Exists(ctx(t), h.Type, id)
			if err != nil || exists != (schema >= 3) {
				t.Fatalf("schema version %d: Exists after DeleteType below 3: %v, %v", schema, exists, err)
			}
			_, err = h.Store.Get(ctx(t), h.Type, id)
			if (schema >= 3) != (err == nil) || (err != nil && !errors.Is(err, snapshots.ErrNotFound)) {
				t.Fatalf("schema version %d: Get after DeleteType below 3: %v", schema, err)
			}
		}
	}
	count(0, 3)
	if n, err := hk.DeleteType(ctx(t), h.Type, 3); err != nil || n != 0 {
		t.Fatalf("DeleteType below 3 again: %d, %v; want 0", n, err)
	}
	if n, err := hk.DeleteType(ctx(t), h.Type, 0); err != nil || n != 3 {
		t.Fatalf("DeleteType of every schema version: %d, %v; want 3", n, err)
	}
	count(0, 0)
}

func testDeleteTypeArguments(t *testing.T, h Harness) {
	hk := housekeeper(t, h)
	id := uuid.New()
	if err := h.Store.Put(ctx(t), h.Snapshot(id, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := hk.DeleteType(ctx(t), h.Type, -1); err == nil {
		t.Fatal("DeleteType with a negative schema version bound: no error")
	}
	if _, err := hk.CountType(ctx(t), h.Type, -1); err == nil {
		t.Fatal("CountType with a negative schema version bound: no error")
	}
	if _, err := hk.DeleteType(ctx(t), "", 0); err == nil {
		t.Fatal("DeleteType of an empty aggregate type: no error")
	}
	if exists, err := hk.Exists(ctx(t), h.Type, id); err != nil || !exists {
		t.Fatalf("a refused DeleteType deleted: Exists %v, %v", exists, err)
	}
}
