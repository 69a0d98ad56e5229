package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/consumer"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/log/logtest"
)

const typ = "Account"

// env is one test's events topic, consumer group and writers.
type env struct {
	t       *testing.T
	brokers []string
	prefix  string
	group   string
	// writer and rival append to the same topic from two clients, so that
	// racing saves both reach the log and one of them is a stored loser.
	writer, rival *log.Kafka
	adm           *kadm.Client

	mu       sync.Mutex
	winners  map[uuid.UUID]log.Event // by event id, with positions
	losers   map[uuid.UUID]bool      // event ids of saves told they lost
	versions map[uuid.UUID]log.Expected
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	brokers := kafkatest.Brokers(t)
	e := &env{
		t:        t,
		brokers:  brokers,
		prefix:   kafkatest.Topic(t, "consumer") + ".",
		group:    kafkatest.Topic(t, "consumer-group"),
		adm:      kafkatest.Admin(t),
		winners:  map[uuid.UUID]log.Event{},
		losers:   map[uuid.UUID]bool{},
		versions: map[uuid.UUID]log.Expected{},
	}
	kafkatest.DeleteTopicsOnCleanup(t, e.prefix+typ, e.group+consumer.DefaultDeadLetterSuffix)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := e.adm.DeleteGroups(ctx, e.group); err != nil {
			t.Logf("delete group %s: %v", e.group, err)
		}
	})
	mk := func() *log.Kafka {
		l, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(brokers...)), log.WithTopicPrefix(e.prefix),
			log.WithTopicPartitions(partitions), log.WithReplicationFactor(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	e.writer, e.rival = mk(), mk()
	if err := e.writer.EnsureTopic(ctxT(t), typ); err != nil {
		t.Fatal(err)
	}
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// save appends n events to aggregate id at its current version. With race,
// the rival appends a save of its own at the same version at the same
// time: one wins, and the other's records are in the log as a loser.
func (e *env) save(id uuid.UUID, n int, race bool) {
	e.t.Helper()
	e.mu.Lock()
	exp := e.versions[id]
	e.mu.Unlock()
	writers := []*log.Kafka{e.writer}
	if race {
		writers = append(writers, e.rival)
	}
	batches := make([][]log.Event, len(writers))
	outs := make([][]log.Event, len(writers))
	errs := make([]error, len(writers))
	var wg sync.WaitGroup
	for i, l := range writers {
		batches[i] = logtest.Events(typ, id, exp.Version, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = l.Append(ctxT(e.t), typ, id, exp, batches[i])
		}()
	}
	wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			for _, ev := range outs[i] {
				e.winners[ev.ID] = ev
			}
			last := outs[i][len(outs[i])-1]
			e.versions[id] = log.Expected{Version: last.AggregateVersion, ReadTo: last.Position.Offset + 1}
		case errors.Is(err, log.ErrConflict):
			for _, ev := range batches[i] {
				e.losers[ev.ID] = true
			}
		default:
			e.t.Errorf("append %s at %d: %v", id, exp.Version, err)
		}
	}
	if won != 1 {
		e.t.Errorf("append %s at %d: %d saves won, want 1", id, exp.Version, won)
	}
}

// history writes saves to aggregates: every aggregate gets `saves` saves of
// 1 to 3 events, every other one raced by the rival.
func (e *env) history(aggregates []uuid.UUID, saves int) {
	e.t.Helper()
	var wg sync.WaitGroup
	for i, id := range aggregates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := 0; s < saves; s++ {
				e.save(id, 1+(i+s)%3, s%2 == 0)
			}
		}()
	}
	wg.Wait()
	if e.t.Failed() {
		e.t.FailNow()
	}
}

// winnersInOrder returns the winning events in partition order.
func (e *env) winnersInOrder() []log.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]log.Event, 0, len(e.winners))
	for _, ev := range e.winners {
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Position, out[j].Position
		return a.Partition < b.Partition || a.Partition == b.Partition && a.Offset < b.Offset
	})
	return out
}

