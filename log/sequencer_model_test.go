package log_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

// This file checks log.Sequencer against its contract by brute force: it
// builds logs of an aggregate (records of several saves, retried, duplicated,
// incomplete, out of order, plus foreign records) and checks, for each, the
// properties every reader and every writer relies on:
//
//	(a) all or nothing: a save is accepted with all its events, by one Next
//	    call, at most once, or not at all;
//	(b) one winner per version: the accepted events are versions 1..N, each
//	    once, in order, and Version never decreases;
//	(c) the writer's verdict is the readers': Append's check (log/kafka.go,
//	    check.apply), run from every ReadTo its caller could have passed,
//	    reports success iff a full replay accepts the save;
//	(d) Resume is sound: replaying from Resume(P) with Sequencer{Version: v}
//	    accepts exactly the saves the full replay accepts after P;
//	(e) the full replay's outcome of every record, its Incomplete and its
//	    Resume are those of modelRule, the rule of Sequencer's doc comment
//	    written apart from it. (a) to (d) hold for any consistent rule;
//	    this one says it is the documented rule.
//
// Next must not panic either.

// A modelSave is one save of a model log: the events one Append wrote.
type modelSave struct {
	name     string      // A, B, C... in failure reports; X, Y, Z for foreign saves
	id       uuid.UUID   // Event.Save
	expected int64       // Event.Expected
	events   []uuid.UUID // the event ids in version order; len is Event.SaveEvents
	foreign  bool        // written by no caller of Append of the model: a stray or hostile record
}

func newModelSave(name string, expected int64, events int, foreign bool) modelSave {
	if events > modelMaxEvents {
		panic("too many events for the model")
	}
	s := modelSave{name: name, id: uuid.New(), expected: expected, foreign: foreign}
	for range events {
		s.events = append(s.events, uuid.New())
	}
	return s
}

// A modelRecord is one stored record: event index of save save. A retry's
// records and a duplicated record are equal to the original ones: same save
// id, same event id, same version.
type modelRecord struct{ save, index int }

// A modelLog is one aggregate's records in partition order.
type modelLog struct {
	saves   []modelSave
	records []modelRecord
	offsets []int64     // record i's offset, strictly increasing
	events  []log.Event // record i as a reader gets it (see prepare)

	// Buffers of check, kept from one log to the next.
	version, resume []int64
	incomplete, by  []int
	full, got       []modelDecision
	accepted        [][]log.Event
	held            []modelHeld
}

// reuse returns buf resized to n zero elements.
func reuse[T any](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	buf = buf[:n]
	clear(buf)
	return buf
}

// prepare builds the stored events from saves, records and offsets.
func (l *modelLog) prepare() {
	l.events = l.events[:0]
	for i, r := range l.records {
		s := &l.saves[r.save]
		l.events = append(l.events, log.Event{
			ID:               s.events[r.index],
			Type:             "model",
			AggregateType:    "model",
			AggregateVersion: s.expected + int64(r.index) + 1,
			Position:         log.Position{Offset: l.offsets[i]},
			Expected:         s.expected,
			Save:             s.id,
			SaveEvents:       len(s.events),
		})
	}
}

// label names record i: its save and event index (A1 is the second event of
// save A), and its offset when offsets are not the record indexes.
func (l *modelLog) label(i int) string {
	r := l.records[i]
	if l.offsets[i] == int64(i) {
		return fmt.Sprintf("%s%d", l.saves[r.save].name, r.index)
	}
	return fmt.Sprintf("%s%d@%d", l.saves[r.save].name, r.index, l.offsets[i])
}

func (l *modelLog) String() string {
	var b strings.Builder
	b.WriteString("records:")
	for i := range l.records {
		b.WriteString(" " + l.label(i))
	}
	b.WriteString("; saves:")
	for _, s := range l.saves {
		fmt.Fprintf(&b, " %s expected %d with %d events", s.name, s.expected, len(s.events))
		if s.foreign {
			b.WriteString(" (foreign)")
		}
		b.WriteString(",")
	}
	return strings.TrimSuffix(b.String(), ",")
}

