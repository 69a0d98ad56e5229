package aggregate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// envBenchLarge, set to a true value (strconv.ParseBool: "1", "true"),
// adds the size of a million aggregates to BenchmarkStoreFreshProcess.
// Unset, that size is skipped, so that `make bench` stays short: on two
// cores it makes the benchmark take about 90 s instead of 25 s, most of it
// writing a million events and as many snapshot rows and records.
const envBenchLarge = "SNAPLOG_BENCH_LARGE"

const (
	// storePartitions is the partition count of the events topic of
	// BenchmarkStoreFreshProcess, and of the snapshot topic co-partitioned
	// with it.
	storePartitions = 8
	// storeTailed is how many aggregates have an event after their
	// partition's checkpoint: about storeTailed/storePartitions events per
	// partition that a snapshotter has not checkpointed yet, the tail that
	// every load reads from the checkpoint on.
	storeTailed = 16 * storePartitions
	// storeLoads is how many loads of random aggregates a fresh process
	// makes for the steady-state latencies.
	storeLoads = 1000
	// storeRounds is how many processes of each kind an iteration starts,
	// one of each kind after another.
	storeRounds = 5
	// storeWriters is how many Appends the setup has in flight.
	storeWriters = 512
)

// BenchmarkStoreFreshProcess compares, side by side in one run, the two
// snapshot stores a repository loads from as a process that has just
// started meets them: snapshots.Postgres (one row per aggregate, one point
// lookup per load) and snapshots.Kafka (a view that restores a partition of
// the snapshot topic into memory before the first load from it).
//
// For 10k, 100k and 1M aggregates, the setup writes one Opened event per
// aggregate (log.Kafka Appends, storeWriters at a time) to an events topic
// of storePartitions partitions; the snapshot of each aggregate at its
// event to both stores, as the same AvroCodec bytes (pgx CopyFrom into the
// Postgres store's table after Migrate, batched produces to the Kafka
// store's compacted topic); to both, as the snapshotter, a checkpoint at
// the end of each events partition; and then one Deposited event to each
// of storeTailed aggregates, the tail after the checkpoints. Each
// iteration then starts the test binary (see TestMain) storeRounds times
// for each of three kinds of fresh process, one of each kind after
// another:
//
//   - pg: a repository on a new log.Kafka with a new snapshots.Postgres on
//     a new pgxpool.Pool (the store is given the partition count,
//     WithPostgresPartitions);
//   - kafka: a repository on a new log.Kafka with a new snapshots.Kafka
//     (default view cache budget);
//   - log: a new log.Kafka alone, making the log's reads of such a load:
//     the tail read from the checkpoint together with the point read of the
//     snapshot's last event. It is the one tail fetch both stores add to.
//
// Each process loads one random aggregate, then one of every other
// partition (the warm-up, in which the Kafka view restores the other
// partitions), then storeLoads random aggregates one after another, timing
// each; the three processes of a round load the same aggregates. The
// repositories check every load: the version and state reached, and that
// it started from the snapshot. Both servers are the setup's, with warm
// caches: only the client process is fresh.
//
// Metrics, for pg- and kafka-, are medians over the processes of the kind
// (b.N times storeRounds):
//
//   - first_load_ms: from the construction of the process's pool, clients,
//     log, store and repository (constructors that do no I/O) to the end
//     of the first load; first_store_ms: the part of it spent in the
//     store's CheckpointOf and Get (the rest is the log's reads and the
//     repository's work), of which pg-connect_ms the Postgres pool's first
//     connection (TCP, startup, SCRAM authentication with the server of
//     scripts/postgres.sh); start_ms: from the start of the process (exec)
//     to the end of the first load;
//   - rss_MB, hwm_MB: VmRSS and VmHWM of the process after the first load;
//     heap_MB, sys_MB: the Go runtime's HeapInuse after a garbage
//     collection, and its Sys, then; rss_after_MB, hwm_after_MB: VmRSS and
//     VmHWM after the steady-state loads;
//   - warm_ms: the warm-up loads, together;
//   - p50_us, p99_us: the process's steady-state loads (nearest rank).
//
// log-first_ms, log-start_ms, log-rss_MB, log-p50_us and log-p99_us are
// the same of the log processes; kafka-view_aggregates and kafka-cached_MB
// describe the Kafka view after the first load (snapshots.KafkaStats: the
// aggregates of the restored partition, and the encoded values it holds
// within its cache budget), kafka-cached_after_MB its values after the
// steady-state loads. kafka/pg-first_load, kafka/pg-rss, kafka/pg-p50 and
// kafka/pg-p99 are ratios of the medians. The setup's times are
// seed_events_s, seed_kafka_s (with the owner's restore of every partition
// before its checkpoint), seed_pg_s and seed_tail_s; pg-table_MB is the
// snapshot table's pg_total_relation_size and kafka-topic_MB the snapshot
// topic's size on the broker. MB are 1e6 bytes. With -v, the first load of
// every process is logged, with its part in the store in parentheses.
//
// Run it with
//
//	SNAPLOG_KAFKA_BROKERS=127.0.0.1:9092 \
//	SNAPLOG_POSTGRES_URL='postgres://snaplog:snaplog@127.0.0.1:55432/snaplog?sslmode=disable' \
//	go test -run '^$' -bench BenchmarkStoreFreshProcess -benchtime 1x -timeout 30m ./aggregate/
//
// The million runs only with SNAPLOG_BENCH_LARGE=1 (envBenchLarge);
// SNAPLOG_BENCH_MAX (envBenchMax) leaves out the sizes above it, as it
// does for BenchmarkKafkaFreshProcess. (A -bench pattern naming one size
// does not skip the others' setups, which run before their
// sub-benchmarks.)
func BenchmarkStoreFreshProcess(b *testing.B) {
	brokers := kafkatest.RealBrokers(b)
	pgURL := pgtest.URL(b)
	limit := math.MaxInt
	if s := os.Getenv(envBenchMax); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("%s=%q: want a positive number of aggregates", envBenchMax, s)
		}
		limit = v
	}
	large := false
	if s := os.Getenv(envBenchLarge); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			b.Fatalf("%s=%q: want a boolean", envBenchLarge, s)
		}
		large = v
	}
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		name := fmt.Sprintf("aggregates=%d", n)
		switch {
		case n > limit:
			b.Run(name, func(b *testing.B) { b.Skipf("above %s=%d", envBenchMax, limit) })
			continue
		case n >= 1_000_000 && !large:
			b.Run(name, func(b *testing.B) { b.Skipf("set %s=1 to run it", envBenchLarge) })
			continue
		}
		// The setup is made here, not in the sub-benchmark, which testing
		// may call more than once (see BenchmarkKafkaFreshProcess).
		sb := newStoreBench(b, n, brokers, pgURL)
		b.Run(name, sb.run)
		sb.drop(b)
	}
}

