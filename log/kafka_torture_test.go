package log_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

// TestKafkaConcurrencyTorture races saves on a few aggregates from several
// clients and goroutines: single- and multi-event saves, racing creations of
// the same new ids, and writers with stale knowledge. Afterwards two
// independent readers must agree that every acknowledged event is present
// exactly once, in version order, that each version has exactly one winner,
// and that no event of a save that got a conflict error is part of any
// aggregate (I2, I3).
func TestKafkaConcurrencyTorture(t *testing.T) {
	const (
		clients    = 3
		goroutines = 3 // per client
		rounds     = 30
		aggregates = 6
	)
	prefix := "torture." + uuid.NewString()[:8] + "."
	typ := "Account"
	mk := func() *log.Kafka { return newKafka(t, log.WithTopicPrefix(prefix)) }
	writers := make([]*log.Kafka, clients)
	for i := range writers {
		writers[i] = mk()
	}
	if err := writers[0].EnsureTopic(ctxT(t), typ); err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, aggregates)
	for i := range ids {
		ids[i] = uuid.New()
	}

	var mu sync.Mutex
	acked := map[uuid.UUID]bool{} // event ids of acknowledged saves
	lost := map[uuid.UUID]bool{}  // event ids of saves that got a conflict
	var nAcked, nLost, nMulti int

	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		for g := 0; g < goroutines; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l := writers[c]
				rng := rand.New(rand.NewPCG(uint64(c), uint64(g)))
				type known struct{ version, readTo int64 }
				stale := map[uuid.UUID]known{}
				for r := 0; r < rounds; r++ {
					id := ids[rng.IntN(len(ids))]
					var k known
					if old, ok := stale[id]; ok && rng.IntN(4) == 0 {
						k = old // act on stale knowledge: must conflict unless nobody wrote since
					} else {
						tail, err := l.Read(ctxT(t), typ, id, 0)
						if err != nil {
							t.Error(err)
							return
						}
						var seq log.Sequencer
						for _, e := range tail.Events {
							seq.Next(e)
						}
						k = known{seq.Version, seq.Resume(tail.End)}
					}
					n := 1 + rng.IntN(3)
					evs := logtest.Events(typ, id, k.version, n)
					out, err := l.Append(ctxT(t), typ, id, log.Expected{Version: k.version, ReadTo: k.readTo}, evs)
					mu.Lock()
					switch {
					case err == nil:
						nAcked++
						if n > 1 {
							nMulti++
						}
						for _, e := range evs {
							acked[e.ID] = true
						}
						stale[id] = known{out[len(out)-1].AggregateVersion, out[len(out)-1].Position.Offset + 1}
					case errors.Is(err, log.ErrConflict):
						nLost++
						for _, e := range evs {
							lost[e.ID] = true
						}
					default:
						t.Error(err)
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d saves acknowledged (%d of several events), %d conflicts", nAcked, nMulti, nLost)
	if nLost == 0 || nMulti == 0 {
		t.Fatalf("the race produced %d conflicts and %d multi-event saves; the test proves nothing", nLost, nMulti)
	}

	readers := []*log.Kafka{mk(), mk()}
	views := make([]map[uuid.UUID][]log.Event, len(readers))
	for i, rd := range readers {
		views[i] = map[uuid.UUID][]log.Event{}
		for _, id := range ids {
			tail, err := rd.Read(ctxT(t), typ, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			views[i][id] = logtest.Winners(t, tail.Events)
		}
	}
	seen := map[uuid.UUID]int{}
	for _, id := range ids {
		a, b := views[0][id], views[1][id]
		if len(a) != len(b) {
			t.Fatalf("%s: readers disagree: %d and %d events", id, len(a), len(b))
		}
		for v, e := range a {
			if e.ID != b[v].ID || e.Position != b[v].Position {
				t.Fatalf("%s version %d: readers disagree: %s@%s and %s@%s", id, v+1, e.ID, e.Position, b[v].ID, b[v].Position)
			}
			if e.AggregateVersion != int64(v+1) {
				t.Fatalf("%s: event %d has version %d", id, v, e.AggregateVersion)
			}
			if lost[e.ID] {
				t.Fatalf("%s version %d: event %s belongs to a save that was told it lost", id, v+1, e.ID)
			}
			if !acked[e.ID] {
				t.Fatalf("%s version %d: event %s was never appended", id, v+1, e.ID)
			}
			seen[e.ID]++
		}
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged event %s is present %d times", id, seen[id])
		}
	}
	if len(seen) != len(acked) {
		t.Fatal(fmt.Sprintf("%d events present, %d acknowledged", len(seen), len(acked)))
	}
}
