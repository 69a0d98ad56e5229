package aggregate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// envBenchMax bounds the partition sizes BenchmarkKafkaFreshProcess runs:
// sizes above it are skipped (go test -v shows them as skipped). Unset, all
// three run.
const envBenchMax = "SNAPLOG_BENCH_MAX"

// BenchmarkKafkaFreshProcess measures how the cost of a process's first
// operations grows with the number of aggregates in a partition. For 10k,
// 100k and 1M aggregates (one Opened event each) in partition 0, with a
// snapshot of every one of them and a checkpoint at the partition's end
// written by a snapshotter, each iteration measures, every operation in a
// process of its own (a new log.Kafka, and a new snapshots.Kafka store when
// there is a snapshotter):
//
//   - cp-load: the first Load of an old aggregate through a repository with
//     the snapshot store (restores the snapshot partition's view, then
//     reads from the checkpoint);
//   - cp-create: the first creation (New, one event, Save) through such a
//     repository (restores the view; the log checks the records after the
//     checkpoint only; cp-create-records is what it read for that);
//   - cp-restore: the snapshot store's restore of the partition alone
//     (RestorePartition), where the two above spend most of their time;
//   - nocp-load, nocp-create: the same two without a snapshot store (a
//     full read of the partition for the aggregate; the log's creation
//     index built from the whole partition, nocp-create-records);
//   - fetch: one bare fetch request of the partition's tail on a warm
//     client (bareFetch), the floor the ratios are taken against, and
//     fetch-cold the same on a new client (connection and metadata too).
//
// -ms is the operation's time; -MB the heap (HeapAlloc after a GC, in 1e6
// bytes) the process holds after the operation beyond what was live before
// it was started, its log, store and repository included; -allocMB all it
// allocated meanwhile. Everything is averaged over b.N; the ratios
// (cp-load/fetch, ...) are of the averages, measured in the same run.
// setup-s is the time the partition and snapshot topic took to write.
//
// Run it (-benchtime 1x: one iteration of each size after the setup) with
//
//	SNAPLOG_KAFKA_BROKERS=127.0.0.1:9092 go test -run '^$' -bench BenchmarkKafkaFreshProcess -benchtime 1x -timeout 30m ./aggregate/
//
// -benchtime 3x averages three iterations (testing runs one with b.N = 1
// first, on the same setup). Add SNAPLOG_BENCH_MAX=100000 (envBenchMax) to
// leave out the sizes above it. Each iteration's creations add two records
// after the checkpoint, which later iterations' cp-create then reads.
func BenchmarkKafkaFreshProcess(b *testing.B) {
	limit := math.MaxInt
	if s := os.Getenv(envBenchMax); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("%s=%q: want a positive number of aggregates", envBenchMax, s)
		}
		limit = v
	}
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		name := fmt.Sprintf("aggregates=%d", n)
		if n > limit {
			b.Run(name, func(b *testing.B) { b.Skipf("above %s=%d", envBenchMax, limit) })
			continue
		}
		// The setup is made here, not in the sub-benchmark: with
		// -benchtime Nx (N > 1) testing calls a sub-benchmark twice
		// (b.N = 1, then N) and runs its cleanups in between.
		fb := newFreshBench(b, n)
		b.Run(name, fb.run)
		fb.drop(b)
	}
}

// freshBench is the partition one size of BenchmarkKafkaFreshProcess runs
// on.
type freshBench struct {
	ks    *kafkaSetup
	n     int
	ids   []uuid.UUID // the aggregates, in partition order
	end   int64       // the events partition's end, where the checkpoint is
	setup time.Duration
	raw   *kgo.Client // warm, for the bare fetch

	setupLog string // where the setup's time went
}

// benchProcess is one simulated process: what the helpers open on it
// (clients, logs, snapshot stores, repositories, all registered with
// Cleanup) is closed by end, not when the benchmark ends, so one process's
// snapshot view or creation index is unreachable when the next process is
// measured.
type benchProcess struct {
	testing.TB
	cleanups []func()
}

func newBenchProcess(tb testing.TB) *benchProcess { return &benchProcess{TB: tb} }

func (p *benchProcess) Cleanup(f func()) { p.cleanups = append(p.cleanups, f) }

func (p *benchProcess) end() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}

// processLog is freshLog for a testing.TB: a new log on the setup's topics.
func processLog(tb testing.TB, ks *kafkaSetup) *log.Kafka {
	tb.Helper()
	l, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(kafkatest.Brokers(tb)...)), log.WithTopicPrefix(ks.events),
		log.WithTopicPartitions(ks.partitions), log.WithReplicationFactor(1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// eventsEnd is endOffset for a testing.TB: the end offset of partition 0 of
// the setup's events topic.
func eventsEnd(tb testing.TB, ctx context.Context, cl *kgo.Client, ks *kafkaSetup) int64 {
	tb.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, ks.events+"Account")
	if err != nil {
		tb.Fatal(err)
	}
	o, ok := ends.Lookup(ks.events+"Account", 0)
	if !ok || o.Err != nil {
		tb.Fatalf("end offset of %s/0: %v", ks.events+"Account", o.Err)
	}
	return o.Offset
}