// storeBench is the setup one size of BenchmarkStoreFreshProcess runs on.
type storeBench struct {
	n       int
	ks      *kafkaSetup
	ns      uuid.UUID // of the aggregates' ids (storeAggregate)
	schema  string    // PostgreSQL schema of the Postgres store
	pgURL   string
	brokers []string
	dir     string // of the samples

	offsets     []int64 // of each aggregate's Opened event, its snapshot's position
	checkpoints []int64 // by events partition

	seedEvents, seedKafka, seedPG, seedTail time.Duration
	pgBytes, topicBytes                     int64
	valueBytes                              int // of one encoded snapshot
}

// newStoreBench writes the events, snapshots, checkpoints and tail of n
// aggregates (see BenchmarkStoreFreshProcess). The writers it opens are
// closed when it returns.
func newStoreBench(b *testing.B, n int, brokers []string, pgURL string) *storeBench {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	sb := &storeBench{n: n, ks: newKafkaSetup(b, storePartitions, nil), ns: uuid.New(), schema: pgtest.Schema(b),
		pgURL: pgURL, brokers: brokers, dir: b.TempDir()}
	p := newBenchProcess(b)
	defer p.end()
	l := processLog(p, sb.ks)

	start := time.Now()
	saves := sb.writeEvents(b, ctx, l)
	sb.seedEvents = time.Since(start)
	sb.checkpoints = sb.eventsEnds(b, ctx, kafkatest.Client(p))
	last := make([]int64, storePartitions) // the last event of each partition
	for i, o := range sb.offsets {
		part := log.Partition(storeAggregate(sb.ns, i), storePartitions)
		last[part] = max(last[part], o)
	}
	for part, end := range sb.checkpoints {
		if end != last[part]+1 {
			b.Fatalf("events partition %d ends at %d, want %d: after its last event", part, end, last[part]+1)
		}
	}

	codec := sb.ks.codec(b)
	created := time.Now().UTC().Truncate(time.Microsecond) // as the codec and PostgreSQL keep it
	state := accountState(b, Account{Owner: "filler", Ops: 1})
	encode := func(i int) (snapshots.Snapshot, []byte, error) {
		id := storeAggregate(sb.ns, i)
		s := snapshots.Snapshot{AggregateID: id, AggregateType: "Account", Version: 1, SchemaVersion: 1, CreatedAt: created,
			Position: log.Position{Partition: log.Partition(id, storePartitions), Offset: sb.offsets[i]}, Save: saves[i], State: state}
		value, err := codec.Encode(s)
		return s, value, err
	}
	_, value, err := encode(0)
	if err != nil {
		b.Fatal(err)
	}
	sb.valueBytes = len(value)

	start = time.Now()
	sb.writeKafka(b, ctx, p, encode)
	sb.seedKafka = time.Since(start)
	start = time.Now()
	sb.writePostgres(b, ctx, p, encode)
	sb.seedPG = time.Since(start)
	start = time.Now()
	sb.writeTail(b, ctx, l)
	sb.seedTail = time.Since(start)
	sb.topicBytes = sb.topicSize(b, ctx, kafkatest.Client(p))
	b.Logf("aggregates=%d: setup: %d events in %v (Appends), Kafka snapshots and checkpoints %v, PostgreSQL rows and checkpoints %v, "+
		"tail of %d events %v; a snapshot is %d bytes; the table takes %.1f MB, the snapshot topic %.1f MB",
		n, n, sb.seedEvents.Round(time.Millisecond), sb.seedKafka.Round(time.Millisecond), sb.seedPG.Round(time.Millisecond),
		min(storeTailed, n), sb.seedTail.Round(time.Millisecond), sb.valueBytes, float64(sb.pgBytes)/1e6, float64(sb.topicBytes)/1e6)
	return sb
}

