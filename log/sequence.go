package log

import (
	"slices"

	"github.com/google/uuid"
)

// MaxSaveEvents is the most events one Append may store.
const MaxSaveEvents = 10_000

// SaveSpan is how far, in offsets of its partition, the records of one save
// may lie from its first record. A record of a save further than SaveSpan
// offsets after the save's first record does not count, so a save that never
// completes is forgotten by every reader after SaveSpan offsets. A save's
// records are produced together (one record, or one transaction), so in
// practice they lie a few offsets apart.
const SaveSpan = 100_000

// Outcome is what the winner rule made of one record of an aggregate.
type Outcome uint8

const (
	// Ignored: the record changes nothing. It claims versions the aggregate
	// already has, repeats a record of a save already held, or belongs to
	// a save whose earlier records were not held (a save that can no longer
	// complete, seen from where the reader started).
	Ignored Outcome = iota
	// Held: the record belongs to a save of several events that is not
	// complete yet.
	Held
	// Accepted: the record completed a save that won. Its events are the
	// aggregate's next versions.
	Accepted
	// Rejected: the record completed a save that lost: when its last
	// record arrived, the aggregate was not at the version it expected.
	Rejected
)

var outcomeNames = [...]string{"ignored", "held", "accepted", "rejected"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Sequencer decides, in log order, which stored events of one aggregate are
// part of it. It is the only definition of that rule: the Kafka log's Read
// and Append's check, the repository, consumers, the snapshotter and the
// tools all apply it to the records [FromRecord] accepts as the aggregate's.
//
// A save is the records written by one Append: they share a save id
// (Event.Save), the version the save expected (Event.Expected) and the
// save's event count (Event.SaveEvents); record i carries version
// Expected+1+i. The rule, for records in partition order:
//
//   - A save is decided when its last missing record arrives, never before:
//     it is accepted when the aggregate is then at the version the save
//     expected, and rejected otherwise. An accepted save adds all its events
//     at once; a rejected one adds none. Each save is thus all or nothing,
//     and each version has one event: the save that completes first at the
//     aggregate's version wins.
//   - A save's records count in version order: a record of a save whose
//     earlier records were not held, or that repeats one held, is ignored.
//     So is every record of a save that expected a version the aggregate
//     has already passed (it can never win: versions only grow), and a
//     record more than SaveSpan offsets after its save's first record.
//   - When a save is accepted, every other save of the aggregate still
//     incomplete is dropped. A save begun before the aggregate reached the
//     version it expected was not built on that version.
//
// A retry of a save (the same save id, the same events) is the same save:
// whichever copy completes first decides it, and the others are ignored.
//
// A log with a conditional append (Memory) stores no losers; a log without
// one (Kafka) stores them and relies on this rule. The zero Sequencer is at
// version 0, before an aggregate's first event; Sequencer{Version: v} is the
// state of an aggregate at v at any offset where no save of it is incomplete
// (see Resume).
type Sequencer struct {
	Version int64 // the version reached

	open []openSave
}

type openSave struct {
	save     uuid.UUID
	expected int64
	count    int
	events   []Event // the records held, in version order
}

func (o *openSave) first() int64 { return o.events[0].Position.Offset }

// Next applies the rule to the next stored event of the aggregate, in
// partition order. With Accepted it also returns the events of the save the
// event completed, in version order.
func (s *Sequencer) Next(e Event) (Outcome, []Event) {
	off := e.Position.Offset
	// Forget saves that can no longer complete.
	kept := s.open[:0]
	for _, o := range s.open {
		if off-o.first() <= SaveSpan {
			kept = append(kept, o)
		}
	}
	clear(s.open[len(kept):])
	s.open = kept

	if e.Expected < s.Version || e.SaveEvents < 1 {
		return Ignored, nil
	}
	i := int(e.AggregateVersion - e.Expected - 1)
	if i < 0 || i >= e.SaveEvents {
		return Ignored, nil
	}
	at := -1
	for j := range s.open {
		o := &s.open[j]
		if o.save == e.Save && o.expected == e.Expected && o.count == e.SaveEvents {
			at = j
			break
		}
	}
	var events []Event
	switch {
	case at < 0 && i != 0:
		return Ignored, nil
	case at < 0 && e.SaveEvents == 1:
		events = []Event{e}
	case at < 0:
		s.open = append(s.open, openSave{save: e.Save, expected: e.Expected, count: e.SaveEvents, events: []Event{e}})
		return Held, nil
	default:
		o := &s.open[at]
		if i != len(o.events) {
			return Ignored, nil
		}
		o.events = append(o.events, e)
		if len(o.events) < o.count {
			return Held, nil
		}
		events = o.events
		s.open = append(s.open[:at], s.open[at+1:]...)
		s.open[:cap(s.open)][len(s.open)] = openSave{}
	}
	if e.Expected != s.Version {
		return Rejected, nil
	}
	s.Version = e.Expected + int64(len(events))
	clear(s.open)
	s.open = s.open[:0]
	return Accepted, events
}

// Resume returns the offset from which reading the aggregate's records again
// with Sequencer{Version: s.Version} decides every later record as s does,
// when s has read the aggregate's partition up to (not including) offset
// next: the first record of the earliest save of the aggregate still
// incomplete and able to complete, or next when there is none. It is what a
// writer passes as Expected.ReadTo, and where a checkpoint may stand.
func (s *Sequencer) Resume(next int64) int64 {
	r := next
	for _, o := range s.open {
		if f := o.first(); next-f <= SaveSpan && f < r {
			r = f
		}
	}
	return r
}

// Clone returns a copy of s that shares nothing with it. A plain copy of a
// Sequencer shares its incomplete saves: apply Next to one copy only.
func (s Sequencer) Clone() Sequencer {
	c := Sequencer{Version: s.Version}
	if len(s.open) > 0 {
		c.open = make([]openSave, len(s.open))
		for i, o := range s.open {
			o.events = slices.Clone(o.events)
			c.open[i] = o
		}
	}
	return c
}

// Incomplete reports how many saves of the aggregate are held incomplete.
func (s *Sequencer) Incomplete() int { return len(s.open) }
