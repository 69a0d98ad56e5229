package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/internal/securetest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

func testTypes(t testing.TB) []snapshotter.Type {
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	return []snapshotter.Type{snapshotter.Register(typ)}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// kafkaEnv is one test's topics, group and repository of orders.
type kafkaEnv struct {
	brokers        []string
	events, snaps  string // topic prefixes
	group          string
	log            *log.Kafka
	repo           *aggregate.Repository[order.OrderState]
	partitionCount int32
}

func newKafkaEnv(t *testing.T, partitions int32) *kafkaEnv {
	brokers := kafkatest.Brokers(t)
	run := uuid.NewString()[:8]
	e := &kafkaEnv{brokers: brokers, events: "sc." + run + ".events.", snaps: "sc." + run + ".snapshots.",
		group: "sc-" + run, partitionCount: partitions}
	l, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(brokers...)), log.WithTopicPrefix(e.events),
		log.WithTopicPartitions(partitions), log.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	kafkatest.DeleteTopicsOnCleanup(t, e.events+order.TypeName, e.snaps+order.TypeName)
	adm := kafkatest.Admin(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteGroup(ctx, e.group)
	})
	if err := l.EnsureTopic(ctxT(t, time.Minute), order.TypeName); err != nil {
		t.Fatal(err)
	}
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := aggregate.NewRepository(l, typ)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	e.log, e.repo = l, repo
	return e
}