// parallel calls fn for 0 to n-1 from workers goroutines, and returns the
// first error; the context of the calls ends with it.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = fmt.Errorf("%d of %d: %w", i, n, err); cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// writeEvents creates the aggregates, one Opened event each, and returns
// their saves; it records their offsets.
func (sb *storeBench) writeEvents(b *testing.B, ctx context.Context, l *log.Kafka) []uuid.UUID {
	payload, err := json.Marshal(Opened{Owner: "filler"})
	if err != nil {
		b.Fatal(err)
	}
	sb.offsets = make([]int64, sb.n)
	saves := make([]uuid.UUID, sb.n)
	err = parallel(ctx, sb.n, storeWriters, func(ctx context.Context, i int) error {
		id := storeAggregate(sb.ns, i)
		out, err := l.Append(ctx, "Account", id, log.Expected{}, []log.Event{{ID: uuid.New(), Type: "Opened", AggregateType: "Account",
			AggregateID: id, AggregateVersion: 1, OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: payload}})
		if err != nil {
			return err
		}
		sb.offsets[i], saves[i] = out[0].Position.Offset, out[0].Save
		return nil
	})
	if err != nil {
		b.Fatalf("create the aggregates: %v", err)
	}
	return saves
}

// eventsEnds returns the end offset of every events partition.
func (sb *storeBench) eventsEnds(b *testing.B, ctx context.Context, cl *kgo.Client) []int64 {
	topic := sb.ks.events + "Account"
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]int64, storePartitions)
	for p := range out {
		o, ok := ends.Lookup(topic, int32(p))
		if !ok || o.Err != nil {
			b.Fatalf("end offset of %s/%d: %v", topic, p, o.Err)
		}
		out[p] = o.Offset
	}
	return out
}

