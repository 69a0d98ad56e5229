//go:build kafkarestart

// This file restarts the broker that scripts/kafka.sh runs, so it builds
// only with the kafkarestart tag and runs, like kafka_restart_test.go, on its
// own after the rest of the suite (see the Makefile's test target). The
// harness is in torture_harness_test.go.

package log_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/log"
)

// TestKafkaProcessTorture runs writers as separate OS processes (this test
// binary, re-executed: see TestMain) that race single- and multi-event
// saves, creations included, on a few hot aggregates, retrying each save
// after errors with the same Expected.Save (the idempotent retry). The
// broker is restarted while they write (bash scripts/kafka.sh restart);
// once it is back, one writer is killed with SIGKILL, its in-flight saves
// becoming of unknown outcome. Then package invariant, which implements the
// record format and the winner rule on its own, reads the topic raw and
// checks every outcome the writers were told (I1, I2, I3, I8): each
// acknowledged save exactly once at its versions and offsets, no conflicted
// save's events anywhere, unknown saves all or nothing, one event per
// version, no event nobody wrote.
//
// It also checks liveness: Appends stop failing shortly after the broker
// is back (except while waiting on a transaction the killed writer left
// open), and every save of the writers that were not killed is decided.
// A transaction the broker left hanging (see hangingTransactions) is
// reported and suspends the second check, which it makes impossible.
func TestKafkaProcessTorture(t *testing.T) {
	brokers := scriptBroker(t)
	const (
		restartAt = 4 * time.Second // restart the broker
		killAfter = 2 * time.Second // then kill writer 0 this long after the broker is back
		// After the kill, new saves go on for at least afterwards (and
		// settle+5s after the restart) and until afterAcks saves, afterMulti of several events, were
		// acknowledged, or for afterAtMost: a writer killed in a
		// transaction holds its partition's last stable offset, and so
		// every Append on that partition, until the broker aborts it
		// (transaction timeout).
		afterwards  = 10 * time.Second
		afterAcks   = 40
		afterMulti  = 10
		afterAtMost = 45 * time.Second
		settle      = 10 * time.Second // Appends may fail this long after the broker is back
	)
	typ := "Account"
	prefix := "ptorture." + uuid.NewString()[:8] + "."
	k := newKafka(t, log.WithTopicPrefix(prefix), log.WithTopicPartitions(3))
	s := startTorture(t, brokers, k, prefix, typ, tortureShape{writers: 4, goroutines: 3, hot: 6, partitions: 3, finish: 20 * time.Second})

	// Restart the broker while the writers are busy, transactions of
	// several events in flight among others.
	time.Sleep(time.Until(s.start.Add(restartAt)))
	restartBegan := time.Now()
	restartScriptBroker(t)
	restarted := time.Now()
	t.Logf("broker restarted at %s in %s", s.since(restartBegan), restarted.Sub(restartBegan).Round(time.Millisecond))

	// Kill writer 0 with saves in flight, once it writes again.
	time.Sleep(killAfter)
	killed := s.kill(0)
	s.runUntil(time.Now().Add(max(afterwards, time.Until(restarted.Add(settle+5*time.Second)))), killed, afterAcks, afterMulti, afterAtMost)
	s.finishAndCheck(map[int]bool{0: true}, restarted, settle, fmt.Sprintf("the broker was down from %s to %s, writer 0 was killed at %s",
		s.since(restartBegan), s.since(restarted), s.since(killed)))
}
