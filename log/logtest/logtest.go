// Package logtest is the conformance suite of snaplog event logs. Every
// implementation of the log port (the in-memory log, the Kafka log) runs it:
//
//	func TestConformance(t *testing.T) {
//		logtest.Run(t, func(t *testing.T) logtest.Log { return newLog(t) })
//	}
//
// Each subtest asks for a fresh log, or at least one in which the aggregate
// type names it uses (random per subtest) are unused.
package logtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

// Log is the log port under test.
type Log = log.Log

// Run runs the suite. newLog is called once per subtest.
func Run(t *testing.T, newLog func(t *testing.T) Log) {
	tests := []struct {
		name string
		fn   func(*testing.T, Log)
	}{
		{"AppendAndReadBack", testAppendAndReadBack},
		{"ReadFromOffset", testReadFromOffset},
		{"ReadYourWrites", testReadYourWrites},
		{"ReadUnknownAggregate", testReadUnknown},
		{"AggregatesAreSeparate", testAggregatesSeparate},
		{"ConflictOnWrongExpectedVersion", testConflict},
		{"RacingCreatesOneWinner", testRacingCreates},
		{"RacingMultiEventSavesAllOrNothing", testRacingMultiEvent},
		{"InvalidEventsRefused", testInvalid},
		{"ReturnedEventsDoNotAlias", testNoAlias},
		{"CanceledContext", testCanceled},
		{"RetryIsTheSameSave", testRetry},
		{"EventAt", testEventAt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newLog(t))
		})
	}
}

// Type returns a fresh aggregate type name for a test.
func Type() string { return "T" + uuid.NewString()[:8] }