// writeKafka produces every snapshot to the Kafka store's topic (created
// compacted by the store) as the store writes them, then writes each
// partition's checkpoint as the snapshotter.
func (sb *storeBench) writeKafka(b *testing.B, ctx context.Context, p *benchProcess, encode func(int) (snapshots.Snapshot, []byte, error)) {
	owner := sb.ks.store(p, snapshots.WithOwner("snapshotter"))
	if err := owner.EnsureTopic(ctx, "Account"); err != nil {
		b.Fatal(err)
	}
	// A produce to the new topic that meets a partition without its leader
	// yet asks for metadata again after MetadataMinAge (5s by default).
	raw := kafkatest.Client(p, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(100_000),
		kgo.MetadataMinAge(100*time.Millisecond))
	var mu sync.Mutex
	var produceErr error
	for i := range sb.n {
		s, value, err := encode(i)
		if err != nil {
			b.Fatal(err)
		}
		rec := &kgo.Record{Topic: sb.ks.snaps + "Account", Partition: s.Position.Partition, Key: log.Key(s.AggregateID), Value: value}
		raw.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				produceErr = errors.Join(produceErr, err)
				mu.Unlock()
			}
		})
	}
	if err := raw.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if produceErr != nil {
		b.Fatalf("produce the snapshots: %v", produceErr)
	}
	for part, offset := range sb.checkpoints {
		if err := owner.PutCheckpoint(ctx, "Account", snapshots.Checkpoint{EventsPartition: int32(part), Offset: offset}); err != nil {
			b.Fatal(err)
		}
	}
}