// readTo is the offset a reader that has read records [0,p) is at.
func (l *modelLog) readTo(p int) int64 {
	switch {
	case p < len(l.records):
		return l.offsets[p]
	case p > 0:
		return l.offsets[p-1] + 1
	}
	return 0
}

// index returns the index of the first record at or after offset off.
func (l *modelLog) index(off int64) int {
	i, _ := slices.BinarySearch(l.offsets, off)
	return i
}

// modelMaxEvents is the most events a save of the model has.
const modelMaxEvents = 4

// A modelDecision is a save accepted by a reader: by record at, with its
// events stored at positions.
type modelDecision struct {
	save      int
	at        int
	positions [modelMaxEvents]int64
}

func (l *modelLog) decision(at int, evs []log.Event) modelDecision {
	d := modelDecision{save: l.records[at].save, at: at}
	for i, e := range evs {
		d.positions[i] = e.Position.Offset
	}
	return d
}

func (l *modelLog) describe(ds []modelDecision) string {
	if len(ds) == 0 {
		return "nothing"
	}
	var parts []string
	for _, d := range ds {
		n := len(l.saves[d.save].events)
		parts = append(parts, fmt.Sprintf("%s at %s %v", l.saves[d.save].name, l.label(d.at), d.positions[:n]))
	}
	return strings.Join(parts, ", ")
}

// checkOutcome checks what Next made of record i, the Sequencer going from
// version before to version after: properties (a) and (b).
func (l *modelLog) checkOutcome(i int, out log.Outcome, evs []log.Event, before, after int64) error {
	where := func() string { return fmt.Sprintf("record %d (%s) at version %d", i, l.label(i), before) }
	if after < before {
		return fmt.Errorf("%s: %s, and Version went down to %d", where(), out, after)
	}
	switch out {
	case log.Ignored, log.Held, log.Rejected:
		if len(evs) != 0 || after != before {
			return fmt.Errorf("(a) %s: %s with %d events, Version now %d", where(), out, len(evs), after)
		}
		return nil
	case log.Accepted:
	default:
		return fmt.Errorf("%s: unknown outcome %d", where(), out)
	}
	s := &l.saves[l.records[i].save]
	if s.expected != before {
		return fmt.Errorf("(b) %s: accepted save %s, which expected version %d", where(), s.name, s.expected)
	}
	if len(evs) != len(s.events) {
		return fmt.Errorf("(a) %s: accepted %d events of save %s, which has %d", where(), len(evs), s.name, len(s.events))
	}
	for j, e := range evs {
		if e.Save != s.id || e.ID != s.events[j] || e.Expected != s.expected || e.AggregateVersion != before+int64(j)+1 {
			return fmt.Errorf("(a) %s: accepted event %d is not event %d of save %s at version %d: %+v", where(), j, j, s.name, before+int64(j)+1, e)
		}
		k := l.index(e.Position.Offset)
		if k >= len(l.records) || l.offsets[k] != e.Position.Offset || l.records[k] != (modelRecord{l.records[i].save, j}) || k > i {
			return fmt.Errorf("(a) %s: accepted event %d has position %d, which does not hold it", where(), j, e.Position.Offset)
		}
		if j > 0 && e.Position.Offset <= evs[j-1].Position.Offset {
			return fmt.Errorf("(a) %s: accepted events at positions out of order", where())
		}
	}
	if evs[len(evs)-1].Position.Offset != l.offsets[i] {
		return fmt.Errorf("(a) %s: accepted a save whose last event is at %d", where(), evs[len(evs)-1].Position.Offset)
	}
	if after != before+int64(len(evs)) {
		return fmt.Errorf("(b) %s: accepted %d events, Version now %d", where(), len(evs), after)
	}
	return nil
}