// newFreshBench writes n created aggregates to partition 0 of a new events
// topic, a snapshot of each to the snapshot topic and, as the snapshotter,
// a checkpoint at the events partition's end: all with raw batched
// produces except the checkpoint.
func newFreshBench(b *testing.B, n int) *freshBench {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	ks := newKafkaSetup(b, 1, nil)
	p := newBenchProcess(b) // the writer and the snapshotter: gone after the setup
	defer p.end()
	owner := ks.store(p, snapshots.WithOwner("snapshotter"))
	if err := owner.EnsureTopic(ctx, "Account"); err != nil { // compacted
		b.Fatal(err)
	}
	raw := kafkatest.Client(p, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(100_000))
	var mu sync.Mutex
	var produceErr error
	failed := func(err error) {
		mu.Lock()
		produceErr = errors.Join(produceErr, err)
		mu.Unlock()
	}
	flush := func(what string) {
		if err := raw.Flush(ctx); err != nil {
			b.Fatalf("flush %s: %v", what, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if produceErr != nil {
			b.Fatalf("produce %s: %v", what, produceErr)
		}
	}

	payload, err := json.Marshal(Opened{Owner: "filler"})
	if err != nil {
		b.Fatal(err)
	}
	ids, saves, offsets := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]int64, n)
	for i := range n {
		ids[i], saves[i] = uuid.New(), uuid.New()
		e := log.Event{ID: uuid.New(), Type: "Opened", AggregateType: "Account", AggregateID: ids[i], AggregateVersion: 1,
			OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: payload, Save: saves[i], SaveEvents: 1}
		raw.Produce(ctx, log.Record(ks.events+"Account", e), func(r *kgo.Record, err error) {
			if err != nil {
				failed(err)
				return
			}
			offsets[i] = r.Offset
		})
	}
	flush("events")
	events := time.Since(start)

	codec := ks.codec(b)
	state := accountState(b, Account{Owner: "filler", Balance: 0, Ops: 1})
	for i, id := range ids {
		value, err := codec.Encode(snapshots.Snapshot{AggregateID: id, AggregateType: "Account", Version: 1, SchemaVersion: 1,
			CreatedAt: time.Now(), Position: log.Position{Partition: 0, Offset: offsets[i]}, Save: saves[i], State: state})
		if err != nil {
			b.Fatal(err)
		}
		raw.Produce(ctx, &kgo.Record{Topic: ks.snaps + "Account", Partition: 0, Key: log.Key(id), Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed(err)
			}
		})
	}
	flush("snapshots")
	snaps := time.Since(start) - events

	end := eventsEnd(b, ctx, raw, ks)
	if end != offsets[n-1]+1 { // the topic's placement record comes first
		b.Fatalf("events partition ends at %d, want %d: after the last event written", end, offsets[n-1]+1)
	}
	if err := owner.PutCheckpoint(ctx, "Account", snapshots.Checkpoint{EventsPartition: 0, Offset: end}); err != nil {
		b.Fatal(err)
	}
	setup := time.Since(start)
	return &freshBench{ks: ks, n: n, ids: ids, end: end, setup: setup, raw: kafkatest.Client(b),
		setupLog: fmt.Sprintf("setup %v (events %v, snapshots %v, checkpoint with the snapshotter's restore %v)",
			setup.Round(time.Millisecond), events.Round(time.Millisecond), snaps.Round(time.Millisecond),
			(setup - events - snaps).Round(time.Millisecond))}
}

// drop deletes the size's topics now, so that the broker does not carry
// them through the larger sizes (newKafkaSetup's cleanup, at the end of
// the benchmark, then finds them gone).
func (fb *freshBench) drop(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resps, err := kadm.NewClient(fb.raw).DeleteTopics(ctx, fb.ks.events+"Account", fb.ks.snaps+"Account")
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		b.Logf("delete topics of aggregates=%d: %v", fb.n, err)
	}
}

// sample is one measured operation of a fresh process.
type sample struct {
	took         time.Duration
	heap, alloc  int64  // bytes held after it beyond before, bytes allocated
	checkRecords uint64 // the log's CheckRecords
}

type samples struct{ sum sample }

func (s *samples) add(x sample) {
	s.sum.took += x.took
	s.sum.heap += x.heap
	s.sum.alloc += x.alloc
	s.sum.checkRecords += x.checkRecords
}

