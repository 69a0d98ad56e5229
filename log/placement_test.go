package log_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

func TestPlacementError(t *testing.T) {
	err := error(&log.PlacementError{Topic: "snaplog.events.Order", Placed: 3, Partitions: 6})
	if !errors.Is(err, log.ErrPlacement) {
		t.Fatal("a *PlacementError is not ErrPlacement")
	}
	if !errors.Is(fmt.Errorf("wrapped: %w", err), log.ErrPlacement) {
		t.Fatal("a wrapped *PlacementError is not ErrPlacement")
	}
	for _, want := range []string{"snaplog.events.Order has 6 partitions", "placed with 3", "new topic"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{{log.PlacementKey, true}, {uuid.NewString(), false}, {"", false}, {"SNAPLOG.PLACEMENT", false}} {
		if got := log.IsPlacementRecord(&kgo.Record{Key: []byte(tc.key)}); got != tc.want {
			t.Errorf("IsPlacementRecord(%q) = %v", tc.key, got)
		}
	}
	for _, opt := range []log.KafkaOption{log.WithPlacement("", 3), log.WithPlacement("Order", 0)} {
		if _, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")), opt); err == nil || !strings.Contains(err.Error(), "WithPlacement") {
			t.Errorf("invalid WithPlacement: err = %v", err)
		}
	}
}

