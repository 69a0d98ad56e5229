package snapshotter_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// fill appends events deposits spread over aggs accounts, in saves of up
// to 100 events per account, from several goroutines.
func fill(b *testing.B, e *env, aggs, events int) {
	b.Helper()
	per := events / aggs
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < aggs; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id := uuid.New()
			var v, readTo int64
			for v < int64(per) {
				n := min(100, per-int(v))
				evs := make([]log.Event, n)
				for k := range evs {
					evs[k] = log.Event{ID: uuid.New(), Type: "Deposited", AggregateType: "Account", AggregateID: id,
						AggregateVersion: v + int64(k) + 1, OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: []byte(`{"amount":1}`)}
				}
				out, err := e.log.Append(context.Background(), "Account", id, log.Expected{Version: v, ReadTo: readTo}, evs)
				if err != nil {
					b.Error(err)
					return
				}
				v, readTo = out[n-1].AggregateVersion, out[n-1].Position.Offset+1
			}
		}()
	}
	wg.Wait()
}

// BenchmarkSnapshotterThroughput: the snapshotter catching up with an
// events topic (500,000 events of 1,000 aggregates) against raw franz-go
// consumption of the same topic by a consumer group (read_committed), side
// by side in one run, the snapshotter writing to the snapshot topics
// (Kafka transactions) and to PostgreSQL (WithPostgres; when the server of
// pgtest is there). All are timed from the first record they get to the
// last (BenchmarkReady measures starting).
//
//	SNAPLOG_KAFKA_BROKERS=127.0.0.1:9092 SNAPLOG_POSTGRES_URL=postgres://snaplog:snaplog@127.0.0.1:55432/snaplog?sslmode=disable \
//		go test -run '^$' -bench BenchmarkSnapshotterThroughput -benchtime 1x ./snapshotter/
func BenchmarkSnapshotterThroughput(b *testing.B) {
	const aggs, events = 1000, 500_000
	e := newEnv(b, 3)
	fill(b, e, aggs, events)
	topic := e.events + "Account"
	var pg *pgSide
	if os.Getenv(pgtest.EnvURL) != "" {
		side := newPGSide(b, e)
		pg = &side
	}
	b.ResetTimer()
	var raw, kafka, postgres time.Duration
	for i := 0; i < b.N; i++ {
		// Raw: a plain group consumer reading every record.
		cl := kafkatest.Client(b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumerGroup(fmt.Sprintf("%s-raw-%d", e.group, i)))
		var start time.Time
		for n := 0; n < events; {
			fs := cl.PollFetches(context.Background())
			if n == 0 && fs.NumRecords() > 0 {
				start = time.Now() // from the first record: joining is not throughput
			}
			n += fs.NumRecords()
		}
		raw += time.Since(start)
		cl.Close()

		// The snapshotters, from scratch, until every event is applied and
		// checkpointed.
		kafka += catchUp(b, e, events, e.snapshotterGroup(b, fmt.Sprintf("%s-%d", e.group, i), snapshotter.FromScratch(),
			snapshotter.WithCheckpointInterval(time.Second)))
		if pg != nil {
			saved := e.group
			e.group = fmt.Sprintf("%s-pg-%d", saved, i)
			s := pg.snapshotter(b, e, snapshotter.FromScratch(), snapshotter.WithCheckpointInterval(time.Second))
			e.group = saved
			postgres += catchUp(b, e, events, s)
		}
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(events*b.N) / d.Seconds() }
	b.ReportMetric(rate(raw), "raw-ev/s")
	b.ReportMetric(rate(kafka), "kafka-store-ev/s")
	b.ReportMetric(rate(kafka)/rate(raw), "kafka-ratio")
	if pg != nil {
		b.ReportMetric(rate(postgres), "postgres-store-ev/s")
		b.ReportMetric(rate(postgres)/rate(raw), "postgres-ratio")
	}
	b.ReportMetric(0, "ns/op")
}