func (e *env) subscribe(h consumer.Handler, opts ...consumer.Option) *consumer.Subscription {
	e.t.Helper()
	base := []consumer.Option{
		consumer.KafkaClient(kgo.SeedBrokers(e.brokers...), kgo.HeartbeatInterval(250*time.Millisecond)),
		consumer.WithTopics(typ),
		consumer.WithTopicPrefix(e.prefix),
		consumer.WithLogger(testLogger(e.t)),
	}
	s, err := consumer.New(e.group, h, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// running is a Subscription's Run in a goroutine.
type running struct {
	cancel context.CancelFunc
	errc   chan error
	once   sync.Once
	err    error
	took   time.Duration
}

func run(t *testing.T, s *consumer.Subscription) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop cancels Run's context and waits for Run to return.
func (r *running) stop() (error, time.Duration) {
	r.once.Do(func() {
		start := time.Now()
		r.cancel()
		select {
		case r.err = <-r.errc:
		case <-time.After(30 * time.Second):
			r.err = errors.New("Run did not return within 30s of its context's end")
		}
		r.took = time.Since(start)
	})
	return r.err, r.took
}

// recorder is a handler that records the events it handled, in order.
type recorder struct {
	mu     sync.Mutex
	events []consumer.Event
	count  map[uuid.UUID]int
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{count: map[uuid.UUID]int{}, notify: make(chan struct{}, 1)}
}

func (r *recorder) Handle(_ context.Context, e consumer.Event) error {
	r.add(e)
	return nil
}

func (r *recorder) add(e consumer.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.count[e.ID]++
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) handled() []consumer.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) seen(id uuid.UUID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[id] > 0
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkHandled checks handled events against the log: only winners, in
// partition order and in version order per aggregate, and each of want
// exactly once.
func checkHandled(t *testing.T, e *env, got []consumer.Event, want []log.Event) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	wantSet := map[uuid.UUID]bool{}
	for _, ev := range want {
		wantSet[ev.ID] = true
	}
	count := map[uuid.UUID]int{}
	lastOffset := map[int32]int64{}
	lastVersion := map[uuid.UUID]int64{}
	for _, ev := range got {
		where := fmt.Sprintf("%s v%d at %s", ev.AggregateID, ev.AggregateVersion, ev.Position)
		if e.losers[ev.ID] {
			t.Errorf("handler saw %s, an event of a save that lost", where)
		}
		if !wantSet[ev.ID] {
			t.Errorf("handler saw %s, not one of the events expected", where)
		}
		count[ev.ID]++
		// A save is delivered when its last record is handled (records
		// of other aggregates may come between a save's records): its
		// events are ordered by the offset of its last event.
		if ev.AggregateVersion == ev.Expected+int64(ev.SaveEvents) {
			if off, ok := lastOffset[ev.Position.Partition]; ok && ev.Position.Offset <= off {
				t.Errorf("handler saw the save ending with %s after offset %d of the same partition", where, off)
			}
			lastOffset[ev.Position.Partition] = ev.Position.Offset
		}
		if v, ok := lastVersion[ev.AggregateID]; ok && ev.AggregateVersion != v+1 {
			t.Errorf("handler saw %s after version %d", where, v)
		}
		lastVersion[ev.AggregateID] = ev.AggregateVersion
		if ev.Topic != e.prefix+typ {
			t.Errorf("%s: topic %q", where, ev.Topic)
		}
		if w, ok := e.winners[ev.ID]; ok {
			if err := logtest.SameEvent(ev.Event, w); err != nil || ev.Position != w.Position {
				t.Errorf("%s: differs from the event appended at %s: %v", where, w.Position, err)
			}
		}
	}
	for _, ev := range want {
		if n := count[ev.ID]; n != 1 {
			t.Errorf("%s v%d at %s handled %d times, want once", ev.AggregateID, ev.AggregateVersion, ev.Position, n)
		}
	}
}

func newIDs(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	return ids
}

// spreadIDs returns perPartition aggregate ids in each of n partitions.
func spreadIDs(n int32, perPartition int) []uuid.UUID {
	var ids []uuid.UUID
	have := map[int32]int{}
	for len(ids) < int(n)*perPartition {
		id := uuid.New()
		if p := log.Partition(id, n); have[p] < perPartition {
			have[p]++
			ids = append(ids, id)
		}
	}
	return ids
}

// TestHandlerSeesEachWinnerOnceInOrder: racing saves leave losers in the
// log (I2); the handler sees every winning event exactly once, in partition
// order, and none of the losers, whether the events were there before the
// subscription started or came while it ran.
func TestHandlerSeesEachWinnerOnceInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 3)
	ids := spreadIDs(3, 2)
	e.history(ids, 6)

	var lagMu sync.Mutex
	lags := map[int32]int64{}
	var handled atomic.Int64
	rec := newRecorder()
	sub := e.subscribe(rec, consumer.WithHooks(consumer.Hooks{
		Lag: func(_ string, p int32, lag int64) {
			lagMu.Lock()
			lags[p] = lag
			lagMu.Unlock()
		},
		Handled: func(string, int32, time.Duration) { handled.Add(1) },
	}))
	r := run(t, sub)
	e.history(ids, 4) // while the subscription runs
	// A last single-event save per aggregate, so that every partition ends
	// with an event rather than a transaction marker: its lag must reach 0.
	for _, id := range ids {
		e.save(id, 1, false)
	}

	want := e.winnersInOrder()
	waitFor(t, 30*time.Second, "every winning event", func() bool { return len(rec.handled()) >= len(want) })
	if err, _ := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := rec.handled()
	checkHandled(t, e, got, want)
	if len(e.losers) == 0 {
		t.Fatal("no save lost a race; the test proves nothing")
	}
	if n := handled.Load(); n != int64(len(got)) {
		t.Errorf("Handled hook called %d times for %d events", n, len(got))
	}
	lagMu.Lock()
	defer lagMu.Unlock()
	for p, lag := range lags {
		if lag != 0 {
			t.Errorf("partition %d: last lag %d, want 0", p, lag)
		}
	}
	if len(lags) != 3 {
		t.Errorf("Lag hook called for partitions %v, want all 3", lags)
	}
	t.Logf("%d winning events handled, %d losing events skipped", len(got), len(e.losers))
}

