package log_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

// foreignRecord is the record another producer would store for a one-event
// save of aggregate id expecting version expected.
func foreignRecord(k *log.Kafka, typ string, id uuid.UUID, expected int64) *kgo.Record {
	e := logtest.Events(typ, id, expected, 1)[0]
	e.Expected, e.Save, e.SaveEvents = expected, uuid.New(), 1
	return log.Record(k.Topic(typ), e)
}

// TestKafkaAppendsOfOneWriterNeedNoFetch: where the log is the only writer
// of a partition, its one-event Appends learn their outcome from their own
// acknowledgements, without reading the partition, and every event is
// visible to a Read as soon as its Append returns.
func TestKafkaAppendsOfOneWriterNeedNoFetch(t *testing.T) {
	k := newKafka(t, log.WithTopicPartitions(1))
	typ, id := "Account", uuid.New()
	out, err := k.Append(ctxT(t), typ, id, log.Expected{}, logtest.Events(typ, id, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	readTo := out[0].Position.Offset + 1
	var before uint64
	for v := int64(1); v <= 55; v++ {
		if v == 6 {
			// The creation needed a fetch, and the fetch tailing the
			// partition since may still bring the first appends' records:
			// count from here.
			time.Sleep(100 * time.Millisecond)
			before = k.Stats().CheckRecords
		}
		out, err := k.Append(ctxT(t), typ, id, log.Expected{Version: v, ReadTo: readTo}, logtest.Events(typ, id, v, 1))
		if err != nil {
			t.Fatalf("append of version %d: %v", v+1, err)
		}
		readTo = out[0].Position.Offset + 1
		tail, err := k.Read(ctxT(t), typ, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if w := logtest.Winners(t, tail.Events); int64(len(w)) != v+1 {
			t.Fatalf("after the append of version %d a Read shows %d events", v+1, len(w))
		}
	}
	if got := k.Stats().CheckRecords - before; got != 0 {
		t.Fatalf("50 appends of the partition's only writer read %d records to learn their outcome, want 0", got)
	}
}

// TestKafkaAppendSeesARecordBetweenItsOwn: a record of another producer
// that lands between two of the log's own records is read and counted: a
// competing save of the same aggregate wins, and the log's Append, though
// every record it was told of is its own, reports the conflict.
func TestKafkaAppendSeesARecordBetweenItsOwn(t *testing.T) {
	k := newKafka(t, log.WithTopicPartitions(1))
	raw := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	typ, id, other := "Account", uuid.New(), uuid.New()
	var readTo int64
	appendNext := func(v int64) error {
		out, err := k.Append(ctxT(t), typ, id, log.Expected{Version: v, ReadTo: readTo}, logtest.Events(typ, id, v, 1))
		if err == nil {
			readTo = out[0].Position.Offset + 1
		}
		return err
	}
	// After a check that needed a fetch, the log tails the partition for
	// a second (and would read the other producer's record on its own):
	// let that pass, so that the record comes between two of the log's.
	untail := func() { time.Sleep(1500 * time.Millisecond) }
	for v := int64(0); v < 2; v++ {
		if err := appendNext(v); err != nil {
			t.Fatal(err)
		}
	}
	untail()
	// Another aggregate's record between: the append wins, having read it.
	if err := raw.ProduceSync(ctxT(t), foreignRecord(k, typ, other, 0)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	before := k.Stats().CheckRecords
	if err := appendNext(2); err != nil {
		t.Fatal(err)
	}
	if k.Stats().CheckRecords == before {
		t.Fatal("the append did not read the other producer's record before its own")
	}
	untail()
	// A competing save of the aggregate between: it wins.
	if err := raw.ProduceSync(ctxT(t), foreignRecord(k, typ, id, 3)).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var ce *log.ConflictError
	if err := appendNext(3); !errors.As(err, &ce) || ce.Actual != 4 {
		t.Fatalf("append after another producer's winning save of version 4: %v, want a conflict at 4", err)
	}
}

// TestKafkaAppendWaitsForAnOpenTransactionBeforeIt: an Append whose record
// lands after a record of a transaction still open returns only when the
// transaction ends (before that, a read_committed reader does not see the
// Append's event), with the verdict the transaction's outcome makes: a win
// if it aborts, a conflict if it commits a competing save. Also when a new
// log's window starts where its caller says it read, past the open
// transaction's record (as a read_uncommitted reader would say; the
// verdict then rests on the caller's word, so only the aborted case is
// decided by the records).
func TestKafkaAppendWaitsForAnOpenTransactionBeforeIt(t *testing.T) {
	kafkatest.RealBrokers(t) // the last stable offset of a real broker
	for _, commit := range []bool{false, true} {
		for _, fresh := range []bool{false, true} {
			if fresh && commit {
				continue
			}
			name := map[bool]string{false: "aborted", true: "committed"}[commit] + map[bool]string{false: "/same-log", true: "/fresh-log"}[fresh]
			t.Run(name, func(t *testing.T) {
				writer := newKafka(t, log.WithTopicPartitions(1))
				typ, id := "Account", uuid.New()
				out, err := writer.Append(ctxT(t), typ, id, log.Expected{}, logtest.Events(typ, id, 0, 1))
				if err != nil {
					t.Fatal(err)
				}
				txn := kafkatest.Client(t, kgo.TransactionalID("open-"+uuid.NewString()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
				if err := txn.BeginTransaction(); err != nil {
					t.Fatal(err)
				}
				competing := foreignRecord(writer, typ, id, 1)
				if err := txn.ProduceSync(ctxT(t), competing).FirstErr(); err != nil {
					t.Fatal(err)
				}
				// The writer's own log, which read the partition up to its
				// record, or a new log that has only the caller's word.
				k, readTo := writer, out[0].Position.Offset+1
				if fresh {
					k, readTo = newKafka(t, log.WithTopicPrefix(writer.Topic("")), log.WithTopicPartitions(1)), competing.Offset+1
				}
				done := make(chan error, 1)
				go func() {
					_, err := k.Append(ctxT(t), typ, id, log.Expected{Version: 1, ReadTo: readTo}, logtest.Events(typ, id, 1, 1))
					done <- err
				}()
				select {
				case err := <-done:
					t.Fatalf("the append returned (%v) while a transaction before its record is open", err)
				case <-time.After(time.Second):
				}
				end := kgo.TryAbort
				if commit {
					end = kgo.TryCommit
				}
				if err := txn.EndTransaction(ctxT(t), end); err != nil {
					t.Fatal(err)
				}
				var ce *log.ConflictError
				switch err := <-done; {
				case commit && (!errors.As(err, &ce) || ce.Actual != 2):
					t.Fatalf("append after a committed competing save: %v, want a conflict at 2", err)
				case !commit && err != nil:
					t.Fatalf("append after an aborted competing save: %v", err)
				}
			})
		}
	}
}

// TestKafkaAppendOfOneWriterDoesNotOutrunAReader: the event of a one-event
// Append is visible to every reader when the Append returns, also when the
// log answers from its own acknowledgements: a reader of another log,
// started after the Append returned, finds it.
func TestKafkaAppendOfOneWriterDoesNotOutrunAReader(t *testing.T) {
	k := newKafka(t, log.WithTopicPartitions(1))
	reader := newKafka(t, log.WithTopicPrefix(k.Topic("")), log.WithTopicPartitions(1))
	typ, id := "Account", uuid.New()
	var readTo int64
	ctx, cancel := context.WithTimeout(ctxT(t), time.Minute)
	defer cancel()
	for v := int64(0); v < 30; v++ {
		out, err := k.Append(ctx, typ, id, log.Expected{Version: v, ReadTo: readTo}, logtest.Events(typ, id, v, 1))
		if err != nil {
			t.Fatal(err)
		}
		readTo = out[0].Position.Offset + 1
		tail, err := reader.Read(ctx, typ, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if w := logtest.Winners(t, tail.Events); int64(len(w)) != v+1 {
			t.Fatalf("after the append of version %d another log's Read shows %d events", v+1, len(w))
		}
	}
}