// environ is the sidecar's environment for the test's topics and group.
func (e *kafkaEnv) environ(extra ...string) func(string) string {
	env := map[string]string{
		"SNAPLOG_BROKERS":             strings.Join(e.brokers, ","),
		"SNAPLOG_GROUP":               e.group,
		"SNAPLOG_EVENTS_PREFIX":       e.events,
		"SNAPLOG_SNAPSHOTS_PREFIX":    e.snaps,
		"SNAPLOG_REPLICATION":         "1",
		"SNAPLOG_CHECKPOINT_INTERVAL": "300ms",
		"SNAPLOG_HTTP_ADDR":           "127.0.0.1:0",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return getenv(env)
}

type item struct {
	name     string
	quantity int
	price    float64
}

// writeOrder saves a created order with the given items through the
// repository, in one save, and returns it.
func (e *kafkaEnv) writeOrder(t testing.TB, items ...item) order.Order {
	t.Helper()
	o := order.Order{Root: e.repo.New(uuid.New())}
	if err := o.Create(uuid.New(), "customer@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if err := o.AddItem(uuid.New(), it.name, it.quantity, it.price); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.repo.Save(ctxT(t, time.Minute), o.Root); err != nil {
		t.Fatal(err)
	}
	return o
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sidecar is run() running the sidecar in the background.
type sidecar struct {
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

func startSidecar(t *testing.T, getenv func(string) string) *sidecar {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sidecar{stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { s.done <- run(ctx, nil, getenv, io.Discard, s.stderr, testTypes(t)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(time.Minute):
			t.Error("the sidecar did not stop within a minute")
		}
	})
	return s
}

// stop stops the sidecar as SIGTERM does and returns its exit code.
func (s *sidecar) stop(t *testing.T) int {
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(time.Minute):
		t.Fatalf("the sidecar did not stop within a minute; stderr:\n%s", s.stderr)
	}
	return -1
}

// logLines returns the sidecar's JSON log lines.
func (s *sidecar) logLines() []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.stderr.String()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// url waits for the sidecar's HTTP server and returns its base URL.
func (s *sidecar) url(t *testing.T) string {
	var addr string
	waitFor(t, "the HTTP server", 30*time.Second, func() bool {
		for _, l := range s.logLines() {
			if l["msg"] == "HTTP server listening" {
				addr, _ = l["addr"].(string)
			}
		}
		return addr != ""
	})
	return "http://" + addr
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestSidecar runs the sidecar on the broker: /readyz turns 200, /healthz
// answers 200, /metrics has every metric, and stopping it exits 0 after
// writing the final checkpoints.
func TestSidecar(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t, 2)
	for range 3 {
		e.writeOrder(t, item{"Widget", 1, 9.99})
	}
	s := startSidecar(t, e.environ("SNAPLOG_SESSION_TIMEOUT", "10s", "SNAPLOG_REBALANCE_TIMEOUT", "20s"))
	base := s.url(t)
	waitFor(t, "/readyz 200", 60*time.Second, func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusOK
	})
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	names := []string{
		`snaplog_snapshotter_lag_records{partition="0",topic="` + e.events + `Order"}`,
		`snaplog_snapshotter_checkpoint_age_seconds{partition="1",topic="` + e.events + `Order"}`,
		"snaplog_snapshotter_checkpoint_offset{",
		"snaplog_snapshotter_records_after_checkpoint{",
		"snaplog_snapshotter_restore_seconds{",
		"snaplog_snapshotter_dirty_states{",
		"snaplog_snapshotter_unsnapshotted_aggregates{",
		"snaplog_snapshotter_states ",
		"snaplog_snapshotter_assigned_partitions 2",
		"snaplog_snapshotter_ready 1",
		"snaplog_snapshotter_events_applied_total 6",
		"snaplog_snapshotter_replays_total 0",
		`snaplog_snapshotter_snapshots_written_total{aggregate_type="Order"} 3`,
		`snaplog_snapshotter_checkpoints_written_total{topic="` + e.events + `Order"}`,
		`snaplog_snapshotter_apply_failures_total{topic="` + e.events + `Order"} 0`,
		"snaplog_snapshotter_transactions_aborted_total 0",
		`snaplog_snapshotter_build_info{goversion="go`,
		"go_goroutines ",
		"go_memstats_heap_alloc_bytes ",
		"process_resident_memory_bytes ",
	}
	var metrics string
	var missing []string
	waitFor(t, "every metric", 30*time.Second, func() bool {
		code, body := get(t, base+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		metrics, missing = body, nil
		for _, n := range names {
			if !strings.Contains(body, n) {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0
	})
	if t.Failed() {
		t.Fatalf("missing %q in\n%s", missing, metrics)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, s.stderr)
	}
	final := map[float64]bool{}
	var stopped bool
	for _, l := range s.logLines() {
		if l["msg"] == "final checkpoint" {
			final[l["partition"].(float64)] = true
		}
		stopped = stopped || l["msg"] == "stopped"
	}
	if len(final) != 2 || !stopped {
		t.Fatalf("final checkpoints of partitions %v, stopped %v; stderr:\n%s", final, stopped, s.stderr)
	}
}

// TestInspect snapshots an order with a short sidecar run, then inspect
// prints it; an aggregate without a snapshot exits 1. While the sidecar
// runs, rebuild refuses to start.
func TestInspect(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t, 1)
	o := e.writeOrder(t, item{"Premium Widget", 2, 99.99}, item{"Basic Widget", 5, 19.99}, item{"Gadget", 1, 5})
	e.writeOrder(t, item{"Other", 1, 1})

	s := startSidecar(t, e.environ())
	base := s.url(t)
	waitFor(t, "/readyz 200", 60*time.Second, func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusOK
	})
	// Ready means restored, not caught up: wait for both orders' snapshots.
	waitFor(t, "2 snapshots written", 60*time.Second, func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, `snaplog_snapshotter_snapshots_written_total{aggregate_type="Order"} 2`)
	})
	var stderr strings.Builder
	if code := run(ctxT(t, time.Minute), []string{"rebuild", "-type", "Order"}, e.environ(), io.Discard, &stderr, testTypes(t)); code != exitError ||
		!strings.Contains(stderr.String(), "stop the sidecars of the group before rebuilding") {
		t.Fatalf("rebuild while the sidecar runs: exit %d, stderr:\n%s", code, stderr.String())
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, s.stderr)
	}

	var stdout strings.Builder
	stderr.Reset()
	code := run(ctxT(t, time.Minute), []string{"inspect", "-type", "Order", "-id", o.ID().String()}, e.environ(), &stdout, &stderr, testTypes(t))
	if code != exitOK {
		t.Fatalf("inspect: exit %d, stderr:\n%s", code, stderr.String())
	}
	st := o.State()
	want := []string{
		"Snapshot Details:",
		"  Aggregate ID: " + o.ID().String(),
		"  Aggregate Type: Order",
		"  Version: 4",
		"  Schema Version: 1",
		"  Created At: *",
		"",
		"Snapshot State:",
		"  order_id: " + o.ID().String(),
		"  customer_id: " + st.CustomerID.String(),
		"  customer_email: customer@example.com",
		"  items: [3 items]",
		"    [0]: {'product_id': '" + st.Items[0].ProductID.String() + "', 'product_name': 'Premium Widget', ...}",
		"    [1]: {'product_id': '" + st.Items[1].ProductID.String() + "', 'product_name': 'Basic Widget', ...}",
		"    ... and 1 more",
		"  status: created",
		"  total_amount: 0.0",
		"",
		"Log Position:",
		"  Topic: " + e.events + "Order",
		"  Partition: 0",
		"  Offset: 4", // the topic's placement record at 0, the order's 4 events, then a transaction marker
		"",
		"Partition Checkpoint:",
		"  Offset: 8", // after the other order's 2 events (6 and 7); its marker at 8 is never fetched
		"  Owner: " + e.group,
		"  Written At: *",
		"  Covers This Aggregate: True",
		"  Unsnapshotted Aggregates: 0",
	}
	got := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("inspect printed %d lines, want %d:\n%s", len(got), len(want), stdout.String())
	}
	created := regexp.MustCompile(`^  (Created|Written) At: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00$`)
	for i := range want {
		if ok := got[i] == want[i] || (strings.HasSuffix(want[i], "*") && created.MatchString(got[i])); !ok {
			t.Errorf("line %d: got %q, want %q", i+1, got[i], want[i])
		}
	}

	stdout.Reset()
	stderr.Reset()
	missing := uuid.New()
	code = run(ctxT(t, time.Minute), []string{"inspect", "-type", "Order", "-id", missing.String()}, e.environ(), &stdout, &stderr, testTypes(t))
	if wantErr := "snapshotter inspect: Order " + missing.String() + " has no snapshot in " + e.snaps + "Order"; code != exitError ||
		!strings.Contains(stderr.String(), wantErr) || stdout.Len() != 0 {
		t.Fatalf("inspect of an aggregate without snapshot: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout.String(), stderr.String(), wantErr)
	}
}