// replay applies seq to the records at or after offset from, as a reader
// resuming there would, and returns the saves it accepts (in l.got) and its
// version.
func (l *modelLog) replay(from int64, seq log.Sequencer) ([]modelDecision, int64, error) {
	got := l.got[:0]
	defer func() { l.got = got }()
	for i := l.index(from); i < len(l.records); i++ {
		before := seq.Version
		out, evs := seq.Next(l.events[i])
		if err := l.checkOutcome(i, out, evs, before, seq.Version); err != nil {
			return nil, 0, fmt.Errorf("replaying from %d at version %d: %w", from, before, err)
		}
		if out == log.Accepted {
			got = append(got, l.decision(i, evs))
		}
	}
	return got, seq.Version, nil
}

// appendCheck is Append's check (log/kafka.go, Append and check.apply) for
// save s, whose copy has its first record at offset first and its last at
// offset last, and whose caller passed readTo as Expected.ReadTo: it replays
// the records from readTo to last and reports whether the save won.
func (l *modelLog) appendCheck(s int, readTo, first, last int64) bool {
	save := &l.saves[s]
	from, seq := readTo, log.Sequencer{Version: save.expected}
	if from <= 0 || from > first {
		from, seq = 0, log.Sequencer{}
	}
	for i := l.index(from); i < len(l.records) && l.offsets[i] <= last; i++ {
		out, evs := seq.Next(l.events[i])
		if out == log.Accepted && modelSameSave(evs, save) {
			return true
		}
	}
	return false
}

// modelSameSave is sameSave of log/kafka.go: the same save id and the same
// event ids.
func modelSameSave(evs []log.Event, s *modelSave) bool {
	if len(evs) != len(s.events) {
		return false
	}
	for i, e := range evs {
		if e.Save != s.id || e.ID != s.events[i] {
			return false
		}
	}
	return true
}

// copyStart returns the index of the first record of the latest copy of
// record last's save that ends with record last and has its records in
// version order, as one Append writes them; -1 if there is none.
func (l *modelLog) copyStart(last int) int {
	r := l.records[last]
	at := last
	for want := r.index - 1; want >= 0; want-- {
		for at--; at >= 0 && l.records[at] != (modelRecord{r.save, want}); at-- {
		}
		if at < 0 {
			return -1
		}
	}
	return at
}

// modelRule is the winner rule of Sequencer's doc comment, written apart
// from Sequencer for property (e). It knows the records by their save in
// the model, where Sequencer matches them by save id, expected version and
// event count: the same thing here, as all records of a model save agree
// on those. Like Sequencer, it does not remember decided saves: a copy of a
// save that completes after an earlier copy was rejected is decided again,
// and wins if the aggregate has come to the version it expected (only
// records out of their producers' order can do that: an Append's copies
// all land after the version it read).
type modelRule struct {
	version int64
	held    []modelHeld // per save of the model
}

// modelHeld is what modelRule holds of a save: its first n records, the
// first at offset first.
type modelHeld struct {
	n     int
	first int64
}

// next applies the rule to record i of l.
func (m *modelRule) next(l *modelLog, i int) log.Outcome {
	r, off := l.records[i], l.offsets[i]
	save, h := &l.saves[r.save], &m.held[r.save]
	switch {
	case save.expected < m.version: // it can never win
		return log.Ignored
	case save.expected > m.version: // it lost: only an accepted save moves the version, and that drops it
		return log.Rejected
	case r.index != h.n: // its earlier records are not held, or it repeats one
		return log.Ignored
	case h.n == 0:
		h.first = off
	}
	if h.n++; h.n < len(save.events) {
		return log.Held
	}
	m.version += int64(len(save.events))
	clear(m.held) // the other incomplete saves were not built on this version
	return log.Accepted
}

func (m *modelRule) incomplete() int {
	n := 0
	for _, h := range m.held {
		if h.n > 0 {
			n++
		}
	}
	return n
}

