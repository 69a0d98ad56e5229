package log_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkKafkaAppendVsProduce measures, in one run and on the same topic,
// single-event Append against franz-go ProduceSync of the same records (as
// log.Record builds them) with the same client settings (acks=all,
// idempotent, no linger): latency
// percentiles one at a time, and throughput with concurrent appenders. It
// reports the ratios.
func BenchmarkKafkaAppendVsProduce(b *testing.B) {
	k := newKafka(b)
	ctx := context.Background()
	typ := "Bench"
	if err := k.EnsureTopic(ctx, typ); err != nil {
		b.Fatal(err)
	}
	topic := k.Topic(typ)
	raw := kafkatest.Client(b, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner()))

	type agg struct {
		id      uuid.UUID
		version int64
		readTo  int64
	}
	newAgg := func() *agg { return &agg{id: uuid.New()} }
	appendOne := func(a *agg) error {
		out, err := k.Append(ctx, typ, a.id, log.Expected{Version: a.version, ReadTo: a.readTo}, logtest.Events(typ, a.id, a.version, 1))
		if err != nil {
			return err
		}
		a.version, a.readTo = out[0].AggregateVersion, out[0].Position.Offset+1
		return nil
	}
	// The raw client produces the very record an Append of the event
	// stores (key, headers, value).
	produceTo := func(topic string) func(a *agg) error {
		return func(a *agg) error {
			e := logtest.Events(typ, a.id, a.version, 1)[0]
			e.Expected, e.Save, e.SaveEvents = a.version, uuid.New(), 1
			e.Position.Partition = log.Partition(a.id, 3)
			a.version++
			return raw.ProduceSync(ctx, log.Record(topic, e)).FirstErr()
		}
	}
	produceOne := produceTo(topic)
	// Warm both paths up (connections, producer ids, metadata).
	for i := 0; i < 20; i++ {
		if err := appendOne(newAgg()); err != nil {
			b.Fatal(err)
		}
		if err := produceOne(newAgg()); err != nil {
			b.Fatal(err)
		}
	}

	// Latency, one at a time, Append and ProduceSync alternating. Solo: the
	// raw records go to another partition, so the appends' partition is
	// written by this log only and the outcome check needs no fetch. Shared:
	// the raw records go to the appends' partition, so every append must
	// fetch the other producer's record to learn its outcome.
	n := max(b.N, 300)
	b.ResetTimer()
	latency := func(shared bool) (appendLat, rawLat []time.Duration) {
		a, r := newAgg(), newAgg()
		for (log.Partition(a.id, 3) == log.Partition(r.id, 3)) != shared {
			r = newAgg()
		}
		for i := 0; i < n; i++ {
			start := time.Now()
			if err := appendOne(a); err != nil {
				b.Fatal(err)
			}
			appendLat = append(appendLat, time.Since(start))
			start = time.Now()
			if err := produceOne(r); err != nil {
				b.Fatal(err)
			}
			rawLat = append(rawLat, time.Since(start))
		}
		return appendLat, rawLat
	}
	appendLat, rawLat := latency(false)
	sharedAppendLat, sharedRawLat := latency(true)

	// Throughput: the same number of concurrent writers, each on its own
	// aggregate, all through one log (or one raw client). The raw writers
	// write a topic of their own, so that the appends' partitions hold only
	// the log's records (the records of another producer are what the
	// shared latency case measures).
	if err := k.EnsureTopic(ctx, typ+"Raw"); err != nil {
		b.Fatal(err)
	}
	produceAlone := produceTo(k.Topic(typ + "Raw"))
	const writers, each = 64, 150
	run := func(f func(*agg) error) float64 {
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := newAgg()
				for i := 0; i < each; i++ {
					if err := f(a); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return float64(writers*each) / time.Since(start).Seconds()
	}
	// Alternate the two, three times each, and take the medians: the
	// broker shares the machine and warms up as it goes.
	var appendRates, rawRates []float64
	for i := 0; i < 3; i++ {
		rawRates = append(rawRates, run(produceAlone))
		appendRates = append(appendRates, run(appendOne))
	}
	slices.Sort(appendRates)
	slices.Sort(rawRates)
	appendRate, rawRate := appendRates[1], rawRates[1]
	b.StopTimer()

	b.ReportMetric(ms(percentile(appendLat, .5)), "append-p50-ms")
	b.ReportMetric(ms(percentile(rawLat, .5)), "raw-p50-ms")
	b.ReportMetric(ms(percentile(appendLat, .99)), "append-p99-ms")
	b.ReportMetric(ms(percentile(rawLat, .99)), "raw-p99-ms")
	b.ReportMetric(float64(percentile(appendLat, .5))/float64(percentile(rawLat, .5)), "p50-ratio")
	b.ReportMetric(float64(percentile(appendLat, .99))/float64(percentile(rawLat, .99)), "p99-ratio")
	b.ReportMetric(ms(percentile(sharedAppendLat, .5)), "shared-append-p50-ms")
	b.ReportMetric(float64(percentile(sharedAppendLat, .5))/float64(percentile(sharedRawLat, .5)), "shared-p50-ratio")
	b.ReportMetric(float64(percentile(sharedAppendLat, .99))/float64(percentile(sharedRawLat, .99)), "shared-p99-ratio")
	b.ReportMetric(appendRate, "append-ev/s")
	b.ReportMetric(rawRate, "raw-ev/s")
	b.ReportMetric(appendRate/rawRate, "throughput-ratio")
}

// BenchmarkKafkaReadScan measures Read of one aggregate from the start of its
// partition at 1,000 and 10,000 events per aggregate: the cost a load pays
// without a snapshot.
func BenchmarkKafkaReadScan(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			k := newKafka(b, log.WithTopicPartitions(1))
			ctx := context.Background()
			id := uuid.New()
			var readTo int64
			for v := 0; v < n; v += 500 {
				out, err := k.Append(ctx, "Scan", id, log.Expected{Version: int64(v), ReadTo: readTo}, logtest.Events("Scan", id, int64(v), 500))
				if err != nil {
					b.Fatal(err)
				}
				readTo = out[len(out)-1].Position.Offset + 1
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tail, err := k.Read(ctx, "Scan", id, 0)
				if err != nil || len(tail.Events) != n {
					b.Fatalf("read %d events: %v", len(tail.Events), err)
				}
			}
			b.ReportMetric(float64(n), "events")
		})
	}
}
