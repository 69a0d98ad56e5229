package log

import "github.com/google/uuid"

// DefaultIndexLimit is the default of WithIndexLimit: the most aggregates a
// partition's index holds.
const DefaultIndexLimit = 10_000_000

// Index is the winner rule's state of every aggregate of a partition read
// in offset order: a Sequencer per aggregate, kept compactly. It is the one
// partition index of every reader that follows a whole partition: an
// Append's check (what it needs to decide a creation, or any save whose
// caller read the partition before an offset, without reading the
// partition from its start again) and package consumer's workers. It keeps
// the version of each aggregate with events (a 16-byte id and an 8-byte
// version in a map slot: BenchmarkIndexMemory measures the bytes per
// aggregate), and the whole Sequencer only of the few aggregates with a
// save held incomplete.
//
// The zero Index is not usable; an Index is not safe for concurrent use.
type Index struct {
	versions map[uuid.UUID]int64
	open     map[uuid.UUID]Sequencer
}

// NewIndex returns an empty index: the state of a partition before its
// first record.
func NewIndex() *Index {
	return &Index{versions: make(map[uuid.UUID]int64), open: make(map[uuid.UUID]Sequencer)}
}

// State returns the aggregate's sequence state, a copy the caller owns.
func (x *Index) State(id uuid.UUID) Sequencer {
	if sq, ok := x.open[id]; ok {
		return sq.Clone()
	}
	return Sequencer{Version: x.versions[id]}
}

// Next applies the winner rule to the next event of its aggregate
// (Sequencer.AppendNext), with buf as AppendNext's buffer: it returns the
// outcome and buf[:0] with the events the record makes part of the
// aggregate.
func (x *Index) Next(e Event, buf []Event) (Outcome, []Event) {
	id := e.AggregateID
	sq, held := x.open[id]
	if !held {
		sq = Sequencer{Version: x.versions[id]}
	}
	out, buf := sq.AppendNext(buf[:0], e)
	switch {
	case sq.Incomplete() > 0:
		x.open[id] = sq
	case held:
		delete(x.open, id)
	}
	if sq.Version > 0 || sq.Incomplete() > 0 {
		x.versions[id] = sq.Version
	}
	return out, buf
}

// Len returns how many aggregates the index holds: every one in open is
// in versions too.
func (x *Index) Len() int { return len(x.versions) }
