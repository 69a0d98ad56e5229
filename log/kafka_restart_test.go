//go:build kafkarestart

// This test stops and starts the broker that scripts/kafka.sh runs, so it
// must not share the broker with other tests: `make test` runs it on its own
// after the rest of the suite (go test -tags kafkarestart -run Restart ./log).

package log_test

import (
	"context"
	"errors"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

func kafkaScript(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("bash", append([]string{"../scripts/kafka.sh"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/kafka.sh %v: %v\n%s", args, err, out)
	}
	t.Logf("scripts/kafka.sh %v:\n%s", args, out)
}

// TestKafkaSurvivesBrokerRestart appends a stream of events while the broker
// process is stopped and started again. Every acknowledged event must be
// there afterwards, and appends must succeed again once the broker is back.
func TestKafkaSurvivesBrokerRestart(t *testing.T) {
	k := newKafka(t)
	ctx := context.Background()
	if err := k.EnsureTopic(ctx, "Stream"); err != nil {
		t.Fatal(err)
	}
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New()}

	var mu sync.Mutex
	acked := map[uuid.UUID][]uuid.UUID{} // aggregate -> acknowledged event ids in order
	var afterRestart int
	restarted := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var version, readTo int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, cancel := context.WithTimeout(ctx, 60*time.Second)
				out, err := k.Append(c, "Stream", id, log.Expected{Version: version, ReadTo: readTo}, logtest.Events("Stream", id, version, 1))
				cancel()
				if err != nil {
					// An append that failed may or may not have landed:
					// learn the aggregate's state again and go on.
					if errors.Is(err, log.ErrConflict) {
						t.Logf("%s: %v (an earlier failed append landed)", id, err)
					}
					c, cancel := context.WithTimeout(ctx, 60*time.Second)
					tail, rerr := k.Read(c, "Stream", id, 0)
					cancel()
					if rerr != nil {
						continue
					}
					seq := log.Sequencer{}
					for _, e := range tail.Events {
						seq.Next(e)
					}
					version, readTo = seq.Version, seq.Resume(tail.End)
					continue
				}
				version, readTo = out[0].AggregateVersion, out[0].Position.Offset+1
				mu.Lock()
				acked[id] = append(acked[id], out[0].ID)
				select {
				case <-restarted:
					afterRestart++
				default:
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(2 * time.Second)
	kafkaScript(t, "stop")
	time.Sleep(2 * time.Second)
	kafkaScript(t, "start")
	close(restarted)
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := afterRestart
		mu.Unlock()
		if n >= 30 {
			break
		}
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatalf("only %d appends succeeded in the minute after the restart", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	reader := newKafka(t, log.WithTopicPrefix(k.Topic("")))
	total := 0
	for _, id := range ids {
		tail, err := reader.Read(ctx, "Stream", id, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := map[uuid.UUID]bool{}
		for _, e := range logtest.Winners(t, tail.Events) {
			got[e.ID] = true
		}
		for _, eid := range acked[id] {
			if !got[eid] {
				t.Fatalf("%s: acknowledged event %s is lost", id, eid)
			}
		}
		total += len(acked[id])
	}
	t.Logf("%d acknowledged appends across the restart, %d after it; none lost", total, afterRestart)
}