// writePostgres migrates the Postgres store's schema, copies every
// snapshot into its table, with the columns Put writes, vacuums the table
// and writes each partition's checkpoint as the snapshotter.
func (sb *storeBench) writePostgres(b *testing.B, ctx context.Context, p *benchProcess, encode func(int) (snapshots.Snapshot, []byte, error)) {
	pool := pgtest.Pool(p)
	owner, err := snapshots.NewPostgres(nil, pool, snapshots.WithPostgresSchema(sb.schema),
		snapshots.WithPostgresPartitions("Account", storePartitions), snapshots.WithPostgresOwner("snapshotter"))
	if err != nil {
		b.Fatal(err)
	}
	if err := owner.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	table := pgx.Identifier{sb.schema, "snapshots"}
	columns := []string{"aggregate_type", "aggregate_id", "version", "schema_version", "created_at", "log_partition", "log_offset", "save", "snapshot"}
	copied, err := pool.CopyFrom(ctx, table, columns, pgx.CopyFromSlice(sb.n, func(i int) ([]any, error) {
		s, value, err := encode(i)
		if err != nil {
			return nil, err
		}
		return []any{s.AggregateType, s.AggregateID, s.Version, int32(s.SchemaVersion), s.CreatedAt,
			s.Position.Partition, s.Position.Offset, s.Save, value}, nil
	}))
	if err != nil || copied != int64(sb.n) {
		b.Fatalf("copy the snapshots into %s: %d rows, %v", table.Sanitize(), copied, err)
	}
	// As autovacuum would leave the table, and not while a process measures.
	if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+table.Sanitize()); err != nil {
		b.Fatal(err)
	}
	for part, offset := range sb.checkpoints {
		if err := owner.PutCheckpoint(ctx, "Account", snapshots.Checkpoint{EventsPartition: int32(part), Offset: offset}); err != nil {
			b.Fatal(err)
		}
	}
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass)`, table.Sanitize()).Scan(&sb.pgBytes); err != nil {
		b.Fatal(err)
	}
}

// writeTail appends a deposit to each of the first storeTailed aggregates,
// after the checkpoints.
func (sb *storeBench) writeTail(b *testing.B, ctx context.Context, l *log.Kafka) {
	payload, err := json.Marshal(Deposited{Amount: 1})
	if err != nil {
		b.Fatal(err)
	}
	err = parallel(ctx, min(storeTailed, sb.n), 16, func(ctx context.Context, i int) error {
		id := storeAggregate(sb.ns, i)
		_, err := l.Append(ctx, "Account", id, log.Expected{Version: 1, ReadTo: sb.checkpoints[log.Partition(id, storePartitions)]},
			[]log.Event{{ID: uuid.New(), Type: "Deposited", AggregateType: "Account", AggregateID: id, AggregateVersion: 2,
				OccurredAt: time.Now().UTC(), ContentType: "application/json", Payload: payload}})
		return err
	})
	if err != nil {
		b.Fatalf("write the tail: %v", err)
	}
}

// topicSize returns the size of the snapshot topic on the brokers.
func (sb *storeBench) topicSize(b *testing.B, ctx context.Context, cl *kgo.Client) int64 {
	var set kadm.TopicsSet
	for p := range int32(storePartitions) {
		set.Add(sb.ks.snaps+"Account", p)
	}
	dirs, err := kadm.NewClient(cl).DescribeAllLogDirs(ctx, set)
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, d := range dirs {
		size += d.Size()
	}
	return size
}

// drop deletes the size's topics and schema now, so that the servers do
// not carry them through the larger sizes (the cleanups at the end of the
// benchmark then find them gone).
func (sb *storeBench) drop(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resps, err := kafkatest.Admin(b).DeleteTopics(ctx, sb.ks.events+"Account", sb.ks.snaps+"Account")
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		b.Logf("delete topics of aggregates=%d: %v", sb.n, err)
	}
	conn, err := pgx.Connect(ctx, sb.pgURL)
	if err == nil {
		_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{sb.schema}.Sanitize()+" CASCADE")
		conn.Close(ctx)
	}
	if err != nil {
		b.Logf("drop schema of aggregates=%d: %v", sb.n, err)
	}
}

// writeSample draws the aggregates of one round of processes and
// returns the path of the file that lists them.
func (sb *storeBench) writeSample(b *testing.B, rng *rand.Rand, round int) string {
	pick := func() freshTarget {
		i := rng.IntN(sb.n)
		return freshTarget{Index: i, Offset: sb.offsets[i]}
	}
	partition := func(t freshTarget) int32 { return log.Partition(storeAggregate(sb.ns, t.Index), storePartitions) }
	s := freshSample{First: pick()}
	seen := map[int32]bool{partition(s.First): true}
	for len(seen) < storePartitions {
		if t := pick(); !seen[partition(t)] {
			seen[partition(t)] = true
			s.Warm = append(s.Warm, t)
		}
	}
	for range storeLoads {
		s.Loads = append(s.Loads, pick())
	}
	raw, err := json.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(sb.dir, fmt.Sprintf("sample-%d.json", round))
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// fresh runs one fresh process on the sample and returns what it
// measured.
func (sb *storeBench) fresh(b *testing.B, store freshStore, sample string) freshResult {
	cfg := freshConfig{Store: store, Brokers: sb.brokers, EventsPrefix: sb.ks.events, SnapsPrefix: sb.ks.snaps,
		Namespace: sb.ns, Tailed: min(storeTailed, sb.n), Checkpoints: sb.checkpoints, Sample: sample}
	if store == viaPostgres {
		cfg.PostgresURL, cfg.PostgresSchema = sb.pgURL, sb.schema
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cfg.Started = time.Now()
	raw, err := json.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Env = append(os.Environ(), envStoreChild+"="+string(raw))
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s process: %v\n%s", store, err, stderr.Bytes())
	}
	for line := range strings.Lines(stdout.String()) {
		if v, ok := strings.CutPrefix(line, freshResultPrefix); ok {
			var res freshResult
			if err := json.Unmarshal([]byte(v), &res); err != nil {
				b.Fatalf("%s process: result %q: %v", store, v, err)
			}
			return res
		}
	}
	b.Fatalf("%s process printed no result:\n%s\n%s", store, stdout.Bytes(), stderr.Bytes())
	return freshResult{}
}

// run starts storeRounds rounds of fresh processes per iteration and
// reports the medians of what they measured.
func (sb *storeBench) run(b *testing.B) {
	rng := rand.New(rand.NewPCG(uint64(sb.n), 0))
	results := map[freshStore][]freshResult{}
	stores := []freshStore{viaLog, viaPostgres, viaKafka}
	b.ResetTimer()
	for i := range b.N * storeRounds {
		sample := sb.writeSample(b, rng, i)
		for _, s := range stores {
			results[s] = append(results[s], sb.fresh(b, s, sample))
		}
	}
	b.StopTimer()
	for _, s := range stores {
		firsts := make([]string, len(results[s]))
		for i, r := range results[s] {
			firsts[i] = strconv.FormatFloat(r.FirstMS, 'f', 1, 64)
			if s != viaLog {
				firsts[i] += " (" + strconv.FormatFloat(r.StoreMS, 'f', 1, 64) + ")"
			}
		}
		b.Logf("aggregates=%d: first loads of the %s processes (ms): %s", sb.n, s, strings.Join(firsts, " "))
	}
	med := func(s freshStore, f func(freshResult) float64) float64 {
		v := make([]float64, len(results[s]))
		for i, r := range results[s] {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	mb := func(n uint64) float64 { return float64(n) / 1e6 }
	for _, s := range []freshStore{viaPostgres, viaKafka} {
		for _, m := range []struct {
			unit string
			f    func(freshResult) float64
		}{
			{"first_load_ms", func(r freshResult) float64 { return r.FirstMS }},
			{"first_store_ms", func(r freshResult) float64 { return r.StoreMS }},
			{"start_ms", func(r freshResult) float64 { return r.StartMS }},
			{"rss_MB", func(r freshResult) float64 { return mb(r.First.RSS) }},
			{"hwm_MB", func(r freshResult) float64 { return mb(r.First.HWM) }},
			{"heap_MB", func(r freshResult) float64 { return mb(r.First.HeapInuse) }},
			{"sys_MB", func(r freshResult) float64 { return mb(r.First.Sys) }},
			{"warm_ms", func(r freshResult) float64 { return r.WarmMS }},
			{"p50_us", func(r freshResult) float64 { return r.P50US }},
			{"p99_us", func(r freshResult) float64 { return r.P99US }},
			{"rss_after_MB", func(r freshResult) float64 { return mb(r.After.RSS) }},
			{"hwm_after_MB", func(r freshResult) float64 { return mb(r.After.HWM) }},
		} {
			b.ReportMetric(med(s, m.f), string(s)+"-"+m.unit)
		}
	}
	b.ReportMetric(med(viaPostgres, func(r freshResult) float64 { return r.ConnectMS }), "pg-connect_ms")
	b.ReportMetric(med(viaLog, func(r freshResult) float64 { return r.FirstMS }), "log-first_ms")
	b.ReportMetric(med(viaLog, func(r freshResult) float64 { return r.StartMS }), "log-start_ms")
	b.ReportMetric(med(viaLog, func(r freshResult) float64 { return mb(r.First.RSS) }), "log-rss_MB")
	b.ReportMetric(med(viaLog, func(r freshResult) float64 { return r.P50US }), "log-p50_us")
	b.ReportMetric(med(viaLog, func(r freshResult) float64 { return r.P99US }), "log-p99_us")
	b.ReportMetric(med(viaKafka, func(r freshResult) float64 { return float64(r.ViewAggregates) }), "kafka-view_aggregates")
	b.ReportMetric(med(viaKafka, func(r freshResult) float64 { return float64(r.ViewCachedBytes) / 1e6 }), "kafka-cached_MB")
	b.ReportMetric(med(viaKafka, func(r freshResult) float64 { return float64(r.ViewCachedAfter) / 1e6 }), "kafka-cached_after_MB")

	ratio := func(f func(freshResult) float64) float64 { return med(viaKafka, f) / med(viaPostgres, f) }
	b.ReportMetric(ratio(func(r freshResult) float64 { return r.FirstMS }), "kafka/pg-first_load")
	b.ReportMetric(ratio(func(r freshResult) float64 { return float64(r.First.RSS) }), "kafka/pg-rss")
	b.ReportMetric(ratio(func(r freshResult) float64 { return r.P50US }), "kafka/pg-p50")
	b.ReportMetric(ratio(func(r freshResult) float64 { return r.P99US }), "kafka/pg-p99")

	b.ReportMetric(sb.seedEvents.Seconds(), "seed_events_s")
	b.ReportMetric(sb.seedKafka.Seconds(), "seed_kafka_s")
	b.ReportMetric(sb.seedPG.Seconds(), "seed_pg_s")
	b.ReportMetric(sb.seedTail.Seconds(), "seed_tail_s")
	b.ReportMetric(float64(sb.pgBytes)/1e6, "pg-table_MB")
	b.ReportMetric(float64(sb.topicBytes)/1e6, "kafka-topic_MB")
	b.ReportMetric(0, "ns/op")
}
