package invariant_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/invariant"
	"github.com/snaplog/snaplog/log"
)

// partition builds the records of one partition, with consecutive offsets
// unless told otherwise.
type partition struct {
	topic string
	p     int32
	next  int64
	recs  []*kgo.Record
}

func newPartition() *partition { return &partition{topic: "snaplog.events.Account", p: 0} }

// save is a save of some events, whose records the test places one by one.
type save struct {
	agg      uuid.UUID
	expected int64
	id       uuid.UUID
	events   []uuid.UUID
}

func newSave(agg uuid.UUID, expected int64, n int) *save {
	s := &save{agg: agg, expected: expected, id: uuid.New()}
	for range n {
		s.events = append(s.events, uuid.New())
	}
	return s
}

func (s *save) obs() invariant.Save {
	return invariant.Save{Aggregate: s.agg, Expected: s.expected, Save: s.id, Events: slices.Clone(s.events)}
}

// record returns the record of event i of the save, as the record format
// has it.
func (s *save) record(i int) *kgo.Record {
	return eventRecord(s.agg.String(), s.events[i], s.expected, s.id, len(s.events), i)
}

func eventRecord(key string, id uuid.UUID, expected int64, save uuid.UUID, count, i int) *kgo.Record {
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	return &kgo.Record{
		Key:   []byte(key),
		Value: []byte(`{}`),
		Headers: []kgo.RecordHeader{
			h("snaplog.event_id", id.String()),
			h("snaplog.event_type", "Deposited"),
			h("snaplog.aggregate_type", "Account"),
			h("snaplog.version", strconv.FormatInt(expected+int64(i)+1, 10)),
			h("snaplog.expected", strconv.FormatInt(expected, 10)),
			h("snaplog.save", save.String()),
			h("snaplog.save_events", strconv.Itoa(count)),
			h("snaplog.occurred_at", time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC).Format(time.RFC3339Nano)),
		},
	}
}

// put appends a record at the next offset and returns its offset.
func (p *partition) put(r *kgo.Record) int64 {
	r.Topic, r.Partition, r.Offset = p.topic, p.p, p.next
	p.next++
	p.recs = append(p.recs, r)
	return r.Offset
}

// add appends records i... of a save (all of them when none is given).
func (p *partition) add(s *save, is ...int) {
	if len(is) == 0 {
		for i := range s.events {
			is = append(is, i)
		}
	}
	for _, i := range is {
		p.put(s.record(i))
	}
}

func (p *partition) skip(n int64) { p.next += n }

func ids(evs []invariant.Event) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func wantHistory(t *testing.T, p *partition, agg uuid.UUID, want ...[]uuid.UUID) {
	t.Helper()
	got := ids(invariant.Histories(p.recs)[agg])
	w := slices.Concat(want...)
	if !slices.Equal(got, w) {
		t.Fatalf("history of %s:\n got %v\nwant %v", agg, got, w)
	}
}

func violations(rep invariant.Report, check string) []invariant.Violation {
	var out []invariant.Violation
	for _, v := range rep.Violations {
		if v.Check == check {
			out = append(out, v)
		}
	}
	return out
}

// wantOnly fails unless the report has violations of exactly these checks.
func wantOnly(t *testing.T, rep invariant.Report, checks ...string) {
	t.Helper()
	var got []string
	for _, v := range rep.Violations {
		got = append(got, v.Check)
		t.Logf("violation: %s", v)
	}
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(checks)
	if !slices.Equal(got, checks) {
		t.Fatalf("violations of checks %v, want %v", got, checks)
	}
}

func TestConstantsMatchTheRecordFormat(t *testing.T) {
	if invariant.MaxSaveEvents != log.MaxSaveEvents {
		t.Errorf("MaxSaveEvents %d, log.MaxSaveEvents %d", invariant.MaxSaveEvents, log.MaxSaveEvents)
	}
	r := eventRecord(uuid.NewString(), uuid.New(), 0, uuid.New(), 1, 0)
	var keys []string
	for _, h := range r.Headers {
		keys = append(keys, h.Key)
	}
	for _, h := range []string{log.HeaderEventID, log.HeaderEventType, log.HeaderAggregateType, log.HeaderVersion,
		log.HeaderExpected, log.HeaderSave, log.HeaderSaveEvents, log.HeaderOccurredAt} {
		if !slices.Contains(keys, h) {
			t.Errorf("log writes header %s, the checker's records do not have it", h)
		}
	}
}