// Events returns n well-formed events of one aggregate with versions
// after+1 ... after+n.
func Events(typ string, id uuid.UUID, after int64, n int) []log.Event {
	out := make([]log.Event, n)
	base := time.Now().UTC().Truncate(time.Microsecond)
	for i := range out {
		v := after + int64(i) + 1
		out[i] = log.Event{
			ID:               uuid.New(),
			Type:             fmt.Sprintf("Happened%d", v%3),
			AggregateType:    typ,
			AggregateID:      id,
			AggregateVersion: v,
			OccurredAt:       base.Add(time.Duration(i) * time.Millisecond),
			ContentType:      "application/json",
			Metadata: log.Metadata{
				CorrelationID: uuid.New(),
				CausationID:   uuid.New(),
				Values:        map[string]string{"tenant": "acme", "n": fmt.Sprint(v)},
			},
			Payload: []byte(fmt.Sprintf(`{"v":%d}`, v)),
		}
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustAppend(t *testing.T, l Log, typ string, id uuid.UUID, exp int64, evs []log.Event) []log.Event {
	t.Helper()
	out, err := l.Append(ctx(t), typ, id, log.Expected{Version: exp}, evs)
	if err != nil {
		t.Fatalf("Append %s %s at %d: %v", typ, id, exp, err)
	}
	return out
}

func mustRead(t *testing.T, l Log, typ string, id uuid.UUID, from int64) log.Tail {
	t.Helper()
	tail, err := l.Read(ctx(t), typ, id, from)
	if err != nil {
		t.Fatalf("Read %s %s from %d: %v", typ, id, from, err)
	}
	return tail
}

// SameEvent reports how got differs from want, ignoring Position.
func SameEvent(got, want log.Event) error {
	switch {
	case got.ID != want.ID:
		return fmt.Errorf("id %s, want %s", got.ID, want.ID)
	case got.Type != want.Type:
		return fmt.Errorf("type %q, want %q", got.Type, want.Type)
	case got.AggregateType != want.AggregateType || got.AggregateID != want.AggregateID:
		return fmt.Errorf("aggregate %s %s, want %s %s", got.AggregateType, got.AggregateID, want.AggregateType, want.AggregateID)
	case got.AggregateVersion != want.AggregateVersion:
		return fmt.Errorf("version %d, want %d", got.AggregateVersion, want.AggregateVersion)
	case !got.OccurredAt.Equal(want.OccurredAt):
		return fmt.Errorf("occurred at %s, want %s", got.OccurredAt, want.OccurredAt)
	case got.ContentType != want.ContentType:
		return fmt.Errorf("content type %q, want %q", got.ContentType, want.ContentType)
	case got.Metadata.CorrelationID != want.Metadata.CorrelationID || got.Metadata.CausationID != want.Metadata.CausationID:
		return fmt.Errorf("metadata ids %+v, want %+v", got.Metadata, want.Metadata)
	case len(got.Metadata.Values) != len(want.Metadata.Values):
		return fmt.Errorf("metadata values %v, want %v", got.Metadata.Values, want.Metadata.Values)
	case string(got.Payload) != string(want.Payload):
		return fmt.Errorf("payload %q, want %q", got.Payload, want.Payload)
	}
	for k, v := range want.Metadata.Values {
		if got.Metadata.Values[k] != v {
			return fmt.Errorf("metadata %q = %q, want %q", k, got.Metadata.Values[k], v)
		}
	}
	return nil
}

func checkSame(t *testing.T, got, want []log.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if err := SameEvent(got[i], want[i]); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
}

func testAppendAndReadBack(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	first := Events(typ, id, 0, 1)
	rest := Events(typ, id, 1, 4)
	out1 := mustAppend(t, l, typ, id, 0, first)
	out2 := mustAppend(t, l, typ, id, 1, rest)
	checkSame(t, out1, first)
	checkSame(t, out2, rest)
	for i, e := range out2 {
		if e.Expected != 1 || e.Save == uuid.Nil || e.Save != out2[0].Save || e.Save == out1[0].Save || e.SaveEvents != len(rest) {
			t.Fatalf("appended event %d: expected %d save %s of %d events, want 1, one new save id and %d", i, e.Expected, e.Save, e.SaveEvents, len(rest))
		}
	}
	all := append(slices.Clone(first), rest...)
	tail := mustRead(t, l, typ, id, 0)
	checkSame(t, tail.Events, all)
	stored := append(out1, out2...)
	var seq log.Sequencer
	for i, e := range tail.Events {
		last := i == 0 || i == len(tail.Events)-1
		if out, _ := seq.Next(e); (out == log.Accepted) != last || (!last && out != log.Held) {
			t.Fatalf("event %d (version %d, expected %d, save %s): the winner rule says %s", i, e.AggregateVersion, e.Expected, e.Save, out)
		}
		if e.Expected != stored[i].Expected || e.Save != stored[i].Save || e.SaveEvents != stored[i].SaveEvents {
			t.Fatalf("event %d read with expected %d save %s, appended with %d %s", i, e.Expected, e.Save, stored[i].Expected, stored[i].Save)
		}
		if e.Position != stored[i].Position {
			t.Fatalf("event %d read at %s, appended at %s", i, e.Position, stored[i].Position)
		}
		if e.Position.Partition != tail.Partition {
			t.Fatalf("event %d in partition %d, tail says %d", i, e.Position.Partition, tail.Partition)
		}
		if i > 0 && e.Position.Offset <= tail.Events[i-1].Position.Offset {
			t.Fatalf("offsets not increasing: %s after %s", e.Position, tail.Events[i-1].Position)
		}
	}
	if last := tail.Events[len(tail.Events)-1].Position.Offset; tail.End <= last {
		t.Fatalf("tail end %d, last event at %d", tail.End, last)
	}
	if tail.Scanned < int64(len(all)) {
		t.Fatalf("scanned %d records, returned %d events", tail.Scanned, len(all))
	}
}

func testReadFromOffset(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	evs := Events(typ, id, 0, 6)
	var out []log.Event
	for i := range evs {
		out = append(out, mustAppend(t, l, typ, id, int64(i), evs[i:i+1])...)
	}
	for k := range out {
		tail := mustRead(t, l, typ, id, out[k].Position.Offset)
		checkSame(t, tail.Events, evs[k:])
	}
	tail := mustRead(t, l, typ, id, out[len(out)-1].Position.Offset+1)
	if len(tail.Events) != 0 {
		t.Fatalf("read past the last event returned %d events", len(tail.Events))
	}
}

// testReadYourWrites: once Append returns, a Read sees the events, for
// single- and multi-event saves alike.
func testReadYourWrites(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	var version int64
	for i := 0; i < 40; i++ {
		n := 1 + i%3
		mustAppend(t, l, typ, id, version, Events(typ, id, version, n))
		version += int64(n)
		if got := len(Winners(t, mustRead(t, l, typ, id, 0).Events)); int64(got) != version {
			t.Fatalf("save %d: a read right after the append sees %d events, want %d", i, got, version)
		}
	}
}

func testReadUnknown(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	if tail := mustRead(t, l, typ, id, 0); len(tail.Events) != 0 {
		t.Fatalf("unknown type: %d events", len(tail.Events))
	}
	other := uuid.New()
	mustAppend(t, l, typ, other, 0, Events(typ, other, 0, 2))
	if tail := mustRead(t, l, typ, id, 0); len(tail.Events) != 0 {
		t.Fatalf("unknown aggregate: %d events", len(tail.Events))
	}
}

func testAggregatesSeparate(t *testing.T, l Log) {
	typ := Type()
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	want := map[uuid.UUID][]log.Event{}
	for round := 0; round < 3; round++ {
		for _, id := range ids {
			evs := Events(typ, id, int64(round*2), 2)
			mustAppend(t, l, typ, id, int64(round*2), evs)
			want[id] = append(want[id], evs...)
		}
	}
	for _, id := range ids {
		checkSame(t, mustRead(t, l, typ, id, 0).Events, want[id])
	}
	if evs := mustRead(t, l, Type(), ids[0], 0).Events; len(evs) != 0 {
		t.Fatalf("another aggregate type sees %d events", len(evs))
	}
}

func testConflict(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	mustAppend(t, l, typ, id, 0, Events(typ, id, 0, 3))
	for _, exp := range []int64{0, 1, 2, 4} {
		_, err := l.Append(ctx(t), typ, id, log.Expected{Version: exp}, Events(typ, id, exp, 1))
		var ce *log.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, log.ErrConflict) {
			t.Fatalf("expected %d: err = %v, want a *log.ConflictError", exp, err)
		}
		if ce.AggregateID != id || ce.Expected != exp || ce.Actual != 3 {
			t.Fatalf("conflict error %+v, want id %s expected %d actual 3", ce, id, exp)
		}
	}
	if n := len(Winners(t, mustRead(t, l, typ, id, 0).Events)); n != 3 {
		t.Fatalf("after conflicts the aggregate has %d events, want 3", n)
	}
}

func race(t *testing.T, l Log, typ string, id uuid.UUID, expected int64, racers, eventsEach int) (winner int, batches [][]log.Event) {
	t.Helper()
	batches = make([][]log.Event, racers)
	for i := range batches {
		batches[i] = Events(typ, id, expected, eventsEach)
	}
	errs := make([]error, racers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = l.Append(ctx(t), typ, id, log.Expected{Version: expected}, batches[i])
		}()
	}
	close(start)
	wg.Wait()
	winner = -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("racers %d and %d both won version %d", winner, i, expected+1)
			}
			winner = i
		case errors.Is(err, log.ErrConflict):
		default:
			t.Fatalf("racer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no racer won version %d", expected+1)
	}
	return winner, batches
}

