package log

import "github.com/google/uuid"

// DefaultIndexLimit is the default of WithIndexLimit: the most aggregates a
// partition's index holds.
const DefaultIndexLimit = 10_000_000

// aggIndex is the winner rule's state of every aggregate of a partition at
// one offset: what an Append's check needs to decide a creation, or any
// save whose caller read the partition before that offset, without reading
// the partition from its start again. It keeps the version of each
// aggregate with events (a 16-byte id and an 8-byte version in a map slot:
// BenchmarkIndexMemory measures the bytes per aggregate), and the whole
// Sequencer only of the few aggregates with a save held incomplete.
type aggIndex struct {
	versions map[uuid.UUID]int64
	open     map[uuid.UUID]Sequencer
}

func newAggIndex() *aggIndex {
	return &aggIndex{versions: make(map[uuid.UUID]int64), open: make(map[uuid.UUID]Sequencer)}
}

// state returns the aggregate's sequence state, a copy the caller owns.
func (x *aggIndex) state(id uuid.UUID) Sequencer {
	if sq, ok := x.open[id]; ok {
		return sq.Clone()
	}
	return Sequencer{Version: x.versions[id]}
}

// next applies the winner rule to the aggregate's next record, with buf as
// AppendNext's buffer; it returns the buffer.
func (x *aggIndex) next(id uuid.UUID, e Event, buf []Event) []Event {
	sq, held := x.open[id]
	if !held {
		sq = Sequencer{Version: x.versions[id]}
	}
	_, buf = sq.AppendNext(buf[:0], e)
	switch {
	case sq.Incomplete() > 0:
		x.open[id] = sq
	case held:
		delete(x.open, id)
	}
	if sq.Version > 0 || sq.Incomplete() > 0 {
		x.versions[id] = sq.Version
	}
	return buf
}

// len returns how many aggregates the index holds: every one in open is
// in versions too.
func (x *aggIndex) len() int { return len(x.versions) }