func TestCheckVerifiesAGoodLog(t *testing.T) {
	p := newPartition()
	a, b := uuid.New(), uuid.New()
	a1 := newSave(a, 0, 1)
	lost := newSave(a, 0, 2) // races a1 for version 1, completes later
	b1 := newSave(b, 0, 3)
	a2 := newSave(a, 1, 2)
	unknownWon := newSave(b, 3, 1)
	unknownLost := newSave(b, 5, 2) // expects a version b has not reached

	p.add(lost, 0)
	p.add(b1, 0)
	p.add(a1)
	p.add(lost, 1) // a1's acceptance dropped lost: ignored
	p.add(b1, 1, 2)
	p.add(a2, 0)
	p.add(unknownWon)
	p.add(a2, 1)
	p.add(unknownLost) // b is at version 4: rejected
	p.put(&kgo.Record{Key: []byte(strings.ToUpper(a.String())), Headers: a1.record(0).Headers})

	rep := invariant.Check(p.recs, invariant.Observations{
		Acked:      []invariant.Save{a1.obs(), b1.obs(), a2.obs()},
		Conflicted: []invariant.Save{lost.obs()},
		Unknown:    []invariant.Save{unknownWon.obs(), unknownLost.obs()},
		Complete:   true,
	})
	t.Log(rep.String())
	wantOnly(t, rep)
	want := invariant.Report{
		Topics: []string{p.topic}, Records: len(p.recs), Foreign: 1, Ignored: 1, Aggregates: 2, Events: 7,
		Rejected: 2, AcceptedSaves: 4,
		Acked: 3, AckedVerified: 3, Conflicts: 1, ConflictsVerified: 1, Unknown: 2, UnknownWon: 1, UnknownLost: 1,
	}
	if len(rep.ForeignRecords) != 1 || rep.ForeignRecords[0].Offset != int64(len(p.recs)-1) || !strings.Contains(rep.ForeignRecords[0].Reason, "canonical") {
		t.Fatalf("foreign records %v", rep.ForeignRecords)
	}
	rep.ForeignRecords = nil
	if fmt.Sprint(rep) != fmt.Sprint(want) {
		t.Fatalf("report\n got %+v\nwant %+v", rep, want)
	}
	wantHistory(t, p, a, a1.events, a2.events)
	wantHistory(t, p, b, b1.events, unknownWon.events)
}

func TestCheckFlagsLostAckedSave(t *testing.T) {
	t.Run("lost the race", func(t *testing.T) {
		p := newPartition()
		a := uuid.New()
		winner, acked := newSave(a, 0, 1), newSave(a, 0, 1)
		p.add(winner)
		p.add(acked)
		rep := invariant.Check(p.recs, invariant.Observations{Acked: []invariant.Save{acked.obs()}})
		wantOnly(t, rep, "acked-lost")
		if v := rep.Violations[0]; v.Offset != 1 || v.Partition != 0 || v.Topic != p.topic || v.Save != acked.id || !strings.Contains(v.Detail, "ignored") {
			t.Fatalf("violation %s", v)
		}
		if rep.AckedVerified != 0 {
			t.Fatalf("%d acked saves verified", rep.AckedVerified)
		}
	})
	t.Run("never written", func(t *testing.T) {
		p := newPartition()
		a := uuid.New()
		p.add(newSave(a, 0, 2))
		acked := newSave(a, 2, 1)
		rep := invariant.Check(p.recs, invariant.Observations{Acked: []invariant.Save{acked.obs()}})
		wantOnly(t, rep, "acked-lost")
		if v := rep.Violations[0]; v.Offset != -1 || !strings.Contains(v.Detail, "no record") {
			t.Fatalf("violation %s", v)
		}
	})
	t.Run("last record missing", func(t *testing.T) {
		p := newPartition()
		a := uuid.New()
		acked := newSave(a, 0, 3)
		p.add(acked, 0, 1)
		rep := invariant.Check(p.recs, invariant.Observations{Acked: []invariant.Save{acked.obs()}})
		wantOnly(t, rep, "acked-lost")
		if rep.IncompleteOpen != 1 || !strings.Contains(rep.Violations[0].Detail, "still incomplete") {
			t.Fatalf("report %s, violation %s", rep.String(), rep.Violations[0])
		}
	})
	t.Run("rejected at a later version", func(t *testing.T) {
		// Acked, yet it expected version 1 while the aggregate was at 0.
		p := newPartition()
		a := uuid.New()
		acked := newSave(a, 1, 1)
		p.add(acked)
		rep := invariant.Check(p.recs, invariant.Observations{Acked: []invariant.Save{acked.obs()}})
		wantOnly(t, rep, "acked-lost")
		if !strings.Contains(rep.Violations[0].Detail, "rejected") || rep.Rejected != 1 {
			t.Fatalf("violation %s", rep.Violations[0])
		}
	})
	t.Run("wrong position", func(t *testing.T) {
		p := newPartition()
		a := uuid.New()
		acked := newSave(a, 0, 1)
		p.add(acked)
		p.add(acked) // a retry: ignored
		o := acked.obs()
		o.Offsets = []int64{1} // Append reported the copy that did not count
		rep := invariant.Check(p.recs, invariant.Observations{Acked: []invariant.Save{o}})
		wantOnly(t, rep, "acked-position")
	})
}

