// Package invariant checks an events topic against what the clients that
// wrote it were told. It is a test oracle for the invariants of the design
// brief that a real broker must uphold: I1 (an acknowledged save is never
// lost), I2 (one winner per version: a save told it lost never becomes part
// of any aggregate), I3 (a save is applied completely or not at all) and I8
// (this holds for whatever sequence of records the topic ends up with).
//
// The package is an independent implementation of the record format and of
// the winner rule: it parses record keys and headers itself and decides,
// in partition order, which saves won, without calling package log
// (log.FromRecord, log.Sequencer) or internal/kread. A bug in log's rule
// or decoding therefore cannot hide itself by being used to judge its own
// output.
//
// # The rule, as implemented here
//
// A record is an event when its key is an aggregate id as canonical
// lower-case 36-character uuid text and its headers hold, each once,
// snaplog.event_id (non-nil uuid), snaplog.event_type,
// snaplog.aggregate_type, snaplog.version, snaplog.expected and
// snaplog.save_events (decimal), snaplog.save (non-nil uuid) and
// snaplog.occurred_at (RFC 3339), with 0 <= expected < version <=
// expected+save_events and 1 <= save_events <= MaxSaveEvents. Any other
// record is foreign: counted, and applied to nothing. Event i (0-based) of a
// save has version expected+1+i.
//
// For each aggregate (a partition and a key), in offset order:
//
//   - a record of a save that expected a version below the aggregate's
//     current one is ignored, and one of a save that expected a version
//     above it is rejected: only a save of the current version can win;
//   - an open save is one whose first records arrived but not all; records
//     count in index order: index 0 opens a save (or, for a save of one
//     event, completes it at once); a later index counts only when it is
//     the next missing one of an open save with the same save id, expected
//     version and event count, and is ignored otherwise (no open save, a
//     gap, a repeat);
//   - a save whose last missing record arrives is accepted: it adds all its
//     events at once, and every other open save of the aggregate is
//     dropped (it was not built on the new version).
//
// This is the rule log.Sequencer documents since the commit "only a save
// of the current version can win, with no span limit" (before it, a save
// that expected a version not yet reached was held and rejected when it
// completed, which decides the same histories, and a save's records had to
// lie within 100,000 offsets). TestRuleAgreesWithLog compares both
// implementations on random record sequences.
//
// # What is checked
//
// Check (and CheckTopic, which reads a topic and calls it) computes each
// aggregate's winning history and reports a Violation for each of:
//
//   - an acknowledged save that is not in the history exactly once, with
//     exactly its events, in order, at versions expected+1, expected+2, ...
//     (and at the offsets Append returned, when they are given);
//   - a save that got a conflict error with any event in any history;
//   - a save of unknown outcome with some but not all of its events in the
//     history;
//   - an aggregate whose history does not have exactly one event for each
//     version 1..N, an event id present twice, a save present in part;
//   - with Observations.Complete, an event in a history that no observed
//     save wrote.
//
// Each violation names the topic, partition and offset of the record it is
// about when there is one.
package invariant

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MaxSaveEvents is the largest event count a save may declare.
const MaxSaveEvents = 10_000

// Record headers of an event, as the record format specifies them.
const (
	hEventID       = "snaplog.event_id"
	hEventType     = "snaplog.event_type"
	hAggregateType = "snaplog.aggregate_type"
	hVersion       = "snaplog.version"
	hExpected      = "snaplog.expected"
	hSave          = "snaplog.save"
	hSaveEvents    = "snaplog.save_events"
	hOccurredAt    = "snaplog.occurred_at"
)

var requiredHeaders = []string{hEventID, hEventType, hAggregateType, hVersion, hExpected, hSave, hSaveEvents, hOccurredAt}

// Save is one save as its writer saw it.
type Save struct {
	Aggregate uuid.UUID
	Expected  int64       // the version the save expected (Expected.Version)
	Save      uuid.UUID   // the save id (Expected.Save)
	Events    []uuid.UUID // the event ids, in order

	// Offsets, when not nil, are the offsets Append returned for the
	// events of an acknowledged save, in Partition.
	Partition int32
	Offsets   []int64

	// Source names who observed the save, for messages ("writer 2").
	Source string
}

func (s Save) String() string {
	src := ""
	if s.Source != "" {
		src = " (" + s.Source + ")"
	}
	return fmt.Sprintf("save %s of %s expecting %d, %d events%s", s.Save, s.Aggregate, s.Expected, len(s.Events), src)
}

