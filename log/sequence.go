package log

import (
	"slices"

	"github.com/google/uuid"
)

// MaxSaveEvents is the most events one Append may store.
const MaxSaveEvents = 10_000

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
	// Rejected: the record belongs to a save that lost: it expected a
	// version the aggregate has not reached. (It cannot reach it while the
	// save is incomplete: the aggregate moves only when a save is
	// accepted, and that drops every incomplete save.)
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
//   - Only a save that expected the aggregate's current version can win.
//     A record of a save that expected a version the aggregate has passed
//     is ignored; one of a save that expected a version it has not reached
//     is rejected.
//   - A save's records are held, in version order, until its last one
//     arrives; then the save is accepted and adds all its events at once.
//     A record of a save whose earlier records are not held, or that
//     repeats one held, is ignored. Until it is accepted a save adds
//     nothing: each save is all or nothing, and each version has one
//     event, that of the save of the current version that completes first.
//   - When a save is accepted, every other save of the aggregate still
//     incomplete is dropped: it was not built on the new version.
//
// Copies of a save (a retry: the same save id, expected version and event
// count) are one save: its records may come from any copy, and once it is
// accepted every later copy is ignored, as it expected a version the
// aggregate has passed. The rule keeps no memory of decided saves, so a
// copy that arrives after an earlier one was rejected is decided again;
// only records out of their producers' order can make it win (an Append's
// copies all land after the version its caller read).
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
// event completed, in version order, in a new slice.
func (s *Sequencer) Next(e Event) (Outcome, []Event) { return s.AppendNext(nil, e) }

// AppendNext is Next appending the accepted events to dst: with a buffer
// kept from call to call (buf[:0]), a reader's loop allocates nothing for
// the saves it accepts.
func (s *Sequencer) AppendNext(dst []Event, e Event) (Outcome, []Event) {
	i := int(e.AggregateVersion - e.Expected - 1)
	switch {
	case e.SaveEvents < 1 || i < 0 || i >= e.SaveEvents || e.Expected < s.Version:
		return Ignored, dst
	case e.Expected > s.Version:
		return Rejected, dst
	}
	at := -1
	for j := range s.open {
		o := &s.open[j]
		if o.save == e.Save && o.expected == e.Expected && o.count == e.SaveEvents {
			at = j
			break
		}
	}
	switch {
	case at < 0 && i != 0:
		return Ignored, dst
	case at < 0 && e.SaveEvents == 1:
		dst = append(dst, e)
	case at < 0:
		// Room for the save's events, within reason: a record may claim
		// any count.
		held := append(make([]Event, 0, min(e.SaveEvents, 1024)), e)
		s.open = append(s.open, openSave{save: e.Save, expected: e.Expected, count: e.SaveEvents, events: held})
		return Held, dst
	default:
		o := &s.open[at]
		if i != len(o.events) {
			return Ignored, dst
		}
		if len(o.events) == cap(o.events) {
			// As many records held as first made room for: the claim is
			// real enough to make room for all.
			o.events = slices.Grow(o.events, o.count-len(o.events))
		}
		o.events = append(o.events, e)
		if len(o.events) < o.count {
			return Held, dst
		}
		if len(dst) == 0 {
			dst = o.events // the save is done with them
		} else {
			dst = append(dst, o.events...)
		}
	}
	s.Version = e.Expected + int64(e.SaveEvents)
	clear(s.open)
	s.open = s.open[:0]
	return Accepted, dst
}

// Resume returns the offset from which reading the aggregate's records again
// with Sequencer{Version: s.Version} decides every later record as s does,
// when s has read the aggregate's partition up to (not including) offset
// next: the first record of the earliest save of the aggregate held
// incomplete, or next when there is none. It is what a writer passes as
// Expected.ReadTo, and where a checkpoint may stand.
//
// Why: every save held expected the current version and began after the
// save that brought the aggregate to it (that one dropped the others). A
// save held at Resume(next) is still held at next (completing, it would
// have been accepted and dropped the ones held at next), so at
// Resume(next) nothing begun before it is held, and s was then exactly
// Sequencer{Version: s.Version}; from there both read the same records.
func (s *Sequencer) Resume(next int64) int64 {
	r := next
	for _, o := range s.open {
		r = min(r, o.first())
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