// resume is the first record of the earliest save held that can still
// complete, or next.
func (m *modelRule) resume(next int64) int64 {
	r := next
	for _, h := range m.held {
		if h.n > 0 {
			r = min(r, h.first)
		}
	}
	return r
}

// check checks properties (a) to (e) on l; it returns the first violation.
func (l *modelLog) check() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	n := len(l.records)

	// The full replay, from the start. version[p] and resume[p] are the
	// reader's Version and Resume once it has read records [0,p).
	l.version, l.resume, l.incomplete = reuse(l.version, n+1), reuse(l.resume, n+1), reuse(l.incomplete, n+1)
	l.by, l.held = reuse(l.by, len(l.saves)), reuse(l.held, len(l.saves))
	version, resume, incomplete := l.version, l.resume, l.incomplete
	acceptedBy := l.by // the record that got each save accepted, -1 if none
	for i := range acceptedBy {
		acceptedBy[i] = -1
	}
	full, accepted := l.full[:0], l.accepted[:0]
	defer func() { l.full, l.accepted = full, accepted }()
	var s log.Sequencer
	rule := modelRule{held: l.held}
	for p := 0; ; p++ {
		version[p], incomplete[p] = s.Version, s.Incomplete()
		next := l.readTo(p)
		resume[p] = s.Resume(next)
		if resume[p] < 0 || resume[p] > next {
			return fmt.Errorf("(d) after %d records: Resume(%d) = %d", p, next, resume[p])
		}
		if v, in, r := rule.version, rule.incomplete(), rule.resume(next); v != version[p] || in != incomplete[p] || r != resume[p] {
			return fmt.Errorf("(e) after %d records: Version %d, Incomplete %d, Resume %d; the rule has %d, %d, %d",
				p, version[p], incomplete[p], resume[p], v, in, r)
		}
		if p == n {
			break
		}
		out, evs := s.Next(l.events[p])
		if err := l.checkOutcome(p, out, evs, version[p], s.Version); err != nil {
			return err
		}
		if want := rule.next(l, p); out != want {
			return fmt.Errorf("(e) record %d (%s) at version %d: %s; the rule says %s", p, l.label(p), version[p], out, want)
		}
		if out == log.Accepted {
			save := l.records[p].save
			if acceptedBy[save] >= 0 {
				return fmt.Errorf("(a) save %s accepted twice, by %s and by %s", l.saves[save].name, l.label(acceptedBy[save]), l.label(p))
			}
			acceptedBy[save] = p
			full = append(full, l.decision(p, evs))
			accepted = append(accepted, evs)
		}
	}
	// The events of an Accepted outcome stay as they were returned.
	for i, evs := range accepted {
		if d := l.decision(full[i].at, evs); d != full[i] || !modelSameSave(evs, &l.saves[d.save]) {
			return fmt.Errorf("(a) the events accepted by %s changed after later records", l.label(full[i].at))
		}
	}

	// (d) Every reader resuming where Resume said decides as the full
	// replay from there on. Where the full replay holds no save, its
	// Sequencer is Sequencer{Version: version[p]} and Resume is p: the
	// resumed reader is the full replay, nothing to check. Consecutive
	// positions with the same Resume and version resume alike: one replay.
	var got []modelDecision
	var v int64
	for p := 0; p <= n; p++ {
		if incomplete[p] == 0 {
			continue
		}
		if p == 0 || incomplete[p-1] == 0 || resume[p] != resume[p-1] || version[p] != version[p-1] {
			if got, v, err = l.replay(resume[p], log.Sequencer{Version: version[p]}); err != nil {
				return err
			}
		}
		k := 0
		for k < len(full) && full[k].at < p {
			k++
		}
		want := full[k:]
		if !slices.Equal(got, want) || v != s.Version {
			return fmt.Errorf("(d) after %d records (version %d, Resume %d): resuming accepts %s up to version %d; the full replay accepts %s after them, up to version %d",
				p, version[p], resume[p], l.describe(got), v, l.describe(want), s.Version)
		}
	}

	// (c) Every Append's check agrees with the readers, whatever its caller
	// had read. An Append writes a copy of its save with its records in
	// version order, a few offsets apart; each such copy is checked (those
	// of foreign saves too: some Append might have written them) from every
	// read position P at or before the copy's first record where a reader
	// is at the version the save expected, with ReadTo the reader's Resume.
	// Where the full replay holds no save at P, ReadTo is P and the check's
	// Sequencer is the full replay's: the check wins iff the full replay
	// accepts the save from P to the copy's last record. Consecutive
	// positions with the same ReadTo check alike: one check.
	for last, r := range l.records {
		save := &l.saves[r.save]
		if r.index != len(save.events)-1 {
			continue
		}
		first := l.copyStart(last)
		if first < 0 {
			continue // no Append wrote such a copy
		}
		by := acceptedBy[r.save]
		won := false
		for p := 0; p <= first; p++ {
			switch {
			case version[p] != save.expected:
				continue
			case incomplete[p] == 0:
				won = p <= by && by <= last
			case p == 0 || incomplete[p-1] == 0 || resume[p] != resume[p-1] || version[p-1] != save.expected:
				won = l.appendCheck(r.save, resume[p], l.offsets[first], l.offsets[last])
			}
			if won != (by >= 0) {
				return fmt.Errorf("(c) save %s: the Append whose copy is %s..%s, its caller having read %d records (ReadTo %d), reports won=%t; readers accept %s",
					save.name, l.label(first), l.label(last), p, resume[p], won, l.describe(full))
			}
		}
	}
	return nil
}