// committedOffset returns the group's committed offset of partition 0.
func (e *env) committedOffset() int64 {
	e.t.Helper()
	offs, err := e.adm.FetchOffsets(ctxT(e.t), e.group)
	if err != nil {
		e.t.Fatal(err)
	}
	o, ok := offs.Lookup(e.prefix+typ, 0)
	if !ok {
		return -1
	}
	if o.Err != nil {
		e.t.Fatal(o.Err)
	}
	return o.At
}

// TestAtLeastOnce: a failed handler call is retried and the event handled
// once successfully; an event whose handler keeps failing is not committed,
// so a subscription restarted in the group starts with it, after restoring
// the winner rule's state of the partition before it: nothing handled
// twice, no winner missing, no loser seen.
func TestAtLeastOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.history(newIDs(3), 6)
	all := e.winnersInOrder()
	flaky, stuck := all[2], all[len(all)/2]
	stuckAt := slices.IndexFunc(all, func(ev log.Event) bool { return ev.ID == stuck.ID })

	var flakyCalls, stuckCalls atomic.Int64
	var failedHook atomic.Int64
	stuckFailing := make(chan struct{})
	var once sync.Once
	rec := newRecorder()
	sub1 := e.subscribe(consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
		switch ev.ID {
		case flaky.ID:
			if flakyCalls.Add(1) == 1 {
				return errors.New("flaky: first call fails")
			}
		case stuck.ID:
			if stuckCalls.Add(1) >= 3 {
				once.Do(func() { close(stuckFailing) })
			}
			return errors.New("stuck: always fails")
		}
		rec.add(ev)
		return nil
	}), consumer.WithRetries(1000, 10*time.Millisecond, 10*time.Millisecond),
		consumer.WithHooks(consumer.Hooks{Failed: func(string, int32, int64, int, error) { failedHook.Add(1) }}))
	r1 := run(t, sub1)
	select {
	case <-stuckFailing:
	case <-time.After(30 * time.Second):
		t.Fatal("the stuck event's handler was not called three times")
	}
	if err, took := r1.stop(); err != nil || took > 5*time.Second {
		t.Fatalf("Run returned %v after %s, want nil promptly", err, took)
	}
	if n := flakyCalls.Load(); n != 2 {
		t.Errorf("flaky event: %d handler calls, want 2", n)
	}
	if failedHook.Load() < 1+3 {
		t.Errorf("Failed hook called %d times, want at least 4", failedHook.Load())
	}
	checkHandled(t, e, rec.handled(), all[:stuckAt])
	// Committed: past the last event before the failing one's save, not
	// past the record that completes that save (where it is delivered).
	// Offsets between them hold losers, transaction markers and the save's
	// earlier records.
	saveStart := slices.IndexFunc(all, func(ev log.Event) bool { return ev.Save == stuck.Save })
	saveEnd := all[stuckAt]
	for _, ev := range all[stuckAt:] {
		if ev.Save == stuck.Save {
			saveEnd = ev
		}
	}
	if got := e.committedOffset(); (saveStart > 0 && got <= all[saveStart-1].Position.Offset) || got > saveEnd.Position.Offset {
		t.Fatalf("committed offset %d, want one after the save before the failing one's and at most %s, where the failing one's save completes", got, saveEnd.Position)
	}

	// More racing saves after the restart point: the restored state must
	// tell their winners from their losers.
	e.mu.Lock()
	var known []uuid.UUID
	for id := range e.versions {
		known = append(known, id)
	}
	e.mu.Unlock()
	e.history(append(known, newIDs(2)...), 2)
	all = e.winnersInOrder()

	rec2 := newRecorder()
	sub2 := e.subscribe(rec2)
	r2 := run(t, sub2)
	rest := all[stuckAt:]
	waitFor(t, 30*time.Second, "the rest of the winning events", func() bool { return len(rec2.handled()) >= len(rest) })
	if err, _ := r2.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	got := rec2.handled()
	// A save is delivered whole: the restarted subscription begins with the
	// stuck event, after the events of its save before it, handled again.
	k := slices.IndexFunc(got, func(ev consumer.Event) bool { return ev.ID == stuck.ID })
	if k < 0 {
		t.Fatalf("restarted subscription never handled the uncommitted event %s", stuck.Position)
	}
	for _, ev := range got[:k] {
		if ev.Save != stuck.Save || !slices.ContainsFunc(rec.handled(), func(h consumer.Event) bool { return h.ID == ev.ID }) {
			t.Fatalf("restarted subscription began with %s (save %s), want the uncommitted event %s of save %s or its save's earlier events", ev.Position, ev.Save, stuck.Position, stuck.Save)
		}
	}
	checkHandled(t, e, got[k:], rest)
	checkHandled(t, e, append(rec.handled(), got[k:]...), all)
}

