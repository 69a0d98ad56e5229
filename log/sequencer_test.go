package log_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

// rec is one record of a save in a table test: the save, the version it
// expected, its event count, and the record's index in it.
type rec struct {
	save     int
	expected int64
	count    int
	index    int
}

func TestSequencer(t *testing.T) {
	saves := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	A, R, H, I := log.Accepted, log.Rejected, log.Held, log.Ignored
	for _, tc := range []struct {
		name  string
		start int64
		recs  []rec
		want  []log.Outcome
		final int64
	}{
		{"single-event saves in order", 0, []rec{{0, 0, 1, 0}, {1, 1, 1, 0}, {2, 2, 1, 0}},
			[]log.Outcome{A, A, A}, 3},
		{"racing creates: the first wins", 0, []rec{{0, 0, 1, 0}, {1, 0, 1, 0}},
			[]log.Outcome{A, I}, 1},
		{"a multi-event save is decided by its last record", 0, []rec{{0, 0, 3, 0}, {0, 0, 3, 1}, {0, 0, 3, 2}},
			[]log.Outcome{H, H, A}, 3},
		{"interleaved saves: the first to complete wins", 5, []rec{{0, 5, 2, 0}, {1, 5, 2, 0}, {1, 5, 2, 1}, {0, 5, 2, 1}},
			[]log.Outcome{H, H, A, I}, 7},
		{"a record between a save's records claiming its second version", 0, []rec{{0, 0, 2, 0}, {1, 1, 1, 0}, {0, 0, 2, 1}},
			[]log.Outcome{H, R, A}, 2},
		{"a save ahead of the aggregate is rejected at its first record", 0, []rec{{0, 1, 2, 0}, {1, 0, 1, 0}, {0, 1, 2, 1}},
			[]log.Outcome{R, A, I}, 1},
		{"a save built on the winner goes on", 5, []rec{{0, 5, 1, 0}, {1, 5, 1, 0}, {2, 6, 1, 0}},
			[]log.Outcome{A, I, A}, 7},
		{"a save that expected a version never reached is rejected", 5, []rec{{0, 5, 1, 0}, {1, 8, 1, 0}},
			[]log.Outcome{A, R}, 6},
		{"a retry of a landed save is the same save, whatever follows", 1, []rec{{0, 1, 1, 0}, {0, 1, 2, 0}, {0, 1, 2, 1}},
			[]log.Outcome{A, I, I}, 2},
		{"a copy of a multi-event save after it won is ignored", 0, []rec{{0, 0, 2, 0}, {0, 0, 2, 1}, {0, 0, 2, 0}, {0, 0, 2, 1}},
			[]log.Outcome{H, A, I, I}, 2},
		{"a second copy completes what the first left open", 0, []rec{{0, 0, 2, 0}, {0, 0, 2, 0}, {0, 0, 2, 1}},
			[]log.Outcome{H, I, A}, 2},
		{"a tail without its head is ignored", 0, []rec{{0, 0, 2, 1}, {1, 0, 1, 0}},
			[]log.Outcome{I, A}, 1},
		{"records out of order do not complete a save", 0, []rec{{0, 0, 3, 0}, {0, 0, 3, 2}, {0, 0, 3, 1}},
			[]log.Outcome{H, I, H}, 0},
		{"an accepted save drops the saves begun before it", 0, []rec{{0, 0, 2, 0}, {1, 0, 1, 0}, {0, 0, 2, 1}},
			[]log.Outcome{H, A, I}, 1},
		{"an incomplete save claims nothing", 0, []rec{{0, 0, 2, 0}, {1, 0, 1, 0}},
			[]log.Outcome{H, A}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := log.Sequencer{Version: tc.start}
			for i, r := range tc.recs {
				e := log.Event{ID: uuid.New(), Save: saves[r.save], Expected: r.expected, SaveEvents: r.count,
					AggregateVersion: r.expected + int64(r.index) + 1, Position: log.Position{Offset: int64(i)}}
				got, evs := s.Next(e)
				if got != tc.want[i] {
					t.Fatalf("record %d %+v: %s, want %s", i, r, got, tc.want[i])
				}
				if got == log.Accepted && len(evs) != r.count {
					t.Fatalf("record %d: accepted %d events, want %d", i, len(evs), r.count)
				}
			}
			if s.Version != tc.final {
				t.Fatalf("final version %d, want %d", s.Version, tc.final)
			}
		})
	}
}

func TestSequencerResume(t *testing.T) {
	save, other := uuid.New(), uuid.New()
	var s log.Sequencer
	ev := func(off int64, save uuid.UUID, index int) log.Event {
		return log.Event{ID: uuid.New(), Save: save, SaveEvents: 2, AggregateVersion: int64(index) + 1, Position: log.Position{Offset: off}}
	}
	if got := s.Resume(5); got != 5 {
		t.Fatalf("Resume with nothing held: %d", got)
	}
	s.Next(ev(10, save, 0))
	s.Next(ev(12, other, 0))
	if got := s.Resume(50); got != 10 {
		t.Fatalf("Resume with saves held since 10 and 12: %d", got)
	}
	if o, evs := s.Next(ev(60, other, 1)); o != log.Accepted || len(evs) != 2 || s.Incomplete() != 0 {
		t.Fatalf("completing record: %s, %d events, %d held", o, len(evs), s.Incomplete())
	}
	if got := s.Resume(61); got != 61 {
		t.Fatalf("Resume after an accepted save: %d", got)
	}
}