// modelShape is how one save of the exhaustive scope lands in the log: the
// event indexes of its records, a multiset.
type modelShape struct {
	events   int
	expected int64
	records  []int
	foreign  bool
}

// modelShapes returns the shapes of the exhaustive scope for saves of 1 or
// 2 events expecting versions 0..maxExpected: stored once, retried (two
// whole copies), with one record duplicated, or missing its last record;
// and the foreign records: one record of a save of one event that no
// Append of the model wrote.
func modelShapes(maxExpected int64) (saves, foreign []modelShape) {
	for e := int64(0); e <= maxExpected; e++ {
		saves = append(saves,
			modelShape{events: 1, expected: e, records: []int{0}},
			modelShape{events: 1, expected: e, records: []int{0, 0}},
			modelShape{events: 2, expected: e, records: []int{0, 1}},
			modelShape{events: 2, expected: e, records: []int{0, 1, 0, 1}},
			modelShape{events: 2, expected: e, records: []int{0, 1, 0}},
			modelShape{events: 2, expected: e, records: []int{0, 1, 1}},
			modelShape{events: 2, expected: e, records: []int{0}},
		)
		foreign = append(foreign, modelShape{events: 1, expected: e, records: []int{0}, foreign: true})
	}
	return saves, foreign
}

// nextPermutation rearranges a into the next ordering in lexicographic
// order, false after the last: from a sorted a, it visits every distinct
// ordering of the multiset once.
func nextPermutation(a []int) bool {
	i := len(a) - 2
	for i >= 0 && a[i] >= a[i+1] {
		i--
	}
	if i < 0 {
		return false
	}
	j := len(a) - 1
	for a[j] <= a[i] {
		j--
	}
	a[i], a[j] = a[j], a[i]
	slices.Reverse(a[i+1:])
	return true
}

