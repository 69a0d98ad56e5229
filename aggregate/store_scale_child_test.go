package aggregate_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// envStoreChild, when set, makes the test binary a fresh process of
// BenchmarkStoreFreshProcess (see TestMain); its value is the process's
// freshConfig as JSON.
const envStoreChild = "SNAPLOG_TEST_STORE_CHILD"

// freshResultPrefix starts the line of stdout on which a fresh process
// reports its freshResult as JSON.
const freshResultPrefix = "snaplog-store-bench "

// freshStore is what a fresh process loads through.
type freshStore string

const (
	// viaPostgres: a repository on the events log with a
	// snapshots.Postgres store.
	viaPostgres freshStore = "pg"
	// viaKafka: a repository on the events log with a snapshots.Kafka
	// store.
	viaKafka freshStore = "kafka"
	// viaLog: no repository and no store, only the log's part of such a
	// load: the read of the partition's tail from its checkpoint, made
	// together with the point read of the snapshot's last event, as a
	// repository makes them.
	viaLog freshStore = "log"
)

// freshConfig is what BenchmarkStoreFreshProcess tells a fresh process.
type freshConfig struct {
	Store          freshStore `json:"store"`
	Brokers        []string   `json:"brokers"`
	PostgresURL    string     `json:"postgres_url,omitempty"`
	PostgresSchema string     `json:"postgres_schema,omitempty"`
	EventsPrefix   string     `json:"events_prefix"`
	SnapsPrefix    string     `json:"snapshots_prefix"`
	// Namespace derives the aggregates' ids (storeAggregate).
	Namespace uuid.UUID `json:"namespace"`
	// Tailed is how many aggregates, the first ones, have an event after
	// their partition's checkpoint (version 2); the others are at version
	// 1.
	Tailed int `json:"tailed"`
	// Checkpoints holds the checkpoint offset of each events partition.
	Checkpoints []int64 `json:"checkpoints"`
	// Sample is the path of the freshSample the process loads.
	Sample string `json:"sample"`
	// Started is when the parent started the process, by the wall clock
	// the two processes share.
	Started time.Time `json:"started"`
}

// freshTarget is one aggregate to load: its index (storeAggregate) and the
// offset of its snapshot's last event.
type freshTarget struct {
	Index  int   `json:"i"`
	Offset int64 `json:"o"`
}

// freshSample is what a fresh process loads: First in the first load, Warm
// then (one aggregate of every other partition), then Loads one after
// another, timed one by one.
type freshSample struct {
	First freshTarget   `json:"first"`
	Warm  []freshTarget `json:"warm"`
	Loads []freshTarget `json:"loads"`
}

// freshMemory is a process's memory at one moment: VmRSS and VmHWM of
// /proc/self/status, then, after a garbage collection, the Go heap in use
// and the memory the Go runtime holds from the system.
type freshMemory struct {
	RSS       uint64 `json:"rss"`
	HWM       uint64 `json:"hwm"`
	HeapInuse uint64 `json:"heap_inuse"`
	Sys       uint64 `json:"sys"`
}

// freshResult is what a fresh process measured.
type freshResult struct {
	// StartMS is the time from the parent's start of the process to the
	// end of the first load; FirstMS the time from the construction of
	// the process's clients, pool, log, store and repository to the end
	// of the first load.
	StartMS float64 `json:"start_ms"`
	FirstMS float64 `json:"first_ms"`
	// StoreMS is the part of the first load spent in the store's
	// CheckpointOf and Get, pool and clients included; the rest is the
	// log's reads and the repository's work.
	StoreMS float64 `json:"store_ms"`
	// ConnectMS is the part of StoreMS in which a Postgres store's pool
	// made its first connection (TCP, startup and authentication).
	ConnectMS float64 `json:"connect_ms,omitempty"`
	// First is the memory after the first load.
	First freshMemory `json:"first"`
	// WarmMS is the time the loads of Warm took, together.
	WarmMS float64 `json:"warm_ms"`
	// P50US and P99US are the latencies of the Loads (nearest rank).
	P50US float64 `json:"p50_us"`
	P99US float64 `json:"p99_us"`
	// After is the memory after the Loads.
	After freshMemory `json:"after"`
	// ViewAggregates and ViewCachedBytes describe a Kafka store's view
	// after the first load (snapshots.KafkaStats), ViewCachedAfter its
	// cached values after the Loads.
	ViewAggregates  int   `json:"view_aggregates,omitempty"`
	ViewCachedBytes int64 `json:"view_cached_bytes,omitempty"`
	ViewCachedAfter int64 `json:"view_cached_after,omitempty"`
}

// storeAggregate returns the id of aggregate i of a benchmark's namespace:
// parent and fresh processes derive the same ids, so a fresh process holds
// none of them beyond those it loads.
func storeAggregate(ns uuid.UUID, i int) uuid.UUID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return uuid.NewSHA1(ns, b[:])
}