// Observations are the outcomes the writers of a topic saw.
type Observations struct {
	Acked      []Save // Append returned success
	Conflicted []Save // Append returned a version conflict
	Unknown    []Save // the outcome is not known (an error, a killed writer)

	// Complete says that these are all the saves ever written to the
	// topic: an event of a winning history that none of them holds is then
	// a violation.
	Complete bool
}

// Violation is one broken invariant.
type Violation struct {
	Check     string    // which check failed, e.g. "acked-lost"
	Topic     string    // "" when no record is concerned
	Partition int32     // -1 when no record is concerned
	Offset    int64     // -1 when no record is concerned
	Aggregate uuid.UUID // uuid.Nil when no aggregate is concerned
	Save      uuid.UUID // uuid.Nil when no save is concerned
	Detail    string
}

func (v Violation) String() string {
	var b strings.Builder
	b.WriteString(v.Check)
	if v.Topic != "" || v.Partition >= 0 {
		fmt.Fprintf(&b, " at %s/%d@%d", v.Topic, v.Partition, v.Offset)
	}
	if v.Aggregate != uuid.Nil {
		fmt.Fprintf(&b, " aggregate %s", v.Aggregate)
	}
	if v.Save != uuid.Nil {
		fmt.Fprintf(&b, " save %s", v.Save)
	}
	b.WriteString(": ")
	b.WriteString(v.Detail)
	return b.String()
}

// Report is the outcome of a check.
type Report struct {
	Topics []string // the topics the records came from

	Records        int // records read, transaction markers excluded
	Control        int // transaction markers read (CheckTopic only)
	Foreign        int // records that are not events
	Ignored        int // event records the rule ignored
	Rejected       int // event records of saves that expected a version not reached
	Aggregates     int // aggregates with at least one event record
	Events         int // events in the winning histories
	AcceptedSaves  int
	IncompleteOpen int // saves still open at the end of the records

	Acked             int // acknowledged saves observed
	AckedVerified     int // ... found exactly as acknowledged
	Conflicts         int // conflicted saves observed
	ConflictsVerified int // ... with no event in any history
	Unknown           int // saves of unknown outcome observed
	UnknownWon        int // ... found complete in the history
	UnknownLost       int // ... with no event in the history

	// Unread is, for CheckTopic, how many offsets lay between the last
	// stable offset and the high watermark of the partitions when they were
	// read: records of transactions still open, which no read_committed
	// reader had seen yet.
	Unread int64

	Violations []Violation
	// ForeignRecords says where the first foreign records are and why they
	// are not events (at most MaxForeignListed of them). They break no
	// invariant by themselves.
	ForeignRecords []Foreign
}

// MaxForeignListed bounds Report.ForeignRecords.
const MaxForeignListed = 20

// Foreign is a record that is not an event.
type Foreign struct {
	Topic     string
	Partition int32
	Offset    int64
	Reason    string
}

func (f Foreign) String() string {
	return fmt.Sprintf("%s/%d@%d: %s", f.Topic, f.Partition, f.Offset, f.Reason)
}

// OK reports whether no invariant was broken.
func (r *Report) OK() bool { return len(r.Violations) == 0 }

func (r *Report) String() string {
	return fmt.Sprintf("topics %v: %d records (%d transaction markers, %d foreign, %d ignored and %d rejected by the rule), "+
		"%d aggregates, %d winning events in %d accepted saves (%d left incomplete); "+
		"acked %d/%d verified, conflicts %d/%d verified, unknown %d (%d won, %d lost); %d unread offsets of open transactions; %d violations",
		r.Topics, r.Records, r.Control, r.Foreign, r.Ignored, r.Rejected,
		r.Aggregates, r.Events, r.AcceptedSaves, r.IncompleteOpen,
		r.AckedVerified, r.Acked, r.ConflictsVerified, r.Conflicts, r.Unknown, r.UnknownWon, r.UnknownLost, r.Unread, len(r.Violations))
}

// Event is one event of a winning history.
type Event struct {
	ID        uuid.UUID
	Aggregate uuid.UUID
	Version   int64
	Expected  int64 // the version its save expected
	Save      uuid.UUID
	Topic     string
	Partition int32
	Offset    int64
}

// event is a record that parsed as an event.
type event struct {
	r         *kgo.Record
	agg       uuid.UUID
	id        uuid.UUID
	version   int64
	expected  int64
	save      uuid.UUID
	count     int
	eventType string
}