type deposited struct{ Amount int }

// TestPoisonGoesToDeadLetterTopic: a record that is not a snaplog event,
// an event of a type the registry does not know and an event whose handler
// keeps failing go to the dead-letter topic with the original record and
// the snaplog.dlq headers; the partition moves on and later events are
// handled (I7).
func TestPoisonGoesToDeadLetterTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	reg := aggregate.NewRegistry(nil)
	if err := aggregate.Register[deposited](reg, "Deposited"); err != nil {
		t.Fatal(err)
	}
	a, b := uuid.New(), uuid.New()
	appendOne := func(id uuid.UUID, eventType string, payload string) log.Event {
		t.Helper()
		e.mu.Lock()
		exp := e.versions[id]
		e.mu.Unlock()
		ev := logtest.Events(typ, id, exp.Version, 1)[0]
		ev.Type, ev.Payload = eventType, []byte(payload)
		out, err := e.writer.Append(ctxT(t), typ, id, exp, []log.Event{ev})
		if err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		e.versions[id] = log.Expected{Version: out[0].AggregateVersion, ReadTo: out[0].Position.Offset + 1}
		e.mu.Unlock()
		return out[0]
	}
	a1 := appendOne(a, "Deposited", `{"Amount":1}`)
	garbage := &kgo.Record{Topic: e.prefix + typ, Partition: 0, Key: []byte("not-an-aggregate-id"), Value: []byte("\x00\xffjunk"),
		Headers: []kgo.RecordHeader{{Key: log.HeaderVersion, Value: []byte("seven")}, {Key: "x-origin", Value: []byte("test")}}}
	raw := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := raw.ProduceSync(ctxT(t), garbage).FirstErr(); err != nil {
		t.Fatal(err)
	}
	b1 := appendOne(b, "Withdrawn", `{"Amount":3}`)
	a2 := appendOne(a, "Deposited", `{"Amount":2}`)
	a3 := appendOne(a, "Deposited", `{"Amount":13}`)
	a4 := appendOne(a, "Deposited", `{"Amount":4}`)
	b2 := appendOne(b, "Deposited", `{"Amount":5}`)

	var mu sync.Mutex
	var dead []int64
	var failedAttempts []int
	rec := newRecorder()
	sub := e.subscribe(consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
		if d, ok := ev.Value.(deposited); ok && d.Amount == 13 {
			return errors.New("thirteen is unlucky")
		}
		rec.add(ev)
		return nil
	}), consumer.WithRegistry(reg), consumer.WithRetries(3, 5*time.Millisecond, 20*time.Millisecond),
		consumer.WithHooks(consumer.Hooks{
			DeadLettered: func(_ string, _ int32, off int64, _ error) { mu.Lock(); dead = append(dead, off); mu.Unlock() },
			Failed: func(_ string, _ int32, off int64, attempt int, _ error) {
				mu.Lock()
				failedAttempts = append(failedAttempts, attempt)
				mu.Unlock()
			},
		}))
	if got, want := sub.DeadLetterTopic(), e.group+".dlq"; got != want {
		t.Fatalf("DeadLetterTopic() = %q, want %q", got, want)
	}
	r := run(t, sub)
	waitFor(t, 30*time.Second, "the events after the poison", func() bool { return rec.seen(a4.ID) && rec.seen(b2.ID) })
	if err, _ := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	var gotIDs []uuid.UUID
	for _, ev := range rec.handled() {
		gotIDs = append(gotIDs, ev.ID)
		if d, ok := ev.Value.(deposited); !ok || string(ev.Payload) != fmt.Sprintf(`{"Amount":%d}`, d.Amount) {
			t.Errorf("event %s: Value %#v does not match payload %s", ev.ID, ev.Value, ev.Payload)
		}
	}
	if want := []uuid.UUID{a1.ID, a2.ID, a4.ID, b2.ID}; !slices.Equal(gotIDs, want) {
		t.Errorf("handled %v, want %v", gotIDs, want)
	}
	mu.Lock()
	if !slices.Equal(failedAttempts, []int{1, 2, 3}) {
		t.Errorf("Failed hook attempts %v, want [1 2 3]", failedAttempts)
	}
	if len(dead) != 3 {
		t.Errorf("DeadLettered hook called for offsets %v, want 3 calls", dead)
	}
	mu.Unlock()

	// The dead-letter topic holds the three poison records, in order.
	dl := readAll(t, sub.DeadLetterTopic(), 3)
	type want struct {
		key, value string
		offset     int64
		attempts   string
		errPart    string
	}
	wants := []want{
		{string(garbage.Key), string(garbage.Value), garbage.Offset, "0", "not a snaplog event"},
		{string(log.Key(b)), string(b1.Payload), b1.Position.Offset, "0", "unknown event type"},
		{string(log.Key(a)), string(a3.Payload), a3.Position.Offset, "3", "thirteen is unlucky"},
	}
	for i, w := range wants {
		r := dl[i]
		h := headers(r)
		if string(r.Key) != w.key || string(r.Value) != w.value {
			t.Errorf("dead letter %d: key %q value %q, want %q %q", i, r.Key, r.Value, w.key, w.value)
		}
		checks := map[string]string{
			consumer.HeaderDLQTopic:     e.prefix + typ,
			consumer.HeaderDLQPartition: "0",
			consumer.HeaderDLQOffset:    strconv.FormatInt(w.offset, 10),
			consumer.HeaderDLQGroup:     e.group,
			consumer.HeaderDLQAttempts:  w.attempts,
		}
		for k, v := range checks {
			if h[k] != v {
				t.Errorf("dead letter %d: header %s = %q, want %q", i, k, h[k], v)
			}
		}
		if !strings.Contains(h[consumer.HeaderDLQError], w.errPart) {
			t.Errorf("dead letter %d: header %s = %q, want it to mention %q", i, consumer.HeaderDLQError, h[consumer.HeaderDLQError], w.errPart)
		}
		if at, err := time.Parse(time.RFC3339Nano, h[consumer.HeaderDLQAt]); err != nil || time.Since(at) > time.Minute {
			t.Errorf("dead letter %d: header %s = %q", i, consumer.HeaderDLQAt, h[consumer.HeaderDLQAt])
		}
	}
	// Original headers are kept: a snaplog event still decodes.
	if h := headers(dl[0]); h["x-origin"] != "test" {
		t.Errorf("dead letter 0 lost the original headers: %v", h)
	}
	for i, orig := range []log.Event{b1, a3} {
		ev, err := log.FromRecord(dl[i+1])
		if err != nil || ev.ID != orig.ID || ev.Type != orig.Type || ev.AggregateVersion != orig.AggregateVersion {
			t.Errorf("dead letter %d does not decode as the original event %s: %+v, %v", i+1, orig.ID, ev, err)
		}
	}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

