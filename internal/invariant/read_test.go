package invariant_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/invariant"
	"github.com/snaplog/snaplog/internal/kafkatest"
)

// TestReadTopic reads a topic whose partitions end in a commit marker, in
// an abort marker and in a transaction still open, on a real broker: the
// read must end at each partition's last stable offset, return the
// committed and non-transactional records only, and check them.
func TestReadTopic(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := kafkatest.Topic(t, "invariant-read")
	kafkatest.DeleteTopicsOnCleanup(t, topic)
	if _, err := kafkatest.Admin(t).CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	seed := kgo.SeedBrokers(brokers...)
	plain := kafkatest.Client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	txn := func() *kgo.Client {
		return kafkatest.Client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionalID("invariant-read-"+uuid.NewString()))
	}
	at := func(p int32, recs ...*kgo.Record) []*kgo.Record {
		for _, r := range recs {
			r.Partition = p
		}
		return recs
	}
	produce := func(cl *kgo.Client, recs []*kgo.Record) {
		t.Helper()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	transact := func(cl *kgo.Client, commit kgo.TransactionEndTry, recs []*kgo.Record) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		produce(cl, recs)
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}

	a, b, c := uuid.New(), uuid.New(), uuid.New()
	a1, a2 := newSave(a, 0, 1), newSave(a, 1, 2)
	b1, bAborted := newSave(b, 0, 2), newSave(b, 2, 1)
	c1, cOpen := newSave(c, 0, 1), newSave(c, 1, 1)

	produce(plain, at(0, a1.record(0)))
	transact(txn(), kgo.TryCommit, at(0, a2.record(0), a2.record(1))) // partition 0 ends in a commit marker
	transact(txn(), kgo.TryCommit, at(1, b1.record(0), b1.record(1)))
	transact(txn(), kgo.TryAbort, at(1, bAborted.record(0))) // partition 1 ends in an abort marker
	produce(plain, at(2, c1.record(0)))
	open := txn()
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	produce(open, at(2, cOpen.record(0))) // partition 2 ends in an open transaction
	defer func() { _ = open.EndTransaction(context.Background(), kgo.TryAbort) }()

	rd, err := invariant.ReadTopic(ctx, topic, seed)
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.Records) != 6 || rd.Control != 3 || rd.Unread != 1 {
		t.Fatalf("read %d records, %d markers, %d unread; want 6, 3 and 1", len(rd.Records), rd.Control, rd.Unread)
	}
	rep, err := invariant.CheckTopic(ctx, topic, invariant.Observations{
		Acked:    []invariant.Save{a1.obs(), a2.obs(), b1.obs(), c1.obs()},
		Unknown:  []invariant.Save{bAborted.obs(), cOpen.obs()},
		Complete: true,
	}, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.String())
	wantOnly(t, rep)
	if rep.AckedVerified != 4 || rep.UnknownLost != 2 || rep.Events != 6 || rep.Control != 3 {
		t.Fatal(rep.String())
	}
}