func TestCheckFlagsPartialSave(t *testing.T) {
	p := newPartition()
	a := uuid.New()
	s := newSave(a, 0, 3)
	// A broken writer stored the save's first two events as a complete save
	// of two, and the third on its own.
	p.put(eventRecord(a.String(), s.events[0], 0, s.id, 2, 0))
	p.put(eventRecord(a.String(), s.events[1], 0, s.id, 2, 1))
	for _, obs := range []invariant.Observations{
		{Unknown: []invariant.Save{s.obs()}},
		{Acked: []invariant.Save{s.obs()}},
	} {
		rep := invariant.Check(p.recs, obs)
		wantOnly(t, rep, "partial-save")
		if v := rep.Violations[0]; v.Offset != 0 || v.Save != s.id {
			t.Fatalf("violation %s", v)
		}
	}
}

func TestCheckFlagsConflictedSaveThatAppears(t *testing.T) {
	p := newPartition()
	a := uuid.New()
	won := newSave(a, 0, 2)
	p.add(newSave(a, 0, 1))
	p.add(won)
	conflicted := newSave(a, 1, 2)
	p.add(conflicted)
	rep := invariant.Check(p.recs, invariant.Observations{
		Acked:      []invariant.Save{won.obs()},
		Conflicted: []invariant.Save{conflicted.obs()},
	})
	// The acked save lost to the first one, and the conflicted one won.
	wantOnly(t, rep, "acked-lost", "conflict-applied")
	v := violations(rep, "conflict-applied")[0]
	if v.Offset != 3 || v.Save != conflicted.id {
		t.Fatalf("violation %s", v)
	}

	// Its events under another save's id count too.
	p2 := newPartition()
	stolen := newSave(a, 0, 1)
	p2.put(eventRecord(a.String(), stolen.events[0], 0, uuid.New(), 1, 0))
	rep = invariant.Check(p2.recs, invariant.Observations{Conflicted: []invariant.Save{stolen.obs()}})
	wantOnly(t, rep, "conflict-applied")
}

func TestCheckFlagsUnobservedAndContradictory(t *testing.T) {
	p := newPartition()
	a := uuid.New()
	s, other := newSave(a, 0, 1), newSave(a, 1, 1)
	p.add(s)
	p.add(other)
	rep := invariant.Check(p.recs, invariant.Observations{
		Acked:      []invariant.Save{s.obs()},
		Conflicted: []invariant.Save{s.obs()},
		Complete:   true,
	})
	wantOnly(t, rep, "unobserved-save", "contradictory-observations", "conflict-applied")
	if v := violations(rep, "unobserved-save")[0]; v.Offset != 1 || v.Save != other.id {
		t.Fatalf("violation %s", v)
	}
}