// readAll reads n records of a topic from its start.
func readAll(t *testing.T, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := kafkatest.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s: %d of %d records: %v", topic, len(out), n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("read %s: %v", topic, err) })
		out = append(out, fs.Records()...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Offset < out[j].Offset })
	return out
}

// TestRebalanceMovesPartitionsCleanly: a second subscription joins the
// group while events flow. Partitions move to it only after the first one
// finished and committed them: no partition is handled by both at once,
// every winner is handled exactly once, in order per aggregate.
func TestRebalanceMovesPartitionsCleanly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4)
	ids := newIDs(16)

	var mu sync.Mutex
	active := map[int32]string{}
	var order []consumer.Event
	owners := map[int32][]string{} // handlers of each partition, in order
	count := map[string]int{}
	handler := func(name string) consumer.Handler {
		return consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
			p := ev.Position.Partition
			mu.Lock()
			if other, ok := active[p]; ok {
				t.Errorf("partition %d handled by %s and %s at once", p, other, name)
			}
			active[p] = name
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			delete(active, p)
			order = append(order, ev)
			if o := owners[p]; len(o) == 0 || o[len(o)-1] != name {
				owners[p] = append(o, name)
			}
			count[name]++
			mu.Unlock()
			return nil
		})
	}
	handledBy := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return count[name]
	}

	stopWriting := make(chan struct{})
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		for s := 0; ; s++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Add(1)
				go func() { defer wg.Done(); e.save(id, 1+(i+s)%2, (i+s)%4 == 0) }()
			}
			wg.Wait()
		}
	}()

	ra := run(t, e.subscribe(handler("A")))
	waitFor(t, 30*time.Second, "A to handle events", func() bool { return handledBy("A") >= 50 })
	rb := run(t, e.subscribe(handler("B")))
	waitFor(t, 30*time.Second, "B to handle events", func() bool { return handledBy("B") >= 50 })
	close(stopWriting)
	<-writing
	want := e.winnersInOrder()
	waitFor(t, 30*time.Second, "every winning event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) >= len(want)
	})
	for name, r := range map[string]*running{"A": ra, "B": rb} {
		if err, _ := r.stop(); err != nil {
			t.Errorf("Run %s: %v", name, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	checkHandled(t, e, order, want)
	for p, o := range owners {
		if len(o) > 2 {
			t.Errorf("partition %d changed hands %d times: %v", p, len(o)-1, o)
		}
	}
	t.Logf("%d events: A handled %d, B %d; owners %v", len(order), count["A"], count["B"], owners)
}

// TestShutdownFinishesEventInHandAndCommits: when Run's context ends, the
// event in hand completes (its handler context does not end), its offset
// and every earlier one are committed, the member leaves the group, and Run
// returns nil promptly. The next member starts right after it.
func TestShutdownFinishesEventInHandAndCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id := uuid.New()
	for range 5 {
		e.save(id, 1, false)
	}
	all := e.winnersInOrder()
	inHand := all[2]

	started := make(chan struct{})
	var handlerCtxErr atomic.Value
	rec := newRecorder()
	sub := e.subscribe(consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
		if ev.ID == inHand.ID {
			close(started)
			time.Sleep(500 * time.Millisecond)
			handlerCtxErr.Store(fmt.Sprint(ctx.Err()))
		}
		rec.add(ev)
		return nil
	}))
	r := run(t, sub)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not reach the third event")
	}
	err, took := r.stop()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("Run took %s to return after its context ended", took)
	}
	if got := handlerCtxErr.Load(); got != "<nil>" {
		t.Errorf("the handler's context ended during shutdown: %v", got)
	}
	checkHandled(t, e, rec.handled(), all[:3])
	if got, want := e.committedOffset(), inHand.Position.Offset+1; got != want {
		t.Errorf("committed offset %d, want %d", got, want)
	}
	groups, err := e.adm.DescribeGroups(ctxT(t), e.group)
	if err != nil {
		t.Fatal(err)
	}
	if g := groups[e.group]; len(g.Members) != 0 {
		t.Errorf("group %s still has members %v after Run returned", e.group, g.Members)
	}
	t.Logf("Run returned %s after its context ended", took)

	rec2 := newRecorder()
	r2 := run(t, e.subscribe(rec2))
	waitFor(t, 30*time.Second, "the remaining events", func() bool { return len(rec2.handled()) >= 2 })
	if err, _ := r2.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkHandled(t, e, rec2.handled(), all[3:])
}

