package snapshotter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshotter"
)

// TestRefusesGrownTopic: an operator grows the events topic from 3 to 6
// partitions under a running snapshotter. The growth makes the group
// rebalance; at the assignment the snapshotter refuses the topic: Ready
// turns false, nothing more of the topic is snapshotted, and Run returns an
// error naming the topic and both counts. A snapshotter started afterwards
// refuses to start, and leaves the snapshot topic as it is. The topic's
// placement record is never counted as a bad record.
func TestRefusesGrownTopic(t *testing.T) {
	e := newEnv(t, 3)
	topic := e.events + "Account"
	accounts := ids(20)
	writeTraffic(t, e.repo(t), accounts, 3)
	// The group leader sees new partitions at its next metadata refresh.
	fast := snapshotter.KafkaClient(kgo.MetadataMinAge(100*time.Millisecond), kgo.MetadataMaxAge(500*time.Millisecond))
	s := e.snapshotter(t, fast)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	caughtUp(t, e, s)
	if !s.Ready() {
		t.Fatal("not ready once caught up")
	}
	if st := s.Stats(); st.ApplyFailures != 0 {
		t.Fatalf("%d apply failures: the placement record was taken for an event", st.ApplyFailures)
	}

	adm := kadm.NewClient(kafkatest.Client(t))
	if _, err := adm.UpdatePartitions(ctxT(t), 6, topic); err != nil {
		t.Fatal(err)
	}
	grown := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Run still runs a minute after the topic grew")
	}
	t.Logf("Run returned %s after the topic grew: %v", time.Since(grown).Round(time.Millisecond), err)
	wantRefused(t, err, topic)
	if s.Ready() {
		t.Error("ready after refusing its topic")
	}
	snaps := endOffsets(t, e.snaps+"Account")
	if len(snaps) != 3 {
		t.Fatalf("the snapshot topic has %d partitions", len(snaps))
	}

	// A snapshotter started after the growth refuses to start.
	late := e.snapshotter(t)
	lctx, lcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer lcancel()
	err = late.Run(lctx)
	wantRefused(t, err, topic)
	if lctx.Err() != nil {
		t.Fatal("Run waited for its context instead of refusing")
	}
	if after := endOffsets(t, e.snaps+"Account"); fmt.Sprint(after) != fmt.Sprint(snaps) {
		t.Fatalf("the snapshot topic was written after the refusal: %v, then %v", snaps, after)
	}
}

func wantRefused(t *testing.T, err error, topic string) {
	t.Helper()
	var pe *log.PlacementError
	if !errors.Is(err, log.ErrPlacement) || !errors.As(err, &pe) || pe.Placed != 3 || pe.Partitions != 6 {
		t.Fatalf("Run: %v, want a *log.PlacementError of 3 and 6 partitions", err)
	}
	for _, want := range []string{topic, "has 6 partitions", "placed with 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Run's error does not say %q: %v", want, err)
		}
	}
}

func TestWithPlacementIsValidated(t *testing.T) {
	_, err := snapshotter.New("g", []snapshotter.Type{snapshotter.Register(accountType(t))},
		snapshotter.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")), snapshotter.WithPlacement("", 0))
	if err == nil || !strings.Contains(err.Error(), "WithPlacement") {
		t.Fatalf("New: %v", err)
	}
}
