// Package snapshotstest is the conformance suite of snaplog snapshot stores.
// The in-memory store and the Kafka store both run it:
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