// TestDeadLetterWriteFailureHoldsPartition: while the dead-letter topic
// refuses a poison event, the partition does not move past it; the write is
// retried, and once it succeeds the partition moves on (I7: nothing is
// dropped).
func TestDeadLetterWriteFailureHoldsPartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	dlq := e.group + consumer.DefaultDeadLetterSuffix
	// A dead-letter topic that refuses records of more than 64 bytes.
	if _, err := e.adm.CreateTopic(ctxT(t), 1, 1, map[string]*string{"max.message.bytes": kadm.StringPtr("64")}, dlq); err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	e.save(id, 1, false)
	e.save(id, 1, false)
	all := e.winnersInOrder()
	poison, next := all[0], all[1]

	failures := &lineCounter{substr: "dead-letter write failed"}
	rec := newRecorder()
	sub := e.subscribe(consumer.HandlerFunc(func(ctx context.Context, ev consumer.Event) error {
		if ev.ID == poison.ID {
			return errors.New("poison")
		}
		return rec.Handle(ctx, ev)
	}), consumer.WithRetries(1, 10*time.Millisecond, 50*time.Millisecond),
		consumer.WithLogger(slog.New(slog.NewTextHandler(failures, nil))))
	r := run(t, sub)
	waitFor(t, 30*time.Second, "failed dead-letter writes", func() bool { return failures.count() >= 5 })
	if rec.seen(next.ID) {
		t.Fatal("the partition moved past a poison event whose dead-letter write failed")
	}
	if got := e.committedOffset(); got > poison.Position.Offset {
		t.Fatalf("committed offset %d, past the poison event at %d", got, poison.Position.Offset)
	}

	if _, err := e.adm.AlterTopicConfigs(ctxT(t), []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "max.message.bytes"}}, dlq); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the event after the poison", func() bool { return rec.seen(next.ID) })
	if err, _ := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkHandled(t, e, rec.handled(), all[1:])
	dl := readAll(t, dlq, 1)
	if len(dl) != 1 || headers(dl[0])[consumer.HeaderDLQOffset] != strconv.FormatInt(poison.Position.Offset, 10) {
		t.Fatalf("dead-letter topic holds %d records, want the poison event once", len(dl))
	}
	t.Logf("%d failed dead-letter writes before the topic accepted it", failures.count())
}