// Winners applies the winner rule (log.Sequencer) to events read from the
// start of an aggregate: what every reader takes to be the aggregate.
func Winners(t *testing.T, events []log.Event) []log.Event {
	var seq log.Sequencer
	var out []log.Event
	for _, e := range events {
		if o, evs := seq.Next(e); o == log.Accepted {
			out = append(out, evs...)
		}
	}
	return out
}

func testRacingCreates(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	w, batches := race(t, l, typ, id, 0, 8, 1)
	checkSame(t, Winners(t, mustRead(t, l, typ, id, 0).Events), batches[w])
}

func testRacingMultiEvent(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	base := Events(typ, id, 0, 2)
	mustAppend(t, l, typ, id, 0, base)
	w, batches := race(t, l, typ, id, 2, 6, 3)
	checkSame(t, Winners(t, mustRead(t, l, typ, id, 0).Events), append(base, batches[w]...))
	// The aggregate goes on from the winner's last version.
	next := Events(typ, id, 5, 1)
	mustAppend(t, l, typ, id, 5, next)
	checkSame(t, Winners(t, mustRead(t, l, typ, id, 0).Events), append(append(base, batches[w]...), next...))
}

func testInvalid(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	mk := func(f func([]log.Event)) []log.Event { e := Events(typ, id, 0, 2); f(e); return e }
	for name, evs := range map[string][]log.Event{
		"no events":         nil,
		"version gap":       mk(func(e []log.Event) { e[1].AggregateVersion = 3 }),
		"other aggregate":   mk(func(e []log.Event) { e[1].AggregateID = uuid.New() }),
		"other type":        mk(func(e []log.Event) { e[0].AggregateType = "Other" }),
		"empty event type":  mk(func(e []log.Event) { e[0].Type = "" }),
		"nil event id":      mk(func(e []log.Event) { e[1].ID = uuid.Nil }),
		"starts at version": mk(func(e []log.Event) { e[0].AggregateVersion, e[1].AggregateVersion = 2, 3 }),
	} {
		if _, err := l.Append(ctx(t), typ, id, log.Expected{}, evs); !errors.Is(err, log.ErrInvalidEvent) {
			t.Errorf("%s: err = %v, want ErrInvalidEvent", name, err)
		}
	}
	if _, err := l.Append(ctx(t), typ, uuid.Nil, log.Expected{}, Events(typ, uuid.Nil, 0, 1)); !errors.Is(err, log.ErrInvalidEvent) {
		t.Errorf("nil aggregate id: err = %v, want ErrInvalidEvent", err)
	}
	if n := len(mustRead(t, l, typ, id, 0).Events); n != 0 {
		t.Fatalf("refused appends stored %d events", n)
	}
}

