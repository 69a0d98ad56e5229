package consumer

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	c := config{backoffBase: 100 * time.Millisecond, backoffMax: 5 * time.Second}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{6, 3200 * time.Millisecond},
		{7, 5 * time.Second},
		{1000, 5 * time.Second},
	} {
		if got := c.backoff(tc.attempt); got != tc.want {
			t.Errorf("backoff(%d) = %s, want %s", tc.attempt, got, tc.want)
		}
	}
}