func (e *event) index() int { return int(e.version - e.expected - 1) }

// parse decodes a record as an event, or says why it is not one.
func parse(r *kgo.Record) (*event, error) {
	if !canonicalKey(r.Key) {
		return nil, fmt.Errorf("key %q is not a canonical lower-case uuid", r.Key)
	}
	agg, err := uuid.ParseBytes(r.Key)
	if err != nil {
		return nil, fmt.Errorf("key %q: %v", r.Key, err)
	}
	vals := map[string]string{}
	for _, h := range r.Headers {
		if !slices.Contains(requiredHeaders, h.Key) {
			continue
		}
		if _, dup := vals[h.Key]; dup {
			return nil, fmt.Errorf("header %s appears twice", h.Key)
		}
		vals[h.Key] = string(h.Value)
	}
	for _, k := range requiredHeaders {
		if _, ok := vals[k]; !ok {
			return nil, fmt.Errorf("header %s missing", k)
		}
	}
	e := &event{r: r, agg: agg, eventType: vals[hEventType]}
	if e.id, err = uuid.Parse(vals[hEventID]); err != nil || e.id == uuid.Nil {
		return nil, fmt.Errorf("header %s=%q is not a non-nil uuid", hEventID, vals[hEventID])
	}
	if e.save, err = uuid.Parse(vals[hSave]); err != nil || e.save == uuid.Nil {
		return nil, fmt.Errorf("header %s=%q is not a non-nil uuid", hSave, vals[hSave])
	}
	if e.version, err = strconv.ParseInt(vals[hVersion], 10, 64); err != nil {
		return nil, fmt.Errorf("header %s=%q is not decimal", hVersion, vals[hVersion])
	}
	if e.expected, err = strconv.ParseInt(vals[hExpected], 10, 64); err != nil {
		return nil, fmt.Errorf("header %s=%q is not decimal", hExpected, vals[hExpected])
	}
	n, err := strconv.ParseInt(vals[hSaveEvents], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("header %s=%q is not decimal", hSaveEvents, vals[hSaveEvents])
	}
	if _, err := time.Parse(time.RFC3339Nano, vals[hOccurredAt]); err != nil {
		return nil, fmt.Errorf("header %s=%q is not an RFC 3339 time", hOccurredAt, vals[hOccurredAt])
	}
	if n < 1 || n > MaxSaveEvents || e.expected < 0 || e.version <= e.expected || e.version > e.expected+n {
		return nil, fmt.Errorf("version %d, expected %d and save of %d events do not fit", e.version, e.expected, n)
	}
	e.count = int(n)
	return e, nil
}