// manualClient is a client that writes records to the partition they name.
func manualClient(t *testing.T) *kgo.Client {
	return kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

// rawTopic creates an events topic (no compaction, unlimited retention)
// the way an operator would, without snaplog: it has no placement record.
func rawTopic(t *testing.T, name string, partitions int32) {
	t.Helper()
	kafkatest.DeleteTopicsOnCleanup(t, name)
	cfg := map[string]*string{"cleanup.policy": kadm.StringPtr("delete"), "retention.ms": kadm.StringPtr("-1"), "retention.bytes": kadm.StringPtr("-1")}
	adm := kafkatest.Admin(t)
	if _, err := adm.CreateTopic(ctxT(t), partitions, 1, cfg, name); err != nil {
		t.Fatal(err)
	}
	// Metadata reaches the broker's cache shortly after creation.
	for deadline := time.Now().Add(30 * time.Second); ; {
		td, err := adm.ListTopics(ctxT(t), name)
		if err == nil && td.Has(name) && td[name].Err == nil && len(td[name].Partitions) == int(partitions) {
			led := true
			for _, p := range td[name].Partitions {
				led = led && p.Err == nil && p.Leader >= 0
			}
			if led {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s created but not led: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// produceForeign writes n records that are not events to partition 0.
func produceForeign(t *testing.T, topic string, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Partition: 0, Key: []byte("foreign-" + strconv.Itoa(i)), Value: []byte("x")}
	}
	if err := manualClient(t).ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// placementRecords returns the placement records of partition 0.
func placementRecords(t *testing.T, topic string) []*kgo.Record {
	t.Helper()
	ends, err := kafkatest.Admin(t).ListEndOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	if end.Offset == 0 {
		return nil
	}
	cl := kafkatest.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []*kgo.Record
	for {
		fs := cl.PollFetches(ctxT(t))
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		last := false
		fs.EachRecord(func(r *kgo.Record) {
			if log.IsPlacementRecord(r) {
				out = append(out, r)
			}
			last = last || r.Offset >= end.Offset-1
		})
		if last {
			return out
		}
	}
}

func endOffsets(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	ends, err := kafkatest.Admin(t).ListEndOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// wantPlacementError checks that err refuses the topic, naming it and both
// partition counts.
func wantPlacementError(t *testing.T, what string, err error, topic string, placed, partitions int32) {
	t.Helper()
	var pe *log.PlacementError
	if !errors.Is(err, log.ErrPlacement) || !errors.As(err, &pe) {
		t.Fatalf("%s: err = %v, want a *log.PlacementError", what, err)
	}
	if pe.Topic != topic || pe.Placed != placed || pe.Partitions != partitions {
		t.Fatalf("%s: %+v, want topic %s placed with %d, %d now", what, *pe, topic, placed, partitions)
	}
	for _, want := range []string{topic, fmt.Sprintf("has %d partitions", partitions), fmt.Sprintf("placed with %d", placed)} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: error does not say %q: %v", what, want, err)
		}
	}
}

// TestKafkaRefusesGrownTopic is the incident: an operator grew an events
// topic from 3 to 6 partitions. A new log refuses every read and write of
// it, naming both counts, instead of reporting aggregates that have events
// as missing and letting them be created again; the log that was running
// refuses it within seconds.
func TestKafkaRefusesGrownTopic(t *testing.T) {
	running := newKafka(t) // 3 partitions
	prefix := running.Topic("")
	topic := running.Topic("Order")
	kafkatest.DeleteTopicsOnCleanup(t, topic)
	ids := make([]uuid.UUID, 20)
	for i := range ids {
		ids[i] = uuid.New()
		if _, err := running.Append(ctxT(t), "Order", ids[i], log.Expected{}, logtest.Events("Order", ids[i], 0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if recs := placementRecords(t, topic); len(recs) != 1 || recs[0].Offset != 0 {
		t.Fatalf("placement records of a topic the log created: %v", recs)
	}
	pl, err := log.CheckPlacement(ctxT(t), kafkatest.Client(t), topic, 0)
	if err != nil || pl.Placed != 3 || pl.Partitions != 3 || pl.Declared {
		t.Fatalf("CheckPlacement before the growth: %+v, %v", pl, err)
	}

	if _, err := kafkatest.Admin(t).UpdatePartitions(ctxT(t), 6, topic); err != nil {
		t.Fatal(err)
	}
	grown := time.Now()
	before := endOffsets(t, topic)
	moved := 0
	for _, id := range ids {
		if log.Partition(id, 3) != log.Partition(id, 6) {
			moved++
		}
	}
	t.Logf("%d of %d aggregates map to another partition with 6 partitions", moved, len(ids))

	// (1) A log that starts after the growth refuses everything.
	fresh := newKafka(t, log.WithTopicPrefix(prefix))
	for _, id := range ids {
		_, err := fresh.Read(ctxT(t), "Order", id, 0)
		wantPlacementError(t, "read "+id.String(), err, topic, 3, 6)
		_, err = fresh.Append(ctxT(t), "Order", id, log.Expected{}, logtest.Events("Order", id, 0, 1))
		wantPlacementError(t, "create "+id.String(), err, topic, 3, 6)
	}
	_, err = fresh.Partitions(ctxT(t), "Order")
	wantPlacementError(t, "Partitions", err, topic, 3, 6)
	wantPlacementError(t, "EnsureTopic", fresh.EnsureTopic(ctxT(t), "Order"), topic, 3, 6)
	wantPlacementError(t, "CheckPlacement", fresh.CheckPlacement(ctxT(t), "Order"), topic, 3, 6)
	_, err = log.CheckPlacement(ctxT(t), kafkatest.Client(t), topic, 0)
	wantPlacementError(t, "log.CheckPlacement", err, topic, 3, 6)

	// (2) The log that was running refuses within seconds, and for good.
	for {
		_, err := running.Read(ctxT(t), "Order", ids[0], 0)
		if err != nil {
			wantPlacementError(t, "read on the running log", err, topic, 3, 6)
			break
		}
		if time.Since(grown) > 10*time.Second {
			t.Fatalf("the running log still reads the grown topic %s after it grew", time.Since(grown))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the running log refused the topic %s after it grew", time.Since(grown).Round(time.Millisecond))
	for _, id := range ids {
		_, err := running.Append(ctxT(t), "Order", id, log.Expected{Version: 1}, logtest.Events("Order", id, 1, 1))
		wantPlacementError(t, "append on the running log", err, topic, 3, 6)
		_, err = running.Read(ctxT(t), "Order", id, 0)
		wantPlacementError(t, "read on the running log", err, topic, 3, 6)
	}

	// Nothing was written after the growth: no second history.
	after := endOffsets(t, topic)
	for p, off := range after {
		if off != before[p] {
			t.Errorf("partition %d: %d records before the refusals, %d after", p, before[p], off)
		}
	}
}

// TestKafkaPlacementOfTopicsWithoutRecord: a topic created without snaplog
// gets a placement record at its first use while partition 0 holds fewer
// than log.PlacementScan records; one with that many records and no
// placement record is refused unless its placement is declared, and a
// declaration writes nothing.
func TestKafkaPlacementOfTopicsWithoutRecord(t *testing.T) {
	k := newKafka(t)
	prefix := k.Topic("")

	t.Run("fewer records", func(t *testing.T) {
		topic := prefix + "Young"
		rawTopic(t, topic, 3)
		produceForeign(t, topic, log.PlacementScan-1)
		id := uuid.New()
		if _, err := k.Append(ctxT(t), "Young", id, log.Expected{}, logtest.Events("Young", id, 0, 1)); err != nil {
			t.Fatal(err)
		}
		recs := placementRecords(t, topic)
		if len(recs) != 1 || recs[0].Offset != log.PlacementScan-1 {
			t.Fatalf("placement records: %v", recs)
		}
		if pl, err := log.CheckPlacement(ctxT(t), kafkatest.Client(t), topic, 0); err != nil || pl.Placed != 3 {
			t.Fatalf("CheckPlacement: %+v, %v", pl, err)
		}
	})

	t.Run("legacy", func(t *testing.T) {
		topic := prefix + "Legacy"
		rawTopic(t, topic, 3)
		produceForeign(t, topic, log.PlacementScan)
		before := endOffsets(t, topic)
		id := uuid.New()
		_, err := k.Read(ctxT(t), "Legacy", id, 0)
		if !errors.Is(err, log.ErrPlacement) || !strings.Contains(err.Error(), topic) || !strings.Contains(err.Error(), "no placement record") ||
			!strings.Contains(err.Error(), "WithPlacement") {
			t.Fatalf("read a legacy topic: %v", err)
		}
		if _, err := k.Append(ctxT(t), "Legacy", id, log.Expected{}, logtest.Events("Legacy", id, 0, 1)); !errors.Is(err, log.ErrPlacement) {
			t.Fatalf("append to a legacy topic: %v", err)
		}
		if _, err := log.CheckPlacement(ctxT(t), kafkatest.Client(t), topic, 0); !errors.Is(err, log.ErrPlacement) {
			t.Fatalf("log.CheckPlacement of a legacy topic: %v", err)
		}
		if after := endOffsets(t, topic); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("the refusals wrote: %v, then %v", before, after)
		}

		// Declared right: used, and nothing is written but the event.
		declared := newKafka(t, log.WithTopicPrefix(prefix), log.WithPlacement("Legacy", 3))
		out, err := declared.Append(ctxT(t), "Legacy", id, log.Expected{}, logtest.Events("Legacy", id, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		tail, err := declared.Read(ctxT(t), "Legacy", id, 0)
		if err != nil || len(tail.Events) != 1 {
			t.Fatalf("read back: %v, %v", tail, err)
		}
		before[out[0].Position.Partition]++
		if after := endOffsets(t, topic); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("a declared placement wrote more than the event: %v, then %v", before, after)
		}
		if recs := placementRecords(t, topic); len(recs) != 0 {
			t.Fatalf("placement records written: %v", recs)
		}
		if pl, err := log.CheckPlacement(ctxT(t), kafkatest.Client(t), topic, 3); err != nil || pl.Placed != 3 || !pl.Declared {
			t.Fatalf("log.CheckPlacement declared: %+v, %v", pl, err)
		}

		// Declared wrong: the partition count differs from it.
		wrong := newKafka(t, log.WithTopicPrefix(prefix), log.WithPlacement("Legacy", 6))
		_, err = wrong.Read(ctxT(t), "Legacy", id, 0)
		wantPlacementError(t, "read with a wrong declaration", err, topic, 6, 3)
	})

	t.Run("first record wins", func(t *testing.T) {
		topic := prefix + "Claimed"
		rawTopic(t, topic, 3)
		// Someone wrote a placement of 6 first, then one of 3: the first
		// one is the placement.
		cl := manualClient(t)
		for _, n := range []string{"6", "3"} {
			r := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(log.PlacementKey), Value: []byte{},
				Headers: []kgo.RecordHeader{{Key: log.HeaderPartitions, Value: []byte(n)}}}
			if err := cl.ProduceSync(ctxT(t), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		_, err := k.Read(ctxT(t), "Claimed", uuid.New(), 0)
		wantPlacementError(t, "read", err, topic, 6, 3)
		// A declaration that contradicts the record is refused too.
		declared := newKafka(t, log.WithTopicPrefix(prefix), log.WithPlacement("Claimed", 3))
		if _, err := declared.Read(ctxT(t), "Claimed", uuid.New(), 0); !errors.Is(err, log.ErrPlacement) || !strings.Contains(err.Error(), "declared") {
			t.Fatalf("read with a declaration the record contradicts: %v", err)
		}
	})

	t.Run("deleted", func(t *testing.T) {
		topic := prefix + "Truncated"
		kafkatest.DeleteTopicsOnCleanup(t, topic)
		if err := k.EnsureTopic(ctxT(t), "Truncated"); err != nil {
			t.Fatal(err)
		}
		produceForeign(t, topic, 2)
		var del kadm.Offsets
		del.Add(kadm.Offset{Topic: topic, Partition: 0, At: 1, LeaderEpoch: -1})
		resps, err := kafkatest.Admin(t).DeleteRecords(ctxT(t), del)
		if err == nil {
			err = resps.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		fresh := newKafka(t, log.WithTopicPrefix(prefix))
		if _, err := fresh.Read(ctxT(t), "Truncated", uuid.New(), 0); !errors.Is(err, log.ErrPlacement) || !strings.Contains(err.Error(), "were deleted") {
			t.Fatalf("read: %v", err)
		}
	})

	t.Run("malformed", func(t *testing.T) {
		topic := prefix + "Malformed"
		rawTopic(t, topic, 3)
		r := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(log.PlacementKey), Value: []byte("3")}
		if err := manualClient(t).ProduceSync(ctxT(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if _, err := k.Read(ctxT(t), "Malformed", uuid.New(), 0); !errors.Is(err, log.ErrPlacement) || !strings.Contains(err.Error(), log.HeaderPartitions) {
			t.Fatalf("read: %v", err)
		}
	})
}

// TestKafkaPlacementFirstUsersAgree: processes that use a new topic at the
// same moment, before it has a placement record, each write one, and all
// end with the first one's.
func TestKafkaPlacementFirstUsersAgree(t *testing.T) {
	first := newKafka(t)
	prefix := first.Topic("")
	topic := prefix + "Race"
	rawTopic(t, topic, 3)
	const users = 8
	var wg sync.WaitGroup
	errs := make([]error, users)
	placed := make([]int32, users)
	logs := make([]*log.Kafka, users)
	clients := make([]*kgo.Client, users)
	for i := range users {
		if i%2 == 0 {
			logs[i] = first
			if i > 0 {
				logs[i] = newKafka(t, log.WithTopicPrefix(prefix))
			}
		} else {
			clients[i] = manualClient(t)
		}
	}
	ctx := ctxT(t)
	start := make(chan struct{})
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if logs[i] != nil {
				// A log: its first use places the topic.
				placed[i], errs[i] = logs[i].Partitions(ctx, "Race")
				return
			}
			// A reader with its own client.
			pl, err := log.CheckPlacement(ctx, clients[i], topic, 0)
			placed[i], errs[i] = pl.Placed, err
		}()
	}
	close(start)
	wg.Wait()
	for i := range users {
		if errs[i] != nil || placed[i] != 3 {
			t.Errorf("user %d: placed with %d, %v", i, placed[i], errs[i])
		}
	}
	recs := placementRecords(t, topic)
	if len(recs) == 0 || recs[0].Offset != 0 {
		t.Fatalf("placement records: %v", recs)
	}
	t.Logf("%d placement records written by %d first users", len(recs), users)
	// Whatever the later ones say, the first one is the placement.
	r := &kgo.Record{Topic: topic, Partition: 0, Key: []byte(log.PlacementKey), Value: []byte{},
		Headers: []kgo.RecordHeader{{Key: log.HeaderPartitions, Value: []byte("6")}}}
	if err := manualClient(t).ProduceSync(ctxT(t), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if pl, err := log.CheckPlacement(ctxT(t), kafkatest.Client(t), topic, 0); err != nil || pl.Placed != 3 {
		t.Fatalf("after a later placement record: %+v, %v", pl, err)
	}
}