// runStoreChild is a fresh process: it measures the configuration in raw
// and prints its freshResult on stdout, after freshResultPrefix.
func runStoreChild(raw string) int {
	var cfg freshConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "store child: %s: %v\n", envStoreChild, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := cfg.measure(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "store child (%s): %v\n", cfg.Store, err)
		return 1
	}
	out, err := json.Marshal(res)
	if err != nil {
		fmt.Fprintf(os.Stderr, "store child (%s): %v\n", cfg.Store, err)
		return 1
	}
	fmt.Printf("%s%s\n", freshResultPrefix, out)
	return 0
}

// freshLoader is one load of a fresh process.
type freshLoader func(ctx context.Context, t freshTarget) error

// measure builds the process's clients, log, store and repository (their
// constructors do no I/O), loads the sample and measures it.
func (cfg *freshConfig) measure(ctx context.Context) (freshResult, error) {
	sample, err := readSample(cfg.Sample)
	if err != nil {
		return freshResult{}, err
	}
	start := time.Now()
	load, store, closeAll, err := cfg.open(ctx)
	if err != nil {
		return freshResult{}, err
	}
	defer closeAll()
	var res freshResult
	if err := load(ctx, sample.First); err != nil {
		return freshResult{}, fmt.Errorf("first load: %w", err)
	}
	res.FirstMS = millis(time.Since(start))
	res.StartMS = millis(time.Since(cfg.Started))
	if store != nil {
		res.StoreMS = millis(store.spent)
		res.ConnectMS = millis(time.Duration(store.connect.Load()))
	}
	res.First = memoryNow()
	if k, ok := store.inner().(*snapshots.Kafka); ok {
		st := k.Stats()
		res.ViewAggregates, res.ViewCachedBytes = st.Aggregates, st.CachedBytes
	}

	warm := time.Now()
	for _, t := range sample.Warm {
		if err := load(ctx, t); err != nil {
			return freshResult{}, fmt.Errorf("warm-up load: %w", err)
		}
	}
	res.WarmMS = millis(time.Since(warm))
	took := make([]time.Duration, len(sample.Loads))
	for i, t := range sample.Loads {
		s := time.Now()
		if err := load(ctx, t); err != nil {
			return freshResult{}, fmt.Errorf("load %d: %w", i, err)
		}
		took[i] = time.Since(s)
	}
	slices.Sort(took)
	res.P50US, res.P99US = micros(nearestRank(took, 0.50)), micros(nearestRank(took, 0.99))
	res.After = memoryNow()
	if k, ok := store.inner().(*snapshots.Kafka); ok {
		res.ViewCachedAfter = k.Stats().CachedBytes
	}
	return res, nil
}

// open returns the process's load: through a repository with the
// configured store, timed, or the log's reads alone (viaLog, and a nil
// store).
func (cfg *freshConfig) open(ctx context.Context) (freshLoader, *timedStore, func(), error) {
	seeds := kgo.SeedBrokers(cfg.Brokers...)
	l, err := log.NewKafka(log.KafkaClient(seeds), log.WithTopicPrefix(cfg.EventsPrefix))
	if err != nil {
		return nil, nil, nil, err
	}
	closers := []func(){func() { l.Close() }}
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	var store timedStore
	switch cfg.Store {
	case viaLog:
		return cfg.logLoader(l), nil, closeAll, nil
	case viaPostgres:
		pcfg, err := pgxpool.ParseConfig(cfg.PostgresURL)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		// The first connection, from its start to its end: the process
		// makes one at a time.
		opened := time.Now()
		var dialed atomic.Int64 // since opened
		pcfg.BeforeConnect = func(context.Context, *pgx.ConnConfig) error {
			dialed.CompareAndSwap(0, int64(time.Since(opened)))
			return nil
		}
		pcfg.AfterConnect = func(context.Context, *pgx.Conn) error {
			store.connect.CompareAndSwap(0, int64(time.Since(opened))-dialed.Load())
			return nil
		}
		pool, err := pgxpool.NewWithConfig(ctx, pcfg)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		closers = append(closers, pool.Close)
		pg, err := snapshots.NewPostgres(nil, pool, snapshots.WithPostgresSchema(cfg.PostgresSchema),
			snapshots.WithPostgresPartitions("Account", int32(len(cfg.Checkpoints))))
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		store.checkpointStore = pg
	case viaKafka:
		k, err := snapshots.NewKafka(nil, snapshots.KafkaClient(seeds),
			snapshots.WithTopicPrefix(cfg.SnapsPrefix), snapshots.WithEventsTopicPrefix(cfg.EventsPrefix))
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		closers = append(closers, func() { k.Close() })
		store.checkpointStore = k
	default:
		closeAll()
		return nil, nil, nil, fmt.Errorf("unknown store %q", cfg.Store)
	}
	var t testing.T // accountType only reports registry errors, which do not happen
	repo, err := aggregate.NewRepository(l, accountType(&t, 1),
		aggregate.WithSnapshotStore(&store), aggregate.WithSnapshotMode(aggregate.SnapshotManual))
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	closers = append(closers, func() { repo.Close() })
	return cfg.repoLoader(repo), &store, closeAll, nil
}