// catchUp runs s until it has applied events events, and returns the time
// from its first applied event to its last; then, untimed, until it has
// checkpointed every partition at its last record, so that its writes kept
// up.
func catchUp(b *testing.B, e *env, events uint64, s *snapshotter.Snapshotter) time.Duration {
	stop := start2(b, s)
	defer stop()
	for s.Stats().EventsApplied == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for s.Stats().EventsApplied < events {
		time.Sleep(10 * time.Millisecond) // Stats takes the snapshotter's lock: not too often
	}
	took := time.Since(start)
	for {
		st := s.Stats()
		done := len(st.Partitions) == int(e.partitions)
		for _, p := range st.Partitions {
			done = done && p.Checkpoint == p.Next
		}
		if done {
			return took
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkCheckpointLag: under a steady 5,000 events/s, how long after an
// event is appended the checkpoint of its partition covers it, in
// checkpoint intervals.
//
//	SNAPLOG_KAFKA_BROKERS=127.0.0.1:9092 go test -run '^$' -bench BenchmarkCheckpointLag -benchtime 1x ./snapshotter/
func BenchmarkCheckpointLag(b *testing.B) {
	const rate, seconds, interval = 5000, 10, time.Second
	e := newEnv(b, 3)
	s := e.snapshotter(b, snapshotter.WithCheckpointInterval(interval), snapshotter.WithThreshold(100))
	stop := start2(b, s)
	defer stop()
	for !s.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	b.ResetTimer()
	// 100 writers, each saving 10 events to its own aggregate every 200 ms.
	const writers, perSave = 100, 10
	period := time.Duration(float64(time.Second) * writers * perSave / rate)
	var sent atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := uuid.New()
			var version, readTo int64
			next := start.Add(time.Duration(w) * period / writers)
			for time.Since(start) < seconds*time.Second {
				time.Sleep(time.Until(next))
				next = next.Add(period)
				evs := make([]log.Event, perSave)
				for k := range evs {
					evs[k] = log.Event{ID: uuid.New(), Type: "Deposited", AggregateType: "Account", AggregateID: id,
						AggregateVersion: version + int64(k) + 1, OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: []byte(`{"amount":1}`)}
				}
				out, err := e.log.Append(context.Background(), "Account", id, log.Expected{Version: version, ReadTo: readTo}, evs)
				if err != nil {
					b.Error(err)
					return
				}
				version, readTo = out[perSave-1].AggregateVersion, out[perSave-1].Position.Offset+1
				sent.Add(perSave)
			}
		}()
	}
	// Every 100 ms, note the partitions' ends; a watcher notes when the
	// checkpoints pass them.
	type probe struct {
		at   time.Time
		ends map[int32]int64
	}
	probes := make(chan probe, 1000)
	var lags []time.Duration
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for p := range probes {
			for {
				st := s.Stats()
				covered := len(st.Partitions) == 3
				for _, ps := range st.Partitions {
					// A checkpoint one below the end only misses the
					// marker of the last transaction.
					if ps.Checkpoint < p.ends[ps.Partition]-1 {
						covered = false
					}
				}
				if covered {
					lags = append(lags, time.Since(p.at))
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	for time.Since(start) < seconds*time.Second {
		probes <- probe{time.Now(), endOffsets(b, e.events+"Account")}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(probes)
	<-watched
	b.StopTimer()
	achieved := float64(sent.Load()) / elapsed.Seconds()
	slices.Sort(lags)
	if len(lags) == 0 {
		b.Fatal("no lag measured")
	}
	b.ReportMetric(achieved, "ev/s")
	b.ReportMetric(float64(lags[len(lags)/2])/float64(interval), "p50-lag-intervals")
	b.ReportMetric(float64(lags[len(lags)-1])/float64(interval), "max-lag-intervals")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkReady: time from start to ready with 100,000 aggregates in the
// snapshot topic.
//
//	SNAPLOG_KAFKA_BROKERS=127.0.0.1:9092 go test -run '^$' -bench BenchmarkReady -benchtime 1x ./snapshotter/
func BenchmarkReady(b *testing.B) {
	const aggs = 100_000
	e := newEnv(b, 3)
	store := e.store(b)
	if err := store.EnsureTopic(context.Background(), "Account"); err != nil {
		b.Fatal(err)
	}
	codec := snapshots.NewAvroCodec()
	if err := codec.Register("Account", accountSchema); err != nil {
		b.Fatal(err)
	}
	cl := kafkatest.Client(b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	var wg sync.WaitGroup
	for i := 0; i < aggs; i++ {
		id := uuid.New()
		p := log.Partition(id, e.partitions)
		v, err := codec.Encode(snapshots.Snapshot{AggregateID: id, AggregateType: "Account", Version: 1, SchemaVersion: 1, CreatedAt: time.Now(),
			Position: log.Position{Partition: p, Offset: 0}, State: accountState(b, Account{Balance: int64(i), Ops: 1})})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Topic: e.snaps + "Account", Partition: p, Key: log.Key(id), Value: v}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		s := e.snapshotterGroup(b, fmt.Sprintf("%s-%d", e.group, i))
		start := time.Now()
		stop := start2(b, s)
		for !s.Ready() {
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
		stop()
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-ready")
	b.ReportMetric(aggs, "aggregates")
	b.ReportMetric(0, "ns/op")
}

func (e *env) snapshotterGroup(b testing.TB, group string, opts ...snapshotter.Option) *snapshotter.Snapshotter {
	saved := e.group
	e.group = group
	defer func() { e.group = saved }()
	return e.snapshotter(b, opts...)
}

// start2 runs s and returns a function that stops it and waits.
func start2(b testing.TB, s *snapshotter.Snapshotter) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}