func TestRule(t *testing.T) {
	a := uuid.New()
	t.Run("first to complete wins", func(t *testing.T) {
		p := newPartition()
		early, late := newSave(a, 0, 2), newSave(a, 0, 2)
		p.add(early, 0)
		p.add(late, 0)
		p.add(late, 1)
		p.add(early, 1)
		wantHistory(t, p, a, late.events)
	})
	t.Run("acceptance drops open saves", func(t *testing.T) {
		p := newPartition()
		other, first := newSave(a, 0, 2), newSave(a, 0, 1)
		p.add(other, 0)
		p.add(first)
		p.add(other, 1) // other was dropped; and it expected a version a has passed
		wantHistory(t, p, a, first.events)
	})
	t.Run("a save of a version not reached is rejected", func(t *testing.T) {
		p := newPartition()
		ahead := newSave(a, 1, 2) // sent before a reaches version 1
		first := newSave(a, 0, 1)
		p.add(ahead, 0)
		p.add(first)
		p.add(ahead, 1) // its index 0 was rejected, not held: ignored
		wantHistory(t, p, a, first.events)
		// Sent again after version 1, it wins.
		p.add(ahead)
		wantHistory(t, p, a, first.events, ahead.events)
	})
	t.Run("records count in index order", func(t *testing.T) {
		p := newPartition()
		s := newSave(a, 0, 3)
		p.add(s, 1, 0, 2) // index 1 with no open save: ignored; then a gap
		wantHistory(t, p, a)
		p.add(s, 1, 1, 2) // a repeat of index 1 is ignored
		wantHistory(t, p, a, s.events)
	})
	t.Run("same save id, other shape", func(t *testing.T) {
		p := newPartition()
		s := newSave(a, 0, 2)
		p.add(s, 0)
		p.put(eventRecord(a.String(), s.events[1], 0, s.id, 3, 1)) // count 3: another save
		wantHistory(t, p, a)
		p.add(s, 1)
		wantHistory(t, p, a, s.events)
	})
	t.Run("retries are one save", func(t *testing.T) {
		p := newPartition()
		s := newSave(a, 0, 2)
		p.add(s, 0)
		p.add(s, 0) // a second copy's first record: a repeat
		p.add(s, 1)
		p.add(s) // a whole later copy: stale
		wantHistory(t, p, a, s.events)
		rep := invariant.Check(p.recs, invariant.Observations{Acked: []invariant.Save{s.obs()}})
		wantOnly(t, rep)
		if rep.Ignored != 3 || rep.AcceptedSaves != 1 {
			t.Fatal(rep.String())
		}
	})
	t.Run("no span limit", func(t *testing.T) {
		p := newPartition()
		s := newSave(a, 0, 2)
		p.add(s, 0)
		p.skip(10_000_000)
		p.add(s, 1)
		wantHistory(t, p, a, s.events)
	})
	t.Run("aggregates are separate", func(t *testing.T) {
		p := newPartition()
		b := uuid.New()
		sa, sb := newSave(a, 0, 2), newSave(b, 0, 1)
		p.add(sa, 0)
		p.add(sb)
		p.add(sa, 1)
		wantHistory(t, p, a, sa.events)
		wantHistory(t, p, b, sb.events)
	})
	t.Run("foreign records", func(t *testing.T) {
		p := newPartition()
		s := newSave(a, 0, 1)
		good := s.record(0)
		mutate := func(f func(r *kgo.Record)) *kgo.Record {
			r := &kgo.Record{Key: slices.Clone(good.Key), Value: good.Value, Headers: slices.Clone(good.Headers)}
			f(r)
			return r
		}
		setHeader := func(k, v string) func(r *kgo.Record) {
			return func(r *kgo.Record) {
				for i := range r.Headers {
					if r.Headers[i].Key == k {
						r.Headers[i].Value = []byte(v)
					}
				}
			}
		}
		dropHeader := func(k string) func(r *kgo.Record) {
			return func(r *kgo.Record) {
				r.Headers = slices.DeleteFunc(r.Headers, func(h kgo.RecordHeader) bool { return h.Key == k })
			}
		}
		foreign := []*kgo.Record{
			mutate(func(r *kgo.Record) { r.Key = []byte(strings.ToUpper(string(r.Key))) }),
			mutate(func(r *kgo.Record) { r.Key = []byte(strings.ReplaceAll(string(r.Key), "-", "")) }),
			mutate(func(r *kgo.Record) { r.Key = []byte("{" + string(r.Key) + "}") }),
			mutate(func(r *kgo.Record) { r.Key = nil }),
			mutate(dropHeader("snaplog.save")),
			mutate(dropHeader("snaplog.occurred_at")),
			mutate(setHeader("snaplog.version", "x")),
			mutate(setHeader("snaplog.version", "0")),
			mutate(setHeader("snaplog.version", "2")),
			mutate(setHeader("snaplog.expected", "-1")),
			mutate(setHeader("snaplog.save_events", "0")),
			mutate(setHeader("snaplog.save_events", "10001")),
			mutate(setHeader("snaplog.save", uuid.Nil.String())),
			mutate(setHeader("snaplog.event_id", "nope")),
			mutate(setHeader("snaplog.occurred_at", "yesterday")),
			mutate(func(r *kgo.Record) {
				r.Headers = append(r.Headers, kgo.RecordHeader{Key: "snaplog.version", Value: []byte("1")})
			}),
		}
		for _, r := range foreign {
			p.put(r)
		}
		rep := invariant.Check(p.recs, invariant.Observations{Unknown: []invariant.Save{s.obs()}})
		wantOnly(t, rep)
		if rep.Foreign != len(foreign) || rep.Events != 0 || rep.UnknownLost != 1 {
			t.Fatal(rep.String())
		}
		p.put(good)
		wantHistory(t, p, a, s.events)
	})
	t.Run("record order is partition order", func(t *testing.T) {
		p := newPartition()
		s1, s2 := newSave(a, 0, 1), newSave(a, 0, 1)
		p.add(s1)
		p.add(s2)
		shuffled := []*kgo.Record{p.recs[1], p.recs[0]}
		if got := ids(invariant.Histories(shuffled)[a]); !slices.Equal(got, s1.events) {
			t.Fatalf("history %v, want %v", got, s1.events)
		}
	})
}