// forEachOrdering calls f with a log of the saves of shapes for each
// distinct ordering of their records, offsets 0, 1, 2...; it stops when f
// returns false.
func forEachOrdering(shapes []modelShape, f func(*modelLog) bool) {
	l := &modelLog{}
	var kinds []modelRecord // each distinct record
	var seq []int           // the records, as indexes in kinds
	plain, foreign := 0, 0
	for s, sh := range shapes {
		name := string(rune('A' + plain))
		if sh.foreign {
			name = string(rune('X' + foreign))
			foreign++
		} else {
			plain++
		}
		l.saves = append(l.saves, newModelSave(name, sh.expected, sh.events, sh.foreign))
		for _, i := range sh.records {
			k := slices.Index(kinds, modelRecord{s, i})
			if k < 0 {
				k = len(kinds)
				kinds = append(kinds, modelRecord{s, i})
			}
			seq = append(seq, k)
		}
	}
	slices.Sort(seq)
	l.records = make([]modelRecord, len(seq))
	l.offsets = make([]int64, len(seq))
	for i := range l.offsets {
		l.offsets[i] = int64(i)
	}
	for {
		for i, k := range seq {
			l.records[i] = kinds[k]
		}
		l.prepare()
		if !f(l) || !nextPermutation(seq) {
			return
		}
	}
}

// modelCombinations returns every combination of up to maxSaves save shapes
// and at most one foreign shape with size records in all, each once
// whatever the order of its saves (every ordering of their records is
// tried anyway). It leaves out the combinations in which no record expects
// version 0: from Sequencer{} such an aggregate never moves, no save of it
// can be accepted, and the properties hold trivially.
func modelCombinations(saves, foreign []modelShape, maxSaves, size int) [][]modelShape {
	var combos [][]modelShape
	var combine func(from int, shapes []modelShape, records int)
	combine = func(from int, shapes []modelShape, records int) {
		if records == size {
			combos = append(combos, shapes)
		}
		for _, f := range foreign {
			if records+len(f.records) == size {
				combos = append(combos, append(slices.Clip(shapes), f))
			}
		}
		if len(shapes) == maxSaves {
			return
		}
		for i := from; i < len(saves); i++ {
			if records+len(saves[i].records) <= size {
				combine(i, append(slices.Clip(shapes), saves[i]), records+len(saves[i].records))
			}
		}
	}
	combine(0, nil, 0)
	return slices.DeleteFunc(combos, func(c []modelShape) bool {
		return !slices.ContainsFunc(c, func(s modelShape) bool { return s.expected == 0 })
	})
}

// TestSequencerExhaustive checks every ordering of the records of every
// combination of up to 3 saves and 1 foreign record of the exhaustive scope
// (see modelShapes and modelCombinations) with up to 6 records in all (5
// with -short), the saves expecting versions 0..3 (0..2 in logs of 6
// records). That is the largest scope that fits in ~20 s with -race on 2
// CPUs: 6 records with versions 0..3 are 889,411 orderings, ~30 s of CPU,
// 7 records minutes, and the full space (3 saves of up to 4 records each
// and a foreign record) billions of orderings. Orderings are tried by
// growing record count, so that a violation found is a shortest one.
func TestSequencerExhaustive(t *testing.T) {
	const maxSaves = 3
	maxExpected := []int64{1: 3, 2: 3, 3: 3, 4: 3, 5: 3, 6: 2} // by record count
	if testing.Short() {
		maxExpected = maxExpected[:6]
	}
	start := time.Now()
	var total, multisets int64
	for size := 1; size < len(maxExpected) && !t.Failed(); size++ {
		saveShapes, foreignShapes := modelShapes(maxExpected[size])
		combos := modelCombinations(saveShapes, foreignShapes, maxSaves, size)
		var next, checked atomic.Int64
		var failed atomic.Bool
		var wg sync.WaitGroup
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for !failed.Load() {
					i := next.Add(1) - 1
					if i >= int64(len(combos)) {
						return
					}
					forEachOrdering(combos[i], func(l *modelLog) bool {
						checked.Add(1)
						if err := l.check(); err != nil {
							if failed.CompareAndSwap(false, true) {
								t.Errorf("%v\n%s", err, l)
							}
						}
						return !failed.Load()
					})
				}
			})
		}
		wg.Wait()
		total += checked.Load()
		multisets += int64(len(combos))
		t.Logf("%d records, versions 0..%d: %d orderings of %d multisets checked", size, maxExpected[size], checked.Load(), len(combos))
	}
	t.Logf("scope: up to %d saves of 1 or 2 events, each stored once, retried, with a record duplicated or without its last record, and up to 1 foreign record; up to %d records in all",
		maxSaves, len(maxExpected)-1)
	t.Log(fmt.Sprintf("checked %d orderings of %d record multisets in %v", total, multisets, time.Since(start).Round(time.Millisecond)))
}