func testNoAlias(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	evs := Events(typ, id, 0, 1)
	want := slices.Clone(evs[0].Payload)
	mustAppend(t, l, typ, id, 0, evs)
	evs[0].Payload[0] = 'X'
	evs[0].Metadata.Values["tenant"] = "changed"
	got := mustRead(t, l, typ, id, 0).Events[0]
	if string(got.Payload) != string(want) || got.Metadata.Values["tenant"] != "acme" {
		t.Fatalf("log shares memory with the caller's events: %q %v", got.Payload, got.Metadata.Values)
	}
	got.Payload[0] = 'Y'
	if again := mustRead(t, l, typ, id, 0).Events[0]; string(again.Payload) != string(want) {
		t.Fatalf("log shares memory with read events: %q", again.Payload)
	}
}

func testCanceled(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(c, typ, id, log.Expected{}, Events(typ, id, 0, 1)); err == nil {
		t.Fatal("Append with a canceled context succeeded")
	}
	if _, err := l.Read(c, typ, id, 0); err == nil {
		t.Fatal("Read with a canceled context succeeded")
	}
}

// testRetry: an Append retried with the same save id, expected version and
// events (after an unknown outcome) succeeds with the first attempt's
// positions and stores nothing twice; a retry of a save that lost, or a save
// id reused for other events, is a conflict.
func testRetry(t *testing.T, l Log) {
	typ, id := Type(), uuid.New()
	mustAppend(t, l, typ, id, 0, Events(typ, id, 0, 1))
	read := mustRead(t, l, typ, id, 0)
	save := uuid.New()
	evs := Events(typ, id, 1, 2)
	exp := log.Expected{Version: 1, ReadTo: read.End, Save: save}
	first, err := l.Append(ctx(t), typ, id, exp, slices.Clone(evs))
	if err != nil {
		t.Fatal(err)
	}
	again, err := l.Append(ctx(t), typ, id, exp, slices.Clone(evs))
	if err != nil {
		t.Fatalf("retry of a save that won: %v", err)
	}
	for i := range first {
		if again[i].Position != first[i].Position || again[i].Save != save {
			t.Fatalf("retry event %d at %s save %s, first attempt at %s", i, again[i].Position, again[i].Save, first[i].Position)
		}
	}
	w := Winners(t, mustRead(t, l, typ, id, 0).Events)
	if len(w) != 3 || w[1].ID != evs[0].ID || w[2].ID != evs[1].ID {
		t.Fatalf("history of %d events after a retry, want 3", len(w))
	}
	// The same save id with other events is another save: it lost.
	other := Events(typ, id, 1, 2)
	if _, err := l.Append(ctx(t), typ, id, exp, other); !errors.Is(err, log.ErrConflict) {
		t.Fatalf("save id reused for other events: %v, want a conflict", err)
	}
	// A save that lost stays lost when retried.
	lost := log.Expected{Version: 1, ReadTo: read.End, Save: uuid.New()}
	late := Events(typ, id, 1, 1)
	for try := 0; try < 2; try++ {
		if _, err := l.Append(ctx(t), typ, id, lost, slices.Clone(late)); !errors.Is(err, log.ErrConflict) {
			t.Fatalf("try %d of a save that lost: %v, want a conflict", try, err)
		}
	}
	if w := Winners(t, mustRead(t, l, typ, id, 0).Events); len(w) != 3 {
		t.Fatalf("history of %d events, want 3", len(w))
	}
}

