//go:build kafkacluster

// This file kills, restarts and pauses the nodes of the three-node cluster
// scripts/kafka.sh runs (`bash scripts/kafka.sh cluster start`), so it
// builds only with the kafkacluster tag and runs on its own (make
// test-cluster). The harness is in torture_harness_test.go.

package log_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/invariant"
	"github.com/snaplog/snaplog/log"
)

// EnvCluster lists the bootstrap servers of the three-node cluster of
// scripts/kafka.sh (the last line `scripts/kafka.sh cluster start` prints).
const envCluster = "SNAPLOG_KAFKA_CLUSTER"

// clusterBrokers returns the cluster's bootstrap servers; without them it
// skips, or fails under CI.
func clusterBrokers(t *testing.T) []string {
	t.Helper()
	v := strings.TrimSpace(os.Getenv(envCluster))
	if v == "" {
		need := "this test kills and pauses the nodes of scripts/kafka.sh's cluster: run `bash scripts/kafka.sh cluster start` and set " +
			envCluster + " to the list it prints last (`make test-cluster` does both)"
		if inCIEnv() {
			t.Fatalf("CI is true but %s is not set; %s", envCluster, need)
		}
		t.Skipf("%s is not set; %s", envCluster, need)
	}
	return strings.Split(v, ",")
}

// cluster runs `scripts/kafka.sh cluster args...`.
func cluster(t *testing.T, args ...string) {
	t.Helper()
	began := time.Now()
	out, err := exec.Command("bash", append([]string{"../scripts/kafka.sh", "cluster"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/kafka.sh cluster %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("scripts/kafka.sh cluster %s: %s", strings.Join(args, " "), time.Since(began).Round(time.Millisecond))
}

// leaderOf returns the node leading partition p of topic.
func leaderOf(t *testing.T, adm *kadm.Client, topic string, p int32) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		td, err := adm.ListTopics(ctx, topic)
		if err == nil {
			if pd, ok := td[topic].Partitions[p]; ok && pd.Leader >= 0 {
				return pd.Leader
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no leader of %s/%d: %v", topic, p, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestKafkaClusterFaults runs the torture writers (see TestKafkaProcessTorture)
// on a topic of replication factor 3 (min.insync.replicas 2) of the
// three-node cluster while, one after the other: (a) the leader of the
// busiest partition is killed with SIGKILL mid-stream and started again,
// (b) the three nodes are restarted one by one (a rolling restart), (c) one
// node is paused with SIGSTOP past the controller's broker session timeout
// and resumed. Then package invariant reads the topic raw and checks every
// outcome the writers were told: every acknowledged save exactly once, no
// conflicted save's events anywhere, unknown saves all or nothing, one
// event per version; and every save decided once the cluster is back.
func TestKafkaClusterFaults(t *testing.T) {
	brokers := clusterBrokers(t)
	const (
		settle = 15 * time.Second // Appends may fail this long after the last fault
		pause  = 12 * time.Second // past broker.session.timeout.ms (9 s)
	)
	typ := "Account"
	prefix := "ctorture." + uuid.NewString()[:8] + "."
	k, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(brokers...)), log.WithTopicPrefix(prefix),
		log.WithTopicPartitions(3), log.WithReplicationFactor(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	s := startTorture(t, brokers, k, prefix, typ, tortureShape{writers: 4, goroutines: 3, hot: 6, partitions: 3, finish: 30 * time.Second})
	adm := kadm.NewClient(seedClient(t, brokers))
	snapPrefix := strings.TrimSuffix(prefix, ".") + ".snapshots."
	t.Cleanup(func() {
		if !t.Failed() {
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(c, snapPrefix+typ)
		}
	})
	h, stopReaders := runReaders(t, s, prefix, snapPrefix, typ)
	busiest := map[int32]int{}
	for _, id := range s.ids {
		busiest[log.Partition(id, 3)]++
	}
	var hot int32
	for p, n := range busiest {
		if n > busiest[hot] {
			hot = p
		}
	}
	var story []string
	note := func(what string) { story = append(story, fmt.Sprintf("%s at %s", what, s.since(time.Now()))) }
	waitAcks := func(n int) {
		since := time.Now()
		for deadline := since.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if all, _ := s.obs.ackedSince(since); all >= n {
				return
			}
		}
		t.Logf("fewer than %d acknowledgements in 30s", n)
	}

	time.Sleep(time.Until(s.start.Add(4 * time.Second)))
	// (a) kill -9 the leader of the busiest partition.
	victim := leaderOf(t, adm, s.topic, hot)
	note(fmt.Sprintf("node %d (leader of partition %d) killed", victim, hot))
	cluster(t, "kill", fmt.Sprint(victim))
	time.Sleep(5 * time.Second)
	note(fmt.Sprintf("node %d started", victim))
	cluster(t, "start", fmt.Sprint(victim))
	waitAcks(20)

	// (b) rolling restart.
	for n := 1; n <= 3; n++ {
		note(fmt.Sprintf("node %d restarted", n))
		cluster(t, "restart", fmt.Sprint(n))
		waitAcks(10)
	}

	// (c) pause the new leader of the busiest partition past its session.
	paused := leaderOf(t, adm, s.topic, hot)
	note(fmt.Sprintf("node %d (leader of partition %d) paused", paused, hot))
	cluster(t, "pause", fmt.Sprint(paused))
	time.Sleep(pause)
	note(fmt.Sprintf("node %d resumed", paused))
	cluster(t, "resume", fmt.Sprint(paused))
	back := time.Now()

	s.runUntil(back.Add(settle+5*time.Second), back, 40, 10, 45*time.Second)
	s.finishAndCheck(nil, back, settle, strings.Join(story, ", "))

	// The readers catch up with the writers' last events, the snapshotter
	// checkpoints them; then both stop and are checked.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	read, err := invariant.ReadTopic(ctx, s.topic, kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	var winners []uuid.UUID
	for _, hist := range invariant.Histories(read.Records) {
		for _, e := range hist {
			winners = append(winners, e.ID)
		}
	}
	caught := time.Now()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		h.mu.Lock()
		done := true
		for _, id := range winners {
			if h.counts[id] == 0 {
				done = false
				break
			}
		}
		h.mu.Unlock()
		if done {
			break
		}
	}
	t.Logf("the consumer group had handled the winning events %s after the writers stopped", time.Since(caught).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // a few checkpoint intervals
	consumerRestarts, snapshotterRestarts := stopReaders()
	t.Logf("readers stopped: %d consumer and %d snapshotter restarts after a failed Run", consumerRestarts, snapshotterRestarts)
	checkReaders(t, s, h, prefix, snapPrefix, typ)
	if out, err := exec.Command("bash", "../scripts/kafka.sh", "cluster", "status").CombinedOutput(); err != nil {
		t.Errorf("cluster status after the faults: %v\n%s", err, bytes.TrimSpace(out))
	}
}