// canonicalKey reports whether k is a uuid as 36 characters of lower-case
// hex digits with dashes at 8, 13, 18 and 23.
func canonicalKey(k []byte) bool {
	if len(k) != 36 {
		return false
	}
	for i, c := range k {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// openSave is a save whose first records arrived.
type openSave struct {
	save     uuid.UUID
	expected int64
	count    int
	recs     []*event
}

// accepted is a save that won.
type accepted struct {
	save     uuid.UUID
	expected int64
	recs     []*event
}

// aggState is the rule's state for one aggregate of one partition.
type aggState struct {
	topic     string
	partition int32
	agg       uuid.UUID
	version   int64
	open      []*openSave
	history   []*event
	saves     []*accepted
}

type saveKey struct {
	agg  uuid.UUID
	save uuid.UUID
}

// engine applies the rule to records and keeps what the checks need.
type engine struct {
	rep    Report
	aggs   map[string]*aggState // topic, partition and key
	order  []*aggState
	byAgg  map[uuid.UUID][]*aggState
	recsOf map[saveKey][]*event // every event record of a save
	fate   map[*event]string    // what the rule made of each event record
	viol   []Violation
}

func newEngine() *engine {
	return &engine{
		aggs:   map[string]*aggState{},
		byAgg:  map[uuid.UUID][]*aggState{},
		recsOf: map[saveKey][]*event{},
		fate:   map[*event]string{},
	}
}

func (g *engine) violate(check string, r *kgo.Record, agg, save uuid.UUID, format string, args ...any) {
	v := Violation{Check: check, Partition: -1, Offset: -1, Aggregate: agg, Save: save, Detail: fmt.Sprintf(format, args...)}
	if r != nil {
		v.Topic, v.Partition, v.Offset = r.Topic, r.Partition, r.Offset
	}
	g.viol = append(g.viol, v)
}

// run applies the rule to records, in partition order.
func (g *engine) run(records []*kgo.Record) {
	recs := slices.Clone(records)
	slices.SortStableFunc(recs, func(a, b *kgo.Record) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	topics := map[string]bool{}
	for i, r := range recs {
		if !topics[r.Topic] {
			topics[r.Topic] = true
			g.rep.Topics = append(g.rep.Topics, r.Topic)
		}
		if i > 0 && recs[i-1].Topic == r.Topic && recs[i-1].Partition == r.Partition && recs[i-1].Offset == r.Offset {
			g.violate("input", r, uuid.Nil, uuid.Nil, "two records at the same offset; the second is not used")
			continue
		}
		g.rep.Records++
		e, err := parse(r)
		if err != nil {
			g.rep.Foreign++
			if len(g.rep.ForeignRecords) < MaxForeignListed {
				g.rep.ForeignRecords = append(g.rep.ForeignRecords, Foreign{r.Topic, r.Partition, r.Offset, err.Error()})
			}
			continue
		}
		g.apply(e)
	}
	for _, a := range g.order {
		g.rep.IncompleteOpen += len(a.open)
		for _, o := range a.open {
			for _, r := range o.recs {
				g.fate[r] = "held, the save still incomplete at the end of the records"
			}
		}
	}
}

func (g *engine) state(e *event) *aggState {
	key := e.r.Topic + "\x00" + strconv.Itoa(int(e.r.Partition)) + "\x00" + string(e.r.Key)
	a := g.aggs[key]
	if a == nil {
		a = &aggState{topic: e.r.Topic, partition: e.r.Partition, agg: e.agg}
		g.aggs[key] = a
		g.order = append(g.order, a)
		for _, other := range g.byAgg[e.agg] {
			if other.topic == a.topic {
				g.violate("split-history", e.r, e.agg, uuid.Nil,
					"the aggregate has event records in partitions %d and %d of one topic", other.partition, a.partition)
			}
		}
		g.byAgg[e.agg] = append(g.byAgg[e.agg], a)
	}
	return a
}

// apply is the winner rule for one event record.
func (g *engine) apply(e *event) {
	a := g.state(e)
	sk := saveKey{e.agg, e.save}
	g.recsOf[sk] = append(g.recsOf[sk], e)
	off := e.r.Offset

	ignore := func(why string) {
		g.rep.Ignored++
		g.fate[e] = "ignored: " + why
	}
	switch {
	case e.expected < a.version:
		ignore(fmt.Sprintf("expected version %d, the aggregate was at %d", e.expected, a.version))
		return
	case e.expected > a.version:
		g.rep.Rejected++
		g.fate[e] = fmt.Sprintf("rejected: expected version %d, the aggregate was at %d", e.expected, a.version)
		return
	}
	var o *openSave
	at := -1
	for i, c := range a.open {
		if c.save == e.save && c.expected == e.expected && c.count == e.count {
			o, at = c, i
			break
		}
	}
	i := e.index()
	switch {
	case o == nil && i != 0:
		ignore(fmt.Sprintf("index %d of a save with no open copy", i))
		return
	case o == nil:
		o = &openSave{save: e.save, expected: e.expected, count: e.count, recs: []*event{e}}
		if e.count > 1 {
			a.open = append(a.open, o)
			g.fate[e] = "held"
			return
		}
	case i != len(o.recs):
		ignore(fmt.Sprintf("index %d of an open save that needs index %d", i, len(o.recs)))
		return
	default:
		o.recs = append(o.recs, e)
		if len(o.recs) < o.count {
			g.fate[e] = "held"
			return
		}
		a.open = slices.Delete(a.open, at, at+1)
	}
	// The save is complete, at the version it expected: it wins.
	g.rep.AcceptedSaves++
	for _, r := range o.recs {
		g.fate[r] = "accepted"
	}
	for _, dropped := range a.open {
		for _, r := range dropped.recs {
			g.fate[r] = fmt.Sprintf("held, then dropped at offset %d when another save was accepted", off)
		}
	}
	a.open = a.open[:0]
	a.history = append(a.history, o.recs...)
	a.saves = append(a.saves, &accepted{save: o.save, expected: o.expected, recs: o.recs})
	a.version = o.expected + int64(o.count)
}

// Check applies the rule to records (any order: they are sorted by topic,
// partition and offset first; transaction markers must not be among them),
// computes every aggregate's winning history and checks the observations
// against it.
func Check(records []*kgo.Record, obs Observations) Report {
	g := newEngine()
	g.run(records)
	g.check(obs)
	g.rep.Violations = g.viol
	return g.rep
}

// Histories applies the rule to records like Check and returns every
// aggregate's winning history, in version order.
func Histories(records []*kgo.Record) map[uuid.UUID][]Event {
	g := newEngine()
	g.run(records)
	out := map[uuid.UUID][]Event{}
	for _, a := range g.order {
		for _, e := range a.history {
			out[a.agg] = append(out[a.agg], eventOf(e))
		}
	}
	return out
}

func eventOf(e *event) Event {
	return Event{ID: e.id, Aggregate: e.agg, Version: e.version, Expected: e.expected, Save: e.save,
		Topic: e.r.Topic, Partition: e.r.Partition, Offset: e.r.Offset}
}

func (g *engine) check(obs Observations) {
	// The histories themselves.
	where := map[uuid.UUID]*event{} // event id -> its place in a history
	inSave := map[saveKey]int{}     // how many events of a save are in the history
	g.rep.Aggregates = len(g.byAgg)
	for _, a := range g.order {
		for i, e := range a.history {
			g.rep.Events++
			if e.version != int64(i+1) {
				g.violate("version-sequence", e.r, a.agg, e.save, "event %s is the aggregate's event %d but carries version %d", e.id, i+1, e.version)
			}
			if prev := where[e.id]; prev != nil {
				g.violate("duplicate-event", e.r, a.agg, e.save, "event %s is also in the history at %s/%d@%d (version %d of %s)",
					e.id, prev.r.Topic, prev.r.Partition, prev.r.Offset, prev.version, prev.agg)
			} else {
				where[e.id] = e
			}
			inSave[saveKey{a.agg, e.save}]++
		}
		for _, s := range a.saves {
			if len(s.recs) != s.recs[0].count {
				g.violate("partial-save", s.recs[0].r, a.agg, s.save, "the history holds %d of the save's %d events", len(s.recs), s.recs[0].count)
			}
		}
	}
	acceptedOf := func(agg, save uuid.UUID) []*accepted {
		var out []*accepted
		for _, a := range g.byAgg[agg] {
			for _, s := range a.saves {
				if s.save == save {
					out = append(out, s)
				}
			}
		}
		return out
	}

	observed := map[saveKey]string{}
	note := func(kind string, s Save) {
		k := saveKey{s.Aggregate, s.Save}
		if prev, ok := observed[k]; ok && prev != kind {
			g.violate("contradictory-observations", nil, s.Aggregate, s.Save, "%s was observed both %s and %s", s, prev, kind)
		}
		observed[k] = kind
	}

	for _, s := range obs.Acked {
		g.rep.Acked++
		note("acked", s)
		if g.checkAcked(s, acceptedOf(s.Aggregate, s.Save), where) {
			g.rep.AckedVerified++
		}
	}
	for _, s := range obs.Conflicted {
		g.rep.Conflicts++
		note("conflicted", s)
		ok := true
		for _, acc := range acceptedOf(s.Aggregate, s.Save) {
			ok = false
			g.violate("conflict-applied", acc.recs[0].r, s.Aggregate, s.Save,
				"%s got a conflict error, but a save with its id won versions %d..%d", s, acc.expected+1, acc.expected+int64(len(acc.recs)))
		}
		for _, id := range s.Events {
			if e := where[id]; e != nil && (e.save != s.Save || e.agg != s.Aggregate) {
				ok = false
				g.violate("conflict-applied", e.r, s.Aggregate, s.Save,
					"%s got a conflict error, but its event %s is version %d of %s (in save %s)", s, id, e.version, e.agg, e.save)
			}
		}
		if ok {
			g.rep.ConflictsVerified++
		}
	}
	for _, s := range obs.Unknown {
		g.rep.Unknown++
		note("unknown", s)
		present, first := inHistory(s, where)
		accs := acceptedOf(s.Aggregate, s.Save)
		switch {
		case present == 0 && len(accs) == 0:
			g.rep.UnknownLost++
		case present == len(s.Events):
			if g.checkAcked(s, accs, where) {
				g.rep.UnknownWon++
			}
		case present == 0:
			g.violate("save-id-reused", accs[0].recs[0].r, s.Aggregate, s.Save,
				"%s of unknown outcome has none of its events in the history, but a save with its id won versions %d..%d",
				s, accs[0].expected+1, accs[0].expected+int64(len(accs[0].recs)))
		default:
			g.violate("partial-save", recordOf(first), s.Aggregate, s.Save, "%s of unknown outcome has %d of its %d events in the history", s, present, len(s.Events))
		}
	}
	if obs.Complete {
		for _, a := range g.order {
			for _, acc := range a.saves {
				if _, ok := observed[saveKey{a.agg, acc.save}]; !ok {
					g.violate("unobserved-save", acc.recs[0].r, a.agg, acc.save,
						"the save won versions %d..%d, but no writer observed it", acc.expected+1, acc.expected+int64(len(acc.recs)))
				}
			}
		}
	}
}

// inHistory returns how many of a save's events are in a history, and the
// first of them.
func inHistory(s Save, where map[uuid.UUID]*event) (present int, first *event) {
	for _, id := range s.Events {
		if e := where[id]; e != nil {
			present++
			if first == nil {
				first = e
			}
		}
	}
	return present, first
}

func recordOf(e *event) *kgo.Record {
	if e == nil {
		return nil
	}
	return e.r
}

// checkAcked checks that a save its writer considers applied is in the
// history exactly once, as the writer wrote it.
func (g *engine) checkAcked(s Save, accs []*accepted, where map[uuid.UUID]*event) bool {
	var mine []*accepted
	for _, acc := range accs {
		if acc.expected == s.Expected {
			mine = append(mine, acc)
		}
	}
	if len(mine) == 0 {
		present, first := inHistory(s, where)
		if present > 0 {
			g.violate("partial-save", recordOf(first), s.Aggregate, s.Save, "%s: %d of its %d events are in the history, but not as that save", s, present, len(s.Events))
			return false
		}
		g.violate("acked-lost", g.firstRecord(s), s.Aggregate, s.Save, "%s is not in the history: %s", s, g.describe(s))
		return false
	}
	ok := true
	if len(mine) > 1 {
		g.violate("acked-duplicated", mine[1].recs[0].r, s.Aggregate, s.Save, "%s won %d times", s, len(mine))
		ok = false
	}
	acc := mine[0]
	if len(acc.recs) != len(s.Events) {
		g.violate("partial-save", acc.recs[0].r, s.Aggregate, s.Save, "%s: the history holds a save of %d events under its id", s, len(acc.recs))
		return false
	}
	for i, e := range acc.recs {
		if e.id != s.Events[i] {
			g.violate("acked-mismatch", e.r, s.Aggregate, s.Save, "%s: event %d is %s in the history, the writer wrote %s", s, i, e.id, s.Events[i])
			ok = false
		}
		if e.version != s.Expected+int64(i)+1 {
			g.violate("acked-mismatch", e.r, s.Aggregate, s.Save, "%s: event %d has version %d, want %d", s, i, e.version, s.Expected+int64(i)+1)
			ok = false
		}
	}
	if s.Offsets != nil {
		if len(s.Offsets) != len(acc.recs) {
			g.violate("acked-position", acc.recs[0].r, s.Aggregate, s.Save, "%s: Append returned %d offsets for %d events", s, len(s.Offsets), len(acc.recs))
			ok = false
		} else {
			for i, e := range acc.recs {
				if e.r.Partition != s.Partition || e.r.Offset != s.Offsets[i] {
					g.violate("acked-position", e.r, s.Aggregate, s.Save, "%s: Append said event %d is at %d@%d, the winning copy is at %d@%d",
						s, i, s.Partition, s.Offsets[i], e.r.Partition, e.r.Offset)
					ok = false
				}
			}
		}
	}
	return ok
}

// firstRecord returns the first record of a save, nil when it has none.
func (g *engine) firstRecord(s Save) *kgo.Record {
	if recs := g.recsOf[saveKey{s.Aggregate, s.Save}]; len(recs) > 0 {
		return recs[0].r
	}
	return nil
}

// describe says what became of the records of a save.
func (g *engine) describe(s Save) string {
	recs := g.recsOf[saveKey{s.Aggregate, s.Save}]
	if len(recs) == 0 {
		return "no record of the save was read"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d records of the save were read:", len(recs))
	for _, e := range recs {
		fmt.Fprintf(&b, " [%d@%d expected %d index %d/%d event %s: %s]", e.r.Partition, e.r.Offset, e.expected, e.index(), e.count, e.id, g.fate[e])
	}
	return b.String()
}
