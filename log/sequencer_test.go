package log_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/snaplog/snaplog/log"
)

func TestSequencer(t *testing.T) {
	s1, s2, s3 := uuid.New(), uuid.New(), uuid.New()
	ev := func(v, expected int64, save uuid.UUID) log.Event {
		return log.Event{AggregateVersion: v, Expected: expected, Save: save}
	}
	for _, tc := range []struct {
		name   string
		events []log.Event
		want   []bool
		final  int64
	}{
		{"single-event saves in order", []log.Event{ev(1, 0, s1), ev(2, 1, s2), ev(3, 2, s3)},
			[]bool{true, true, true}, 3},
		{"racing creates: the first wins", []log.Event{ev(1, 0, s1), ev(1, 0, s2)},
			[]bool{true, false}, 1},
		{"multi-event save", []log.Event{ev(1, 0, s1), ev(2, 0, s1), ev(3, 0, s1)},
			[]bool{true, true, true}, 3},
		{"a losing multi-event save is rejected whole, even interleaved", []log.Event{
			ev(6, 5, s1), ev(6, 5, s2), ev(7, 5, s2), ev(7, 5, s1)},
			[]bool{true, false, false, true}, 7},
		{"a loser's later event at the next version is still rejected", []log.Event{
			ev(6, 5, s1), ev(6, 5, s2), ev(7, 5, s2)},
			[]bool{true, false, false}, 6},
		{"a save built on the winner goes on", []log.Event{
			ev(6, 5, s1), ev(6, 5, s2), ev(7, 6, s3)},
			[]bool{true, false, true}, 7},
		{"a save that expected a version never reached is rejected", []log.Event{ev(6, 5, s1), ev(9, 8, s2)},
			[]bool{true, false}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := log.Sequencer{Version: 5}
			if tc.events[0].AggregateVersion == 1 {
				s = log.Sequencer{}
			}
			for i, e := range tc.events {
				if got := s.Next(e); got != tc.want[i] {
					t.Fatalf("event %d (v%d expected %d): accepted %v, want %v", i, e.AggregateVersion, e.Expected, got, tc.want[i])
				}
			}
			if s.Version != tc.final {
				t.Fatalf("final version %d, want %d", s.Version, tc.final)
			}
		})
	}
}