// checkpointStore is what the repository of a fresh process uses of its
// store: both stores are all three.
type checkpointStore interface {
	snapshots.Store
	snapshots.CheckpointReader
	snapshots.SchemaRegistrar
}

// timedStore is a store that adds up the time spent in its Gets and
// CheckpointOfs. It is not safe for concurrent use: a fresh process loads
// one aggregate at a time, and its repository calls CheckpointOf, then
// Get.
type timedStore struct {
	checkpointStore
	spent   time.Duration
	connect atomic.Int64 // the first connection of a Postgres store's pool, in nanoseconds
}

func (s *timedStore) Get(ctx context.Context, aggregateType string, id uuid.UUID) (snapshots.Snapshot, error) {
	defer s.time(time.Now())
	return s.checkpointStore.Get(ctx, aggregateType, id)
}

func (s *timedStore) CheckpointOf(ctx context.Context, aggregateType string, id uuid.UUID) (snapshots.Checkpoint, error) {
	defer s.time(time.Now())
	return s.checkpointStore.CheckpointOf(ctx, aggregateType, id)
}

func (s *timedStore) time(start time.Time) { s.spent += time.Since(start) }

// inner returns the store s times, or nil.
func (s *timedStore) inner() checkpointStore {
	if s == nil {
		return nil
	}
	return s.checkpointStore
}

// version is the version aggregate i is at.
func (cfg *freshConfig) version(i int) int64 {
	if i < cfg.Tailed {
		return 2
	}
	return 1
}

// repoLoader loads through repo, and checks that the load used the
// aggregate's snapshot and reached its version.
func (cfg *freshConfig) repoLoader(repo *aggregate.Repository[Account]) freshLoader {
	return func(ctx context.Context, t freshTarget) error {
		id := storeAggregate(cfg.Namespace, t.Index)
		before := repo.Stats().LoadsFromSnapshot
		a, err := repo.Load(ctx, id)
		if err != nil {
			return err
		}
		if want := cfg.version(t.Index); a.Version() != want || a.State().Owner != "filler" {
			return fmt.Errorf("loaded %s at version %d with state %+v, want version %d of filler's account", id, a.Version(), a.State(), want)
		}
		if repo.Stats().LoadsFromSnapshot != before+1 {
			return fmt.Errorf("the load of %s did not use its snapshot (stats %+v)", id, repo.Stats())
		}
		return nil
	}
}

// logLoader makes the log's reads of a load under a checkpoint past the
// snapshot: the point read of the snapshot's last event (EventAt) while
// the partition is read from the checkpoint on.
func (cfg *freshConfig) logLoader(l *log.Kafka) freshLoader {
	n := int32(len(cfg.Checkpoints))
	return func(ctx context.Context, t freshTarget) error {
		id := storeAggregate(cfg.Namespace, t.Index)
		p := log.Partition(id, n)
		at := make(chan error, 1)
		go func() {
			e, err := l.EventAt(ctx, "Account", id, t.Offset)
			if err == nil && (e.AggregateID != id || e.AggregateVersion != 1) {
				err = fmt.Errorf("the event at %d is version %d of %s", t.Offset, e.AggregateVersion, e.AggregateID)
			}
			at <- err
		}()
		tail, err := l.Read(ctx, "Account", id, cfg.Checkpoints[p])
		err = errors.Join(err, <-at)
		if err != nil {
			return err
		}
		if want := cfg.version(t.Index) - 1; tail.Partition != p || int64(len(tail.Events)) != want {
			return fmt.Errorf("the tail of %s after %d@%d holds %d events of partition %d, want %d of partition %d",
				id, p, cfg.Checkpoints[p], len(tail.Events), tail.Partition, want, p)
		}
		return nil
	}
}

func readSample(path string) (freshSample, error) {
	var s freshSample
	b, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err == nil && len(s.Loads) == 0 {
		err = errors.New("no loads")
	}
	if err != nil {
		return freshSample{}, fmt.Errorf("sample %s: %w", path, err)
	}
	return s, nil
}

// memoryNow reads the process's memory; see freshMemory.
func memoryNow() freshMemory {
	var m freshMemory
	m.RSS, m.HWM = procStatus("VmRSS"), procStatus("VmHWM")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.HeapInuse, m.Sys = ms.HeapInuse, ms.Sys
	return m
}

// procStatus returns a field of /proc/self/status given in kB, in bytes,
// or 0 where there is none (not Linux).
func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// nearestRank returns the q-quantile of sorted durations by the nearest
// rank method.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(float64(len(sorted))*q)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func millis(d time.Duration) float64 { return float64(d) / 1e6 }
func micros(d time.Duration) float64 { return float64(d) / 1e3 }