// testEventAt: a log that reads one event by offset (aggregate.EventAtReader)
// returns the event stored there, equal to what Read returns, and an error
// wrapping log.ErrNoEvent for another aggregate's offset or one past the
// end. Logs without EventAt skip it.
func testEventAt(t *testing.T, l Log) {
	at, ok := l.(log.EventAtReader)
	if !ok {
		t.Skip("the log has no EventAt")
	}
	typ, id := Type(), uuid.New()
	stored := mustAppend(t, l, typ, id, 0, Events(typ, id, 0, 3))
	var others []log.Event // an event of another aggregate of the same partition
	for range 100 {
		other := uuid.New()
		if evs := mustAppend(t, l, typ, other, 0, Events(typ, other, 0, 1)); evs[0].Position.Partition == stored[0].Position.Partition {
			others = evs
			break
		}
	}
	for _, want := range stored {
		got, err := at.EventAt(ctx(t), typ, id, want.Position.Offset)
		if err != nil {
			t.Fatalf("EventAt %s: %v", want.Position, err)
		}
		if err := SameEvent(got, want); err != nil || got.Save != want.Save || got.Expected != 0 || got.SaveEvents != 3 {
			t.Fatalf("EventAt %s: %+v, want %+v (%v)", want.Position, got, want, err)
		}
	}
	if others == nil {
		t.Fatal("no aggregate of 100 landed in the partition of the first")
	}
	if _, err := at.EventAt(ctx(t), typ, id, others[0].Position.Offset); !errors.Is(err, log.ErrNoEvent) {
		t.Fatalf("EventAt of another aggregate's offset: %v, want ErrNoEvent", err)
	}
	if _, err := at.EventAt(ctx(t), typ, id, stored[2].Position.Offset+1000); !errors.Is(err, log.ErrNoEvent) {
		t.Fatalf("EventAt past the end: %v, want ErrNoEvent", err)
	}
	if _, err := at.EventAt(ctx(t), Type(), id, 0); !errors.Is(err, log.ErrNoEvent) {
		t.Fatalf("EventAt of an unknown aggregate type: %v, want ErrNoEvent", err)
	}
}