// lineCounter counts the written lines that contain substr.
type lineCounter struct {
	substr string
	mu     sync.Mutex
	n      int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += strings.Count(string(p), c.substr)
	return len(p), nil
}

func (c *lineCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestRestoreRefusesTruncatedPartition: the winner rule needs a
// partition from its start. When records at its start were deleted, the
// restore cannot rebuild the aggregates' state, and Run stops with an error
// naming the partition instead of guessing (I7).
func TestRestoreRefusesTruncatedPartition(t *testing.T) {
	t.Parallel()
	// Partition 1: partition 0 starts with the topic's placement record,
	// whose deletion is refused before any restore (log.ErrPlacement).
	e := newEnv(t, 2)
	id := uuid.New()
	for log.Partition(id, 2) != 1 {
		id = uuid.New()
	}
	for range 4 {
		e.save(id, 1, false)
	}
	rec := newRecorder()
	r := run(t, e.subscribe(rec))
	waitFor(t, 30*time.Second, "the first events", func() bool { return len(rec.handled()) == 4 })
	if err, _ := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	e.save(id, 1, false)
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: e.prefix + typ, Partition: 1, At: 2, LeaderEpoch: -1})
	resps, err := e.adm.DeleteRecords(ctxT(t), del)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}

	rec2 := newRecorder()
	sub := e.subscribe(rec2)
	errc := make(chan error, 1)
	go func() { errc <- sub.Run(context.Background()) }()
	select {
	case err = <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
	for _, want := range []string{fmt.Sprintf("restore %s/1 before offset 4", e.prefix+typ), "were deleted"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Run = %v, want an error containing %q", err, want)
		}
	}
	if n := len(rec2.handled()); n != 0 {
		t.Errorf("handler called %d times", n)
	}
	t.Log(err)
}

// TestRunOnce: a Subscription runs once: a second Run returns ErrRunning,
// Run after Close returns ErrClosed; Close is idempotent and makes a
// running Run return.
func TestRunOnce(t *testing.T) {
	t.Parallel()
	sub, err := consumer.New("g", newRecorder(),
		consumer.KafkaClient(kgo.SeedBrokers("127.0.0.1:1")),
		consumer.WithTopics(typ))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	for range 2 {
		go func() { errc <- sub.Run(context.Background()) }()
	}
	select {
	case err := <-errc:
		if !errors.Is(err, consumer.ErrRunning) {
			t.Fatalf("one of two Runs returned %v, want ErrRunning", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("neither of two Runs returned")
	}
	sub.Close()
	sub.Close()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run after Close returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := sub.Run(context.Background()); !errors.Is(err, consumer.ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
}

// testLogger logs warnings and errors to the test.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