func heapNow() runtime.MemStats {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// inProcess measures op in a new process: a new log and, with a snapshot
// store, a new store whose view is restored from nothing yet.
func (fb *freshBench) inProcess(b *testing.B, withStore bool, op func(ctx context.Context, repo *aggregate.Repository[Account])) sample {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newBenchProcess(b)
	defer p.end()
	before := heapNow()
	l := processLog(p, fb.ks)
	var opts []aggregate.Option
	var store *snapshots.Kafka
	if withStore {
		store = fb.ks.store(p)
		opts = append(opts, aggregate.WithSnapshotStore(store))
	}
	repo := newRepo(p, l, opts...)
	start := time.Now()
	op(ctx, repo)
	took := time.Since(start)
	after := heapNow()
	runtime.KeepAlive(l)
	runtime.KeepAlive(store)
	runtime.KeepAlive(repo)
	return sample{took: took, heap: int64(after.HeapAlloc) - int64(before.HeapAlloc),
		alloc: int64(after.TotalAlloc - before.TotalAlloc), checkRecords: l.Stats().CheckRecords}
}

// restoreOnly measures a new store's restore of the snapshot partition.
func (fb *freshBench) restoreOnly(b *testing.B) (time.Duration, snapshots.KafkaStats) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p := newBenchProcess(b)
	defer p.end()
	store := fb.ks.store(p)
	start := time.Now()
	cp, err := store.RestorePartition(ctx, "Account", 0)
	took := time.Since(start)
	if err != nil || cp.Offset != fb.end {
		b.Fatalf("restore: checkpoint %+v, %v; want the checkpoint at %d", cp, err, fb.end)
	}
	return took, store.Stats()
}

func (fb *freshBench) run(b *testing.B) {
	topic := fb.ks.events + "Account"
	bareFetch(b, fb.raw, topic, fb.end-1) // connect the warm client
	var cpLoad, cpCreate, nocpLoad, nocpCreate samples
	var fetch, fetchCold, restore time.Duration
	load := func(id uuid.UUID, fromSnapshot uint64) func(ctx context.Context, repo *aggregate.Repository[Account]) {
		return func(ctx context.Context, repo *aggregate.Repository[Account]) {
			got, err := repo.Load(ctx, id)
			if err != nil {
				b.Fatalf("first load of %s: %v", id, err)
			}
			if got.Version() != 1 {
				b.Fatalf("first load of %s: version %d, want 1", id, got.Version())
			}
			if st := repo.Stats(); st.LoadsFromSnapshot != fromSnapshot {
				b.Fatalf("first load of %s: stats %+v, want %d loads from a snapshot", id, st, fromSnapshot)
			}
		}
	}
	create := func(ctx context.Context, repo *aggregate.Repository[Account]) {
		a := repo.New(uuid.New())
		grow(b, a, 1)
		if err := repo.Save(ctx, a); err != nil {
			b.Fatalf("first creation: %v", err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		id := fb.ids[(fb.n/2+i*7919)%fb.n]
		fetch += bareFetch(b, fb.raw, topic, fb.end-1)
		cold := newBenchProcess(b)
		fetchCold += bareFetch(b, kafkatest.Client(cold), topic, fb.end-1)
		cold.end()
		cpLoad.add(fb.inProcess(b, true, load(id, 1)))
		cpCreate.add(fb.inProcess(b, true, create))
		took, st := fb.restoreOnly(b)
		restore += took
		nocpLoad.add(fb.inProcess(b, false, load(id, 0)))
		nocpCreate.add(fb.inProcess(b, false, create))
		if i == 0 {
			b.Logf("%s; restored view of %d aggregates, %d bytes of values cached; cp-create read %d records, nocp-create %d",
				fb.setupLog, st.Aggregates, st.CachedBytes, cpCreate.sum.checkRecords, nocpCreate.sum.checkRecords)
		}
	}
	b.StopTimer()
	if nocpCreate.sum.checkRecords < uint64(fb.n*b.N) {
		b.Fatalf("creations without a snapshotter read %d records, want the whole partition (%d) each", nocpCreate.sum.checkRecords, fb.n)
	}
	N := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 / N }
	mb := func(n int64) float64 { return float64(n) / 1e6 / N }
	fetchMS := ms(fetch)
	report := func(name string, s samples) {
		b.ReportMetric(ms(s.sum.took), name+"-ms")
		b.ReportMetric(mb(s.sum.heap), name+"-MB")
		b.ReportMetric(mb(s.sum.alloc), name+"-allocMB")
		b.ReportMetric(ms(s.sum.took)/fetchMS, name+"/fetch")
	}
	report("cp-load", cpLoad)
	report("cp-create", cpCreate)
	report("nocp-load", nocpLoad)
	report("nocp-create", nocpCreate)
	b.ReportMetric(float64(cpCreate.sum.checkRecords)/N, "cp-create-records")
	b.ReportMetric(float64(nocpCreate.sum.checkRecords)/N, "nocp-create-records")
	b.ReportMetric(ms(restore), "cp-restore-ms")
	b.ReportMetric(fetchMS, "fetch-ms")
	b.ReportMetric(ms(fetchCold), "fetch-cold-ms")
	b.ReportMetric(fb.setup.Seconds(), "setup-s")
	b.ReportMetric(0, "ns/op")
}
