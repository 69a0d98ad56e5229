package log

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/google/uuid"
)

// Memory is an in-process event log: the embedded default. It keeps, per
// aggregate type, a topic of partitions laid out as Kafka would lay them out
// (same partitioner, offsets from 0), and an index of each aggregate's
// offsets so that a read does not scan other aggregates' records.
//
// A Memory is safe for concurrent use. Its zero value is not usable; call
// NewMemory.
type Memory struct {
	partitions int32

	mu     sync.RWMutex
	topics map[string]*memTopic
}

type memTopic struct {
	parts []memPartition
	aggs  map[uuid.UUID]*memAggregate
}

type memPartition struct {
	records []Event
}

type memAggregate struct {
	offsets []int64 // offsets of the aggregate's events, in version order
}

// MemoryOption configures a Memory log.
type MemoryOption interface{ applyMemory(*Memory) }

type memoryOption func(*Memory)

func (f memoryOption) applyMemory(m *Memory) { f(m) }

// WithMemoryPartitions sets how many partitions each aggregate type's topic
// has. The default is 1.
func WithMemoryPartitions(n int32) MemoryOption {
	return memoryOption(func(m *Memory) { m.partitions = n })
}

// NewMemory returns an empty in-memory log.
func NewMemory(opts ...MemoryOption) (*Memory, error) {
	m := &Memory{partitions: 1, topics: make(map[string]*memTopic)}
	for _, o := range opts {
		o.applyMemory(m)
	}
	if m.partitions <= 0 {
		return nil, fmt.Errorf("log: memory partitions must be positive, got %d", m.partitions)
	}
	return m, nil
}

func (m *Memory) topic(aggregateType string) *memTopic {
	t := m.topics[aggregateType]
	if t == nil {
		t = &memTopic{parts: make([]memPartition, m.partitions), aggs: make(map[uuid.UUID]*memAggregate)}
		m.topics[aggregateType] = t
	}
	return t
}

// Append stores events as the next versions of one aggregate, all or none.
// It fails with a *ConflictError when the aggregate is not at
// expected.Version, and with an error wrapping ErrInvalidEvent when the events
// are malformed (see Validate). On success it returns the events with their
// positions set. An Append with the Save id and the events of one that
// already succeeded (a retry) succeeds again without storing anything.
func (m *Memory) Append(ctx context.Context, aggregateType string, aggregateID uuid.UUID, expected Expected, events []Event) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := Validate(aggregateType, aggregateID, expected.Version, events); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.topic(aggregateType)
	agg := t.aggs[aggregateID]
	var actual int64
	if agg != nil {
		actual = int64(len(agg.offsets))
	}
	if expected.Save != uuid.Nil && agg != nil && actual >= expected.Version+int64(len(events)) {
		part := &t.parts[Partition(aggregateID, m.partitions)]
		stored := make([]Event, len(events))
		same := true
		for i := range events {
			e := part.records[agg.offsets[expected.Version+int64(i)]]
			same = same && e.Save == expected.Save && e.ID == events[i].ID && e.Expected == expected.Version
			e.Payload = slices.Clone(e.Payload)
			e.Metadata.Values = cloneMap(e.Metadata.Values)
			stored[i] = e
		}
		if same {
			return stored, nil
		}
	}
	if actual != expected.Version {
		return nil, &ConflictError{AggregateType: aggregateType, AggregateID: aggregateID, Expected: expected.Version, Actual: actual}
	}
	if agg == nil {
		agg = &memAggregate{}
		t.aggs[aggregateID] = agg
	}
	p := Partition(aggregateID, m.partitions)
	part := &t.parts[p]
	save := expected.Save
	if save == uuid.Nil {
		save = uuid.New()
	}
	out := make([]Event, len(events))
	for i, e := range events {
		e.Position = Position{Partition: p, Offset: int64(len(part.records))}
		e.Expected, e.Save, e.SaveEvents = expected.Version, save, len(events)
		e.Payload = slices.Clone(e.Payload)
		e.Metadata.Values = cloneMap(e.Metadata.Values)
		part.records = append(part.records, e)
		agg.offsets = append(agg.offsets, e.Position.Offset)
		out[i] = e
	}
	return out, nil
}

// Read returns the aggregate's events stored at offsets from `from` on, in
// version order, and the end offset of its partition as of the call.
func (m *Memory) Read(ctx context.Context, aggregateType string, aggregateID uuid.UUID, from int64) (Tail, error) {
	if err := ctx.Err(); err != nil {
		return Tail{}, err
	}
	if from < 0 {
		return Tail{}, fmt.Errorf("log: read %s %s: negative offset %d", aggregateType, aggregateID, from)
	}
	p := Partition(aggregateID, m.partitions)
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.topics[aggregateType]
	if t == nil {
		return Tail{Partition: p}, nil
	}
	part := &t.parts[p]
	tail := Tail{Partition: p, End: int64(len(part.records))}
	agg := t.aggs[aggregateID]
	if agg == nil {
		return tail, nil
	}
	i := sort.Search(len(agg.offsets), func(i int) bool { return agg.offsets[i] >= from })
	tail.Events = make([]Event, 0, len(agg.offsets)-i)
	for _, off := range agg.offsets[i:] {
		e := part.records[off]
		e.Payload = slices.Clone(e.Payload)
		e.Metadata.Values = cloneMap(e.Metadata.Values)
		tail.Events = append(tail.Events, e)
	}
	tail.Scanned = int64(len(tail.Events))
	return tail, nil
}

// EventAt returns the aggregate's event stored at offset, or an error
// wrapping ErrNoEvent when the event there is another aggregate's or there
// is none.
func (m *Memory) EventAt(ctx context.Context, aggregateType string, aggregateID uuid.UUID, offset int64) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	p := Partition(aggregateID, m.partitions)
	m.mu.RLock()
	defer m.mu.RUnlock()
	var part *memPartition
	if t := m.topics[aggregateType]; t != nil {
		part = &t.parts[p]
	}
	if part == nil || offset < 0 || offset >= int64(len(part.records)) || part.records[offset].AggregateID != aggregateID {
		return Event{}, fmt.Errorf("%w: %s %s at %d@%d", ErrNoEvent, aggregateType, aggregateID, p, offset)
	}
	e := part.records[offset]
	e.Payload = slices.Clone(e.Payload)
	e.Metadata.Values = cloneMap(e.Metadata.Values)
	return e, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
