package consumer_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/consumer"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

// TestKeysInOtherSpellings: records with valid snaplog headers keyed by an
// aggregate's id in upper case, or without dashes, put in the aggregate's
// partition before its real next event, are not that aggregate's events:
// the handler sees the real events only, and the impostors go to the
// dead-letter topic. Before the canonical key was the definition, the
// consumer delivered the impostor as v3 and dropped the real v3.
func TestKeysInOtherSpellings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id := uuid.New()
	var want []log.Event
	appendAt := func(v int64) {
		t.Helper()
		out, err := e.writer.Append(ctxT(t), typ, id, log.Expected{Version: v}, logtest.Events(typ, id, v, 1))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, out...)
	}
	appendAt(0)
	appendAt(1)
	raw := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var impostors []int64
	for _, key := range []string{strings.ToUpper(id.String()), strings.ReplaceAll(id.String(), "-", "")} {
		impostor := logtest.Events(typ, id, 2, 1)[0]
		impostor.Save, impostor.Expected, impostor.SaveEvents = uuid.New(), 2, 1
		r := log.Record(e.prefix+typ, impostor)
		r.Key = []byte(key)
		if err := raw.ProduceSync(ctxT(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		impostors = append(impostors, r.Offset)
	}
	appendAt(2)

	var mu sync.Mutex
	var dead []int64
	rec := newRecorder()
	sub := e.subscribe(rec, consumer.WithHooks(consumer.Hooks{
		DeadLettered: func(_ string, _ int32, off int64, _ error) { mu.Lock(); dead = append(dead, off); mu.Unlock() },
	}))
	run(t, sub)
	waitFor(t, 30*time.Second, "the real third event", func() bool { return rec.seen(want[2].ID) })
	got := rec.handled()
	if len(got) != 3 {
		t.Fatalf("handled %d events, want 3", len(got))
	}
	for i, ev := range got {
		if ev.ID != want[i].ID || ev.AggregateVersion != int64(i+1) {
			t.Fatalf("event %d: %s v%d, want %s v%d", i, ev.ID, ev.AggregateVersion, want[i].ID, i+1)
		}
	}
	waitFor(t, 30*time.Second, "the impostors in the dead-letter topic", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(dead, impostors[0]) && slices.Contains(dead, impostors[1])
	})
}