// TestRebuild rebuilds every snapshot of a small topic: it completes,
// prints its progress, and leaves a snapshot of every order and a
// checkpoint at the end of every partition.
func TestRebuild(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t, 2)
	var orders []order.Order
	for i := range 20 {
		items := make([]item, 1+i%3)
		for k := range items {
			items[k] = item{fmt.Sprintf("Product %d", k), 1 + k, 10}
		}
		orders = append(orders, e.writeOrder(t, items...))
	}
	ends, err := kafkatest.Admin(t).ListEndOffsets(ctxT(t, time.Minute), e.events+"Order")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })

	var stderr syncBuffer
	code := run(ctxT(t, 2*time.Minute), []string{"rebuild", "-type", "Order", "-log-level", "warn"}, e.environ(), io.Discard, &stderr, testTypes(t))
	if code != exitOK {
		t.Fatalf("rebuild: exit %d; stderr:\n%s", code, stderr.String())
	}
	out := stderr.String()
	if !strings.Contains(out, fmt.Sprintf("rebuild Order: 0/%d events (0.0%%), 0 events/s, ETA unknown\n", total)) ||
		!regexp.MustCompile(fmt.Sprintf(`rebuild Order: %d/%d events \(100\.0%%\), \d+ events/s, ETA 0s\n`, total, total)).MatchString(out) ||
		!strings.Contains(out, fmt.Sprintf("snapshotter rebuild: Order rebuilt from %d events in ", total)) {
		t.Fatalf("rebuild's progress lines are not there:\n%s", out)
	}

	codec, err := codecOf(testTypes(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	store, err := snapshots.NewKafka(codec, snapshots.KafkaClient(kgo.SeedBrokers(e.brokers...)),
		snapshots.WithTopicPrefix(e.snaps), snapshots.WithEventsTopicPrefix(e.events))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, o := range orders {
		snap, err := store.Get(ctxT(t, time.Minute), "Order", o.ID())
		if err != nil || snap.Version != o.Version() {
			t.Fatalf("%s v%d: snapshot %v, %v", o.ID(), o.Version(), snap, err)
		}
		cp, err := store.CheckpointOf(ctxT(t, time.Minute), "Order", o.ID())
		if err != nil {
			t.Fatal(err)
		}
		if end, _ := ends.Lookup(e.events+"Order", cp.EventsPartition); cp.Offset != end.Offset-1 || cp.Owner != e.group {
			// The last record of each partition is a transaction marker.
			t.Fatalf("checkpoint %+v, want offset %d owned by %s", cp, end.Offset-1, e.group)
		}
	}
}

// orderStore is a Kafka snapshot store of the test's topics, as owner when
// one is given.
func (e *kafkaEnv) orderStore(t *testing.T, opts ...snapshots.KafkaOption) *snapshots.Kafka {
	t.Helper()
	codec, err := codecOf(testTypes(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	store, err := snapshots.NewKafka(codec, append([]snapshots.KafkaOption{snapshots.KafkaClient(kgo.SeedBrokers(e.brokers...)),
		snapshots.WithTopicPrefix(e.snaps), snapshots.WithEventsTopicPrefix(e.events)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// TestPurge runs purge on a topic the sidecar owns: the dry run prints the
// counts per partition and deletes nothing; a purge under another -group
// is refused; the purge deletes exactly the snapshots below the schema
// version, and the running sidecar writes them again. With the sidecar
// stopped, purge refuses to delete.
func TestPurge(t *testing.T) {
	t.Parallel()
	e := newKafkaEnv(t, 2)
	var orders []order.Order
	for range 6 {
		orders = append(orders, e.writeOrder(t, item{"Widget", 1, 9.99}))
	}
	s := startSidecar(t, e.environ())
	watch := e.orderStore(t)
	waitFor(t, "the sidecar's 6 snapshots and 2 checkpoints", 60*time.Second, func() bool {
		counts, err := watch.CountTypeByPartition(ctxT(t, time.Minute), "Order", 0)
		n := 0
		for _, c := range counts {
			if c.Owner != e.group {
				return false
			}
			n += c.Snapshots
		}
		return err == nil && len(counts) == 2 && n == 6
	})

	// Two orders get snapshots of a later schema version, written as the
	// owner; the purge below schema version 7 keeps them.
	owner := e.orderStore(t, snapshots.WithOwner(e.group))
	kept := map[uuid.UUID]bool{}
	for _, o := range orders[:2] {
		snap, err := owner.Get(ctxT(t, time.Minute), "Order", o.ID())
		if err != nil {
			t.Fatal(err)
		}
		snap.SchemaVersion = 7
		if err := owner.Put(ctxT(t, time.Minute), snap); err != nil {
			t.Fatal(err)
		}
		kept[o.ID()] = true
	}
	per := [2]int{}
	for _, o := range orders[2:] {
		per[log.Partition(o.ID(), 2)]++
	}
	purgeRun := func(args ...string) (int, string, string) {
		var stdout, stderr strings.Builder
		code := run(ctxT(t, 2*time.Minute), append([]string{"purge", "-type", "Order"}, args...), e.environ(), &stdout, &stderr, testTypes(t))
		return code, stdout.String(), stderr.String()
	}
	left := func(want int) {
		t.Helper()
		if n, err := e.orderStore(t).CountType(ctxT(t, time.Minute), "Order", 0); err != nil || n != want {
			t.Fatalf("%d snapshots left (%v), want %d", n, err, want)
		}
	}

	code, stdout, stderr := purgeRun("-schema-below", "7", "-dry-run")
	wantDry := fmt.Sprintf("purge Order: snapshots of Order with schema version below 7 in %sOrder, dry run\n"+
		"  partition 0: %d snapshots (owner %s)\n  partition 1: %d snapshots (owner %s)\n"+
		"  total: 4 snapshots would be deleted; nothing was deleted\n", e.snaps, per[0], e.group, per[1], e.group)
	if code != exitOK || stdout != wantDry || stderr != "" {
		t.Fatalf("dry run: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, stdout, wantDry, stderr)
	}
	left(6)

	code, stdout, stderr = purgeRun("-schema-below", "7", "-group", "another-group")
	if code != exitError || !strings.Contains(stderr, fmt.Sprintf("owned by snapshotter %q", e.group)) ||
		!strings.Contains(stderr, `not by -group "another-group"`) {
		t.Fatalf("purge as another owner: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	left(6)

	code, stdout, stderr = purgeRun("-schema-below", "7")
	wantPurge := fmt.Sprintf("purge Order: snapshots of Order with schema version below 7 in %sOrder\n"+
		"  partition 0: %d snapshots deleted\n  partition 1: %d snapshots deleted\n  total: 4 snapshots deleted\n"+
		"the snapshotters of group %s write them again at their next checkpoints; until then loads of those aggregates replay their events\n",
		e.snaps, per[0], per[1], e.group)
	if code != exitOK || stdout != wantPurge || stderr != "" {
		t.Fatalf("purge: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, stdout, wantPurge, stderr)
	}
	// The sidecar writes the deleted snapshots again, at the current schema
	// version; the later ones stay.
	if err := watch.Caught(ctxT(t, time.Minute)); err != nil { // the tombstones are in its view
		t.Fatal(err)
	}
	waitFor(t, "the deleted snapshots written again", 60*time.Second, func() bool {
		if err := watch.Caught(ctxT(t, time.Minute)); err != nil {
			t.Fatal(err)
		}
		for _, o := range orders {
			snap, err := watch.Get(ctxT(t, time.Minute), "Order", o.ID())
			if err != nil || snap.Version != o.Version() || (snap.SchemaVersion == 7) != kept[o.ID()] {
				return false
			}
		}
		return true
	})

	if code := s.stop(t); code != exitOK {
		t.Fatalf("sidecar exit %d; stderr:\n%s", code, s.stderr)
	}
	code, stdout, stderr = purgeRun("-dry-run")
	if code != exitError || !strings.Contains(stdout, "  total: 6 snapshots would be deleted; nothing was deleted\n") ||
		!strings.Contains(stderr, "dry run: a purge would be refused: group "+e.group+" has no members") {
		t.Fatalf("dry run with the sidecar stopped: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = purgeRun()
	if code != exitError || stdout != "" || !strings.Contains(stderr, "group "+e.group+" has no members") {
		t.Fatalf("purge with the sidecar stopped: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	left(6)
}

// TestSecureSidecar: the sidecar, and inspect, reach a SASL_SSL cluster
// through the -tls and -sasl settings: it snapshots orders written over
// SCRAM-SHA-512, and inspect reads the snapshot back over TLS.
func TestSecureSidecar(t *testing.T) {
	b := securetest.Get(t)
	run := uuid.NewString()[:8]
	e := &kafkaEnv{brokers: b.Brokers, events: "sc." + run + ".events.", snaps: "sc." + run + ".snapshots.", group: "sc-" + run, partitionCount: 1}
	l, err := log.NewKafka(log.KafkaClient(b.Opts(t, securetest.ScramSHA512)...), log.WithTopicPrefix(e.events),
		log.WithTopicPartitions(1), log.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	adm := kadm.NewClient(b.Client(t, securetest.ScramSHA512))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, e.events+order.TypeName, e.snaps+order.TypeName)
		_, _ = adm.DeleteGroup(ctx, e.group)
	})
	if err := l.EnsureTopic(ctxT(t, time.Minute), order.TypeName); err != nil {
		t.Fatal(err)
	}
	typ, err := order.Type(order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	if e.repo, err = aggregate.NewRepository(l, typ); err != nil {
		t.Fatal(err)
	}
	e.log = l
	o := e.writeOrder(t, item{"Widget", 2, 9.5})

	env := e.environ("SNAPLOG_TLS_CA", b.CA, "SNAPLOG_SASL_MECHANISM", "SCRAM-SHA-512", "SNAPLOG_SASL_USERNAME", b.User,
		"SNAPLOG_SASL_PASSWORD", b.Password)
	s := startSidecar(t, env)
	base := s.url(t)
	waitFor(t, "the order's snapshot", 60*time.Second, func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, `snaplog_snapshotter_snapshots_written_total{aggregate_type="Order"} 1`)
	})
	if code := s.stop(t); code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, s.stderr)
	}
	if strings.Contains(s.stderr.String(), b.Password) {
		t.Fatal("the sidecar logged the SASL password")
	}
	var stdout, stderr strings.Builder
	if code := run0(t, []string{"inspect", "-type", "Order", "-id", o.ID().String()}, env, &stdout, &stderr); code != exitOK ||
		!strings.Contains(stdout.String(), "  Version: 2") {
		t.Fatalf("inspect over SASL_SSL: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}

	// A wrong password: the sidecar says so, naming the brokers and the
	// mechanism, instead of waiting.
	stderr.Reset()
	bad := e.environ("SNAPLOG_TLS_CA", b.CA, "SNAPLOG_SASL_MECHANISM", "SCRAM-SHA-512", "SNAPLOG_SASL_USERNAME", b.User,
		"SNAPLOG_SASL_PASSWORD", b.Password+"-wrong")
	start := time.Now()
	code := run0(t, []string{"inspect", "-type", "Order", "-id", o.ID().String()}, bad, io.Discard, &stderr)
	if code != exitError || time.Since(start) > 10*time.Second || !strings.Contains(stderr.String(), "SASL_AUTHENTICATION_FAILED") ||
		!strings.Contains(stderr.String(), "brokers "+strings.Join(b.Brokers, ",")+" (SASL SCRAM-SHA-512, TLS)") {
		t.Fatalf("inspect with a wrong password: exit %d after %v, stderr:\n%s", code, time.Since(start), stderr.String())
	}
}

func run0(t *testing.T, args []string, env func(string) string, stdout, stderr io.Writer) int {
	return run(ctxT(t, time.Minute), args, env, stdout, stderr, testTypes(t))
}