// TestRuleAgreesWithLog applies this package's rule and log's (FromRecord
// and Sequencer) to random record sequences, with retries, reused save ids,
// out-of-order and missing records, stale and future expected versions,
// foreign records and offset gaps, and fails where they disagree on any
// aggregate's history or its offsets.
func TestRuleAgreesWithLog(t *testing.T) {
	iterations := 3000
	if testing.Short() {
		iterations = 300
	}
	for it := range iterations {
		rng := rand.New(rand.NewPCG(uint64(it), 7))
		p := newPartition()
		aggs := []uuid.UUID{uuid.New(), uuid.New()}
		var saves []*save
		for range 40 {
			switch k := rng.IntN(20); {
			case k < 6 || len(saves) == 0: // a new save
				agg := aggs[rng.IntN(len(aggs))]
				s := newSave(agg, int64(rng.IntN(6)), 1+rng.IntN(3))
				saves = append(saves, s)
				p.add(s, 0)
			case k < 15: // some record of a known save
				s := saves[rng.IntN(len(saves))]
				p.add(s, rng.IntN(len(s.events)))
			case k < 17: // the save id reused with another shape
				s := saves[rng.IntN(len(saves))]
				p.put(eventRecord(s.agg.String(), uuid.New(), s.expected+int64(rng.IntN(2)), s.id, 1+rng.IntN(3), 0))
			case k < 18: // foreign
				s := saves[rng.IntN(len(saves))]
				r := s.record(0)
				r.Key = []byte(strings.ToUpper(string(r.Key)))
				p.put(r)
			default: // a gap
				p.skip(int64(rng.IntN(200_000)))
			}
		}
		mine := invariant.Histories(p.recs)
		for _, agg := range aggs {
			var seq log.Sequencer
			var theirs []uuid.UUID
			var offs []int64
			key := string(log.Key(agg))
			for _, r := range p.recs {
				if string(r.Key) != key {
					continue
				}
				e, err := log.FromRecord(r)
				if err != nil {
					continue
				}
				if o, evs := seq.Next(e); o == log.Accepted {
					for _, e := range evs {
						theirs = append(theirs, e.ID)
						offs = append(offs, e.Position.Offset)
					}
				}
			}
			var myOffs []int64
			for _, e := range mine[agg] {
				myOffs = append(myOffs, e.Offset)
			}
			if !slices.Equal(ids(mine[agg]), theirs) || !slices.Equal(myOffs, offs) {
				t.Fatalf("iteration %d, aggregate %s: histories differ:\ninvariant at offsets %v\nlog at offsets %v", it, agg, myOffs, offs)
			}
		}
	}
}