// randomModelLog returns a log beyond the exhaustive scope: up to 6 saves of
// up to 4 events, mostly built on the version the previous ones reach but
// some stale or ahead, some retried, some copies incomplete; the copies
// interleaved as concurrent producers write them; then records swapped,
// duplicated and lost, foreign records added, and gaps between offsets.
func randomModelLog(rng *rand.Rand) *modelLog {
	l := &modelLog{}
	var copies [][]modelRecord // each in the order its producer writes it
	v := int64(0)
	for s := range 1 + rng.IntN(6) {
		n := 1 + rng.IntN(4)
		expected := v
		if rng.IntN(3) == 0 {
			expected = rng.Int64N(v + 3) // stale, racing or ahead
		} else {
			v += int64(n)
		}
		l.saves = append(l.saves, newModelSave(string(rune('A'+s)), expected, n, false))
		nCopies := 1
		if rng.IntN(4) == 0 {
			nCopies += 1 + rng.IntN(2)
		}
		for range nCopies {
			c := make([]modelRecord, n)
			for i := range c {
				c[i] = modelRecord{s, i}
			}
			if rng.IntN(8) == 0 {
				c = c[:rng.IntN(n)] // a copy that never completes
			}
			copies = append(copies, c)
		}
	}
	for f := range rng.IntN(3) {
		n := 1 + rng.IntN(3)
		l.saves = append(l.saves, newModelSave(string(rune('X'+f)), rng.Int64N(v+2), n, true))
		copies = append(copies, []modelRecord{{len(l.saves) - 1, rng.IntN(n)}})
	}
	for {
		copies = slices.DeleteFunc(copies, func(c []modelRecord) bool { return len(c) == 0 })
		if len(copies) == 0 {
			break
		}
		c := rng.IntN(len(copies))
		l.records = append(l.records, copies[c][0])
		copies[c] = copies[c][1:]
	}
	for range rng.IntN(3) { // out of order
		if len(l.records) > 1 {
			i, j := rng.IntN(len(l.records)), rng.IntN(len(l.records))
			l.records[i], l.records[j] = l.records[j], l.records[i]
		}
	}
	for range rng.IntN(3) { // duplicated
		if len(l.records) > 0 {
			r := l.records[rng.IntN(len(l.records))]
			l.records = slices.Insert(l.records, rng.IntN(len(l.records)+1), r)
		}
	}
	for range rng.IntN(2) { // lost
		if len(l.records) > 0 {
			i := rng.IntN(len(l.records))
			l.records = slices.Delete(l.records, i, i+1)
		}
	}
	off := rng.Int64N(3)
	for range l.records {
		l.offsets = append(l.offsets, off)
		off++
		switch rng.IntN(16) {
		case 0, 1:
			off += rng.Int64N(1000) // other aggregates' records
		case 2: // many of them
			off += 100_000 + rng.Int64N(16)
		}
	}
	l.prepare()
	return l
}

// TestSequencerRandom checks properties (a) to (e) on random logs beyond the
// exhaustive scope.
func TestSequencerRandom(t *testing.T) {
	logs := 5000
	if testing.Short() {
		logs = 1000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	records := 0
	for i := range logs {
		l := randomModelLog(rng)
		records += len(l.records)
		if err := l.check(); err != nil {
			t.Fatalf("random log %d: %v\n%s", i, err, l)
		}
	}
	t.Log(fmt.Sprintf("checked %d random logs (%d records) in %v", logs, records, time.Since(start).Round(time.Millisecond)))
}
