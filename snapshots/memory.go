package snapshots

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"
)

// Memory is an in-process Store: the embedded default. It keeps one snapshot
// per aggregate and never lets a lower version replace a higher one.
//
// Snapshots are deep-copied on the way in and out, so callers may keep and
// change what they passed or got. A Memory is safe for concurrent use; the
// zero value is ready to use.
type Memory struct {
	mu sync.RWMutex
	m  map[memKey]Snapshot
}

type memKey struct {
	typ string
	id  uuid.UUID
}

var (
	_ Store       = (*Memory)(nil)
	_ Housekeeper = (*Memory)(nil)
)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{} }

// Get implements Store.
func (s *Memory) Get(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	s.mu.RLock()
	snap, ok := s.m[memKey{aggregateType, aggregateID}]
	s.mu.RUnlock()
	if !ok {
		return Snapshot{}, fmt.Errorf("%w: %s %s", ErrNotFound, aggregateType, aggregateID)
	}
	snap.State = bytes.Clone(snap.State)
	return snap, nil
}

// Put implements Store.
func (s *Memory) Put(ctx context.Context, snap Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := snap.Validate(); err != nil {
		return err
	}
	snap.State = bytes.Clone(snap.State)
	k := memKey{snap.AggregateType, snap.AggregateID}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[k]; ok && cur.Version > snap.Version {
		return fmt.Errorf("%w: %s %s: have version %d, refusing version %d", ErrStale, snap.AggregateType, snap.AggregateID, cur.Version, snap.Version)
	}
	if s.m == nil {
		s.m = make(map[memKey]Snapshot)
	}
	s.m[k] = snap
	return nil
}

// Delete implements Store.
func (s *Memory) Delete(ctx context.Context, aggregateType string, aggregateID uuid.UUID) error {
	_, err := s.Remove(ctx, aggregateType, aggregateID)
	return err
}

// Remove implements Housekeeper: it deletes the aggregate's snapshot and
// reports whether there was one.
func (s *Memory) Remove(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := memKey{aggregateType, aggregateID}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[k]
	delete(s.m, k)
	return ok, nil
}

// Exists implements Housekeeper.
func (s *Memory) Exists(ctx context.Context, aggregateType string, aggregateID uuid.UUID) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.RLock()
	_, ok := s.m[memKey{aggregateType, aggregateID}]
	s.mu.RUnlock()
	return ok, nil
}

// CountType implements Housekeeper.
func (s *Memory) CountType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkBelow(aggregateType, belowSchemaVersion); err != nil {
		return 0, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for k, snap := range s.m {
		if k.typ == aggregateType && matchesBelow(snap.SchemaVersion, belowSchemaVersion) {
			n++
		}
	}
	return n, nil
}

// DeleteType implements Housekeeper. It deletes the matching snapshots in
// one step: a concurrent Get sees all of them or none deleted.
func (s *Memory) DeleteType(ctx context.Context, aggregateType string, belowSchemaVersion int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkBelow(aggregateType, belowSchemaVersion); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, snap := range s.m {
		if k.typ == aggregateType && matchesBelow(snap.SchemaVersion, belowSchemaVersion) {
			delete(s.m, k)
			n++
		}
	}
	return n, nil
}

// Clear deletes every snapshot the store holds, of every aggregate type.
func (s *Memory) Clear() {
	s.mu.Lock()
	clear(s.m)
	s.mu.Unlock()
}

// Len returns how many snapshots the store holds.
func (s *Memory) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
