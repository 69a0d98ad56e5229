//go:build kafkarestart || kafkacluster

// This file is the harness of the torture tests that restart, kill and
// pause brokers (TestKafkaProcessTorture on the broker of scripts/kafka.sh,
// TestKafkaClusterFaults on its three-node cluster): writer processes, what
// they report, and the check of every outcome against the topic. It builds
// only with the tags of those tests, which run on their own after the rest
// of the suite (see the Makefile's test target).

package log_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/internal/invariant"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/log"
)

// envTortureWriter, when set, makes the test binary a writer process of
// TestKafkaProcessTorture; its value is the writer's configuration as JSON.
const envTortureWriter = "SNAPLOG_TEST_TORTURE_WRITER"

// TestMain runs the test binary as a writer process when
// TestKafkaProcessTorture starts it as a child.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(envTortureWriter); cfg != "" {
		os.Exit(runTortureWriter(cfg))
	}
	os.Exit(m.Run())
}

// tortureConfig is what a writer process is told.
type tortureConfig struct {
	Writer     int         `json:"writer"`
	Brokers    []string    `json:"brokers"`
	Prefix     string      `json:"prefix"`
	Type       string      `json:"type"`
	Partitions int32       `json:"partitions"`
	Aggregates []uuid.UUID `json:"aggregates"` // the hot aggregates
	// Fresh is the namespace of the ids of racing creations: every writer
	// derives the same new id from it and the time since Start.
	Fresh      uuid.UUID `json:"fresh"`
	Goroutines int       `json:"goroutines"`
	Start      time.Time `json:"start"`
	// No save begins once stdin is closed; a save still undecided Finish
	// after that has an unknown outcome.
	Finish time.Duration `json:"finish"`
}

// freshEvery is how long all writers race to create the same new id.
const freshEvery = 750 * time.Millisecond

// tortureLine is one line a writer process prints: "begin" before a save's
// first Append, then one of "ack", "conflict" or "unknown"; "retry" after a
// failed attempt; "fatal" for an error that must not happen; "done" last.
type tortureLine struct {
	Kind      string         `json:"kind"`
	Writer    int            `json:"w"`
	G         int            `json:"g"`
	Aggregate uuid.UUID      `json:"agg"`
	Expected  int64          `json:"exp"`
	ReadTo    int64          `json:"read_to"`
	Save      uuid.UUID      `json:"save"`
	Events    []uuid.UUID    `json:"events,omitempty"`
	Partition int32          `json:"p"`
	Offsets   []int64        `json:"offsets,omitempty"`
	Attempt   int            `json:"attempt,omitempty"`
	Err       string         `json:"err,omitempty"`
	Stats     map[string]int `json:"stats,omitempty"`
}

// runTortureWriter is a writer process: a few goroutines that hammer the
// hot aggregates with saves until stdin is closed, retrying each save after
// an error other than a conflict with the same Expected and events until it
// is decided or cfg.Finish has passed since stdin was closed. Each outcome is one line on stdout, written
// with one write(2) so that a kill -9 never leaves half a line.
func runTortureWriter(cfgJSON string) int {
	var cfg tortureConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "writer config:", err)
		return 2
	}
	k, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(cfg.Brokers...)), log.WithTopicPrefix(cfg.Prefix),
		log.WithTopicPartitions(cfg.Partitions), log.WithReplicationFactor(1), log.WithAutoCreateTopics(false))
	if err != nil {
		fmt.Fprintln(os.Stderr, "new kafka:", err)
		return 2
	}
	w := &tortureWriter{cfg: cfg, k: k, stats: map[string]int{}}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		w.giveUp.Store(time.Now().Add(cfg.Finish).UnixNano())
	}()
	var wg sync.WaitGroup
	for g := range cfg.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(g)
		}()
	}
	wg.Wait()
	k.Close()
	w.mu.Lock()
	stats := maps.Clone(w.stats)
	w.mu.Unlock()
	w.emit(tortureLine{Kind: "done", Writer: cfg.Writer, Stats: stats})
	return 0
}

type tortureWriter struct {
	cfg   tortureConfig
	k     *log.Kafka
	mu    sync.Mutex // guards stats and stdout
	stats map[string]int
	// giveUp is when undecided saves are given up, in Unix nanoseconds; 0
	// until stdin is closed.
	giveUp atomic.Int64
}

func (w *tortureWriter) stopping() bool { return w.giveUp.Load() != 0 }

func (w *tortureWriter) givenUp() bool {
	g := w.giveUp.Load()
	return g != 0 && time.Now().UnixNano() > g
}

func (w *tortureWriter) count(what string) {
	w.mu.Lock()
	w.stats[what]++
	w.mu.Unlock()
}

func (w *tortureWriter) emit(l tortureLine) {
	l.Writer = w.cfg.Writer
	if len(l.Err) > 400 {
		l.Err = l.Err[:400] + "..."
	}
	b, err := json.Marshal(l)
	if err != nil {
		panic(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := os.Stdout.Write(append(b, '\n')); err != nil {
		os.Exit(3)
	}
}

// run is one goroutine of a writer.
func (w *tortureWriter) run(g int) {
	cfg := w.cfg
	rng := rand.New(rand.NewPCG(uint64(cfg.Writer)<<8|uint64(g), uint64(time.Now().UnixNano())))
	known := map[uuid.UUID]log.Expected{} // what this goroutine knows of each aggregate
	for !w.stopping() {
		id := cfg.Aggregates[rng.IntN(len(cfg.Aggregates))]
		var exp log.Expected
		switch r := rng.IntN(100); {
		case r < 8: // race every writer to create the same new aggregate
			id = uuid.NewSHA1(cfg.Fresh, []byte(strconv.FormatInt(int64(time.Since(cfg.Start)/freshEvery), 10)))
			w.count("fresh")
		case r < 12: // a blind creation: a conflict unless the aggregate is new
			w.count("blind")
		case r < 27 && known[id] != (log.Expected{}): // stale knowledge
			exp = known[id]
			w.count("stale")
		default:
			from := known[id]
			if rng.IntN(10) == 0 {
				from = log.Expected{} // read and check the whole partition
			}
			var ok bool
			if exp, ok = w.read(id, from); !ok {
				return
			}
		}
		if rng.IntN(30) == 0 {
			// A version the aggregate has not reached: must conflict.
			// (ReadTo 0: Append trusts that the aggregate is at
			// Expected.Version at a ReadTo it is given.)
			exp = log.Expected{Version: exp.Version + 1}
			w.count("ahead")
		}
		n := 1
		if rng.IntN(2) == 0 {
			n = 2 + rng.IntN(2)
		}
		if v, ok := w.save(g, id, exp, tortureEvents(cfg.Type, id, exp.Version, n)); ok {
			known[id] = v
		} else {
			delete(known, id)
		}
	}
}

// read learns an aggregate's version the way the repository does: from a
// known version and position on, or from the start.
func (w *tortureWriter) read(id uuid.UUID, from log.Expected) (log.Expected, bool) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		tail, err := w.k.Read(ctx, w.cfg.Type, id, from.ReadTo)
		cancel()
		if err == nil {
			seq := log.Sequencer{Version: from.Version}
			for _, e := range tail.Events {
				seq.Next(e)
			}
			return log.Expected{Version: seq.Version, ReadTo: seq.Resume(tail.End)}, true
		}
		w.count("read-error")
		if w.givenUp() {
			return log.Expected{}, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// save appends one save until it is decided, retrying after errors with
// the same save id, Expected and events. It returns what the goroutine
// knows after an acknowledgement.
func (w *tortureWriter) save(g int, id uuid.UUID, exp log.Expected, evs []log.Event) (log.Expected, bool) {
	exp.Save = uuid.New()
	line := tortureLine{G: g, Aggregate: id, Expected: exp.Version, ReadTo: exp.ReadTo, Save: exp.Save}
	for _, e := range evs {
		line.Events = append(line.Events, e.ID)
	}
	begin := line
	begin.Kind = "begin"
	w.emit(begin)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		out, err := w.k.Append(ctx, w.cfg.Type, id, exp, slices.Clone(evs))
		cancel()
		line.Attempt = attempt
		switch {
		case err == nil:
			line.Kind = "ack"
			line.Partition = out[0].Position.Partition
			for _, e := range out {
				line.Offsets = append(line.Offsets, e.Position.Offset)
			}
			w.emit(line)
			last := out[len(out)-1]
			return log.Expected{Version: last.AggregateVersion, ReadTo: last.Position.Offset + 1}, true
		case errors.Is(err, log.ErrConflict):
			line.Kind, line.Err = "conflict", err.Error()
			w.emit(line)
			return log.Expected{}, false
		case errors.Is(err, log.ErrInvalidEvent):
			line.Kind, line.Err = "fatal", err.Error()
			w.emit(line)
			return log.Expected{}, false
		}
		if w.givenUp() {
			line.Kind, line.Err = "unknown", err.Error()
			w.emit(line)
			return log.Expected{}, false
		}
		retry := line
		retry.Kind, retry.Err = "retry", err.Error()
		w.emit(retry)
		time.Sleep(time.Duration(min(attempt, 5)) * 100 * time.Millisecond)
	}
}

func tortureEvents(typ string, id uuid.UUID, after int64, n int) []log.Event {
	now := time.Now().UTC()
	out := make([]log.Event, n)
	for i := range out {
		v := after + int64(i) + 1
		out[i] = log.Event{
			ID: uuid.New(), Type: "Deposited", AggregateType: typ, AggregateID: id, AggregateVersion: v,
			OccurredAt: now, ContentType: "application/json", Payload: []byte(`{"amount":` + strconv.FormatInt(v, 10) + `}`),
		}
	}
	return out
}

// tortureChild is a writer process seen from the test.
type tortureChild struct {
	n      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser // closed: no new save
	stderr bytes.Buffer   // guarded by the Cmd until Wait returns
	done   chan struct{}
	err    error // Wait's, once done is closed
}

// tortureSave is one save the writers reported, as the test tracks it.
type tortureSave struct {
	begin   tortureLine
	final   *tortureLine
	finalAt time.Time
}

type tortureObserved struct {
	mu     sync.Mutex
	saves  map[uuid.UUID]*tortureSave
	order  []uuid.UUID
	lines  map[int]map[string]int // writer -> kind -> lines
	stats  map[int]map[string]int // writer -> its own counters ("done" line)
	errors []string

	start    time.Time
	timeline map[int]map[string]int // second since start -> kind -> lines
	errKinds map[string]int         // retry and unknown errors, shortened
	retries  []tortureRetry
}

type tortureRetry struct {
	at   time.Time
	line tortureLine
}

// errKind shortens an error to what tells errors apart.
func errKind(err string) string {
	fields := strings.Fields(err)
	for i, f := range fields {
		if _, uerr := uuid.Parse(strings.Trim(f, ":,()")); uerr == nil {
			fields[i] = "<id>"
		} else if strings.Contains(f, "@") || strings.Trim(f, "0123456789/:,") == "" {
			fields[i] = "<n>"
		}
	}
	if len(fields) > 30 {
		fields = fields[:30]
	}
	return strings.Join(fields, " ")
}

func (o *tortureObserved) add(l tortureLine, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lines[l.Writer] == nil {
		o.lines[l.Writer] = map[string]int{}
	}
	o.lines[l.Writer][l.Kind]++
	sec := int(at.Sub(o.start) / time.Second)
	if o.timeline[sec] == nil {
		o.timeline[sec] = map[string]int{}
	}
	o.timeline[sec][l.Kind]++
	if l.Kind == "retry" || l.Kind == "unknown" {
		o.errKinds[errKind(l.Err)]++
		o.retries = append(o.retries, tortureRetry{at, l})
	}
	switch l.Kind {
	case "begin":
		if o.saves[l.Save] != nil {
			o.errors = append(o.errors, fmt.Sprintf("writer %d began save %s twice", l.Writer, l.Save))
			return
		}
		o.saves[l.Save] = &tortureSave{begin: l}
		o.order = append(o.order, l.Save)
	case "ack", "conflict", "unknown", "fatal":
		s := o.saves[l.Save]
		switch {
		case s == nil:
			o.errors = append(o.errors, fmt.Sprintf("writer %d: %s of save %s, which never began", l.Writer, l.Kind, l.Save))
		case s.final != nil:
			o.errors = append(o.errors, fmt.Sprintf("writer %d: save %s decided twice (%s, then %s)", l.Writer, l.Save, s.final.Kind, l.Kind))
		default:
			s.final, s.finalAt = &l, at
		}
		if l.Kind == "fatal" {
			o.errors = append(o.errors, fmt.Sprintf("writer %d: save %s: %s", l.Writer, l.Save, l.Err))
		}
	case "done":
		o.stats[l.Writer] = l.Stats
	}
}

func (o *tortureObserved) inFlight(writer int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.saves {
		if s.begin.Writer == writer && s.final == nil {
			n++
		}
	}
	return n
}

func (o *tortureObserved) decided(writer int) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.saves {
		if s.begin.Writer == writer && s.final != nil {
			n++
		}
	}
	return n
}

// ackedSince counts the saves acknowledged since a time, and those of
// several events among them.
func (o *tortureObserved) ackedSince(since time.Time) (all, multi int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.saves {
		if s.final != nil && s.final.Kind == "ack" && s.finalAt.After(since) {
			all++
			if len(s.begin.Events) > 1 {
				multi++
			}
		}
	}
	return all, multi
}

// longestSilence returns the longest time without an acknowledgement
// between the first and the last one, and when it began.
func (o *tortureObserved) longestSilence() (time.Duration, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var at []time.Time
	for _, s := range o.saves {
		if s.final != nil && s.final.Kind == "ack" {
			at = append(at, s.finalAt)
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	var from time.Time
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d > gap {
			gap, from = d, at[i-1]
		}
	}
	return gap, from
}

func startTortureChild(t *testing.T, cfg tortureConfig, obs *tortureObserved) *tortureChild {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &tortureChild{n: cfg.Writer, done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), envTortureWriter+"="+string(b))
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l tortureLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				obs.mu.Lock()
				obs.errors = append(obs.errors, fmt.Sprintf("writer %d printed %q: %v", cfg.Writer, sc.Text(), err))
				obs.mu.Unlock()
				continue
			}
			obs.add(l, time.Now())
		}
		c.err = c.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	return c
}

// inCIEnv reports whether CI says the tests run in CI (any value but blank
// and the false ones of strconv.ParseBool, as internal/kafkatest decides).
func inCIEnv() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// scriptBroker returns the brokers of the broker scripts/kafka.sh runs,
// which the test restarts; without one it skips, or fails under CI.
func scriptBroker(t *testing.T) []string {
	t.Helper()
	need := "this test restarts the broker of scripts/kafka.sh: start it with `bash scripts/kafka.sh start` and set " +
		kafkatest.EnvBrokers + "=127.0.0.1:9092 (`make test` does both)"
	missing := func(why string) {
		if inCIEnv() {
			t.Fatalf("CI is true but %s; %s", why, need)
		}
		t.Skipf("%s; %s", why, need)
	}
	if strings.TrimSpace(os.Getenv(kafkatest.EnvBrokers)) == "" {
		missing(kafkatest.EnvBrokers + " is not set")
	}
	if out, err := exec.Command("bash", "../scripts/kafka.sh", "status").CombinedOutput(); err != nil {
		missing(fmt.Sprintf("scripts/kafka.sh status: %v: %s", err, bytes.TrimSpace(out)))
	}
	return kafkatest.Brokers(t)
}

// hangingTransactions returns the transactions that hold a partition of
// topic open although their transaction coordinator no longer has them
// open: their commit or abort markers were never written, and the
// partition's last stable offset stays behind them for good. (A broker in
// controlled shutdown, with no leader for its partitions, may complete a
// transaction and skip the markers of the leaderless partitions: "Couldn't
// find leader endpoint ... these partitions are likely deleted already and
// hence can be skipped".) Keys are partition@offset, values say whose.
func hangingTransactions(ctx context.Context, adm *kadm.Client, topic string) (map[string]string, error) {
	hw, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	set := kadm.TopicsSet{}
	hw.Each(func(o kadm.ListedOffset) {
		if l, ok := lso.Lookup(o.Topic, o.Partition); ok && l.Offset < o.Offset {
			set.Add(topic, o.Partition)
		}
	})
	if len(set) == 0 {
		return nil, nil
	}
	dp, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, err
	}
	open := map[int64][]kadm.DescribedProducer{}
	dp.EachProducer(func(p kadm.DescribedProducer) {
		if p.CurrentTxnStartOffset >= 0 {
			open[p.ProducerID] = append(open[p.ProducerID], p)
		}
	})
	if len(open) == 0 {
		return nil, nil
	}
	pids := make([]int64, 0, len(open))
	for pid := range open {
		pids = append(pids, pid)
	}
	listed, err := adm.ListTransactions(ctx, pids, nil)
	if err != nil {
		return nil, err
	}
	described, err := adm.DescribeTransactions(ctx, listed.TransactionalIDs()...)
	if err != nil {
		return nil, err
	}
	held := map[int64]kadm.DescribedTransaction{}
	described.Each(func(d kadm.DescribedTransaction) { held[d.ProducerID] = d })
	out := map[string]string{}
	for pid, ps := range open {
		d, ok := held[pid]
		for _, p := range ps {
			_, inTxn := d.Topics[topic][p.Partition]
			if ok && inTxn && (d.State == "Ongoing" || d.State == "PrepareCommit" || d.State == "PrepareAbort") {
				continue
			}
			out[fmt.Sprintf("%d@%d", p.Partition, p.CurrentTxnStartOffset)] = fmt.Sprintf(
				"producer %d epoch %d, transactional id %q, whose coordinator state is %q", pid, p.ProducerEpoch, d.TxnID, d.State)
		}
	}
	return out, nil
}

// hangMonitor records the hanging transactions of a topic, those seen in
// two polls in a row.
type hangMonitor struct {
	mu    sync.Mutex
	found map[string]string
	stop  chan struct{}
	done  chan struct{}
}

func watchHangs(adm *kadm.Client, topic string) *hangMonitor {
	m := &hangMonitor{found: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		var prev map[string]string
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(2 * time.Second):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			cur, err := hangingTransactions(ctx, adm, topic)
			cancel()
			if err != nil {
				continue
			}
			m.mu.Lock()
			for k, v := range cur {
				if _, ok := prev[k]; ok {
					m.found[k] = v
				}
			}
			m.mu.Unlock()
			prev = cur
		}
	}()
	return m
}

func (m *hangMonitor) hangs() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.found)
}

func (m *hangMonitor) close() {
	close(m.stop)
	<-m.done
}

// restartScriptBroker restarts the broker with scripts/kafka.sh. When the
// script gives up waiting for the broker, it starts it once more: the
// script looks for the broker's "started" line in server.log from the size
// the file had before the start, and misses it when log4j rolls the file
// over (at 20 MB) during the start.
func restartScriptBroker(t *testing.T) {
	t.Helper()
	out, err := exec.Command("bash", "../scripts/kafka.sh", "restart").CombinedOutput()
	if err == nil {
		return
	}
	t.Logf("scripts/kafka.sh restart: %v\n%s", err, out)
	if !bytes.Contains(out, []byte("not ready")) {
		t.Fatal("scripts/kafka.sh restart failed")
	}
	if out, err := exec.Command("bash", "../scripts/kafka.sh", "start").CombinedOutput(); err != nil {
		t.Fatalf("scripts/kafka.sh start: %v\n%s", err, out)
	}
	t.Log("scripts/kafka.sh restart missed the broker's start (see above); a second start succeeded")
}

// seedClient is a client of brokers, closed when the test ends.
func seedClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// tortureSession is one torture run: a topic, writer processes racing on
// its hot aggregates, and what they report.
type tortureSession struct {
	t        *testing.T
	brokers  []string
	topic    string
	ids      []uuid.UUID
	obs      *tortureObserved
	children []*tortureChild
	began    time.Time // when the test began
	start    time.Time // when the writers began
	finish   time.Duration
	adm      *kadm.Client
	hangs    *hangMonitor
}

// tortureShape is the size of a torture run.
type tortureShape struct {
	writers, goroutines, hot int
	partitions               int32
	// finish is how long undecided saves are retried once new saves
	// stopped.
	finish time.Duration
}

// startTorture makes the topic of aggregate type typ with k (whose prefix
// is prefix) and starts the writer processes on brokers.
func startTorture(t *testing.T, brokers []string, k *log.Kafka, prefix, typ string, shape tortureShape) *tortureSession {
	t.Helper()
	s := &tortureSession{t: t, brokers: brokers, began: time.Now(), finish: shape.finish}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := k.EnsureTopic(ctx, typ); err != nil {
		t.Fatal(err)
	}
	s.topic = k.Topic(typ)
	s.adm = kadm.NewClient(seedClient(t, brokers))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("topic %s is kept for inspection", s.topic)
			return
		}
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.adm.DeleteTopics(c, s.topic); err != nil {
			t.Logf("delete topic %s: %v", s.topic, err)
		}
	})
	s.ids = make([]uuid.UUID, shape.hot)
	spread := map[int32]int{}
	for i := range s.ids {
		s.ids[i] = uuid.New()
		spread[log.Partition(s.ids[i], shape.partitions)]++
	}
	s.start = time.Now().Add(300 * time.Millisecond)
	cfg := tortureConfig{
		Brokers: brokers, Prefix: prefix, Type: typ, Partitions: shape.partitions, Aggregates: s.ids, Fresh: uuid.New(),
		Goroutines: shape.goroutines, Start: s.start, Finish: shape.finish,
	}
	s.obs = &tortureObserved{saves: map[uuid.UUID]*tortureSave{}, lines: map[int]map[string]int{}, stats: map[int]map[string]int{},
		start: s.start, timeline: map[int]map[string]int{}, errKinds: map[string]int{}}
	s.children = make([]*tortureChild, shape.writers)
	for i := range s.children {
		c := cfg
		c.Writer = i
		s.children[i] = startTortureChild(t, c, s.obs)
	}
	s.hangs = watchHangs(s.adm, s.topic)
	t.Cleanup(s.hangs.close)
	t.Logf("%d writer processes x %d goroutines on %d hot aggregates (per partition: %v) of %s", shape.writers, shape.goroutines, shape.hot, spread, s.topic)
	return s
}

// since is how long after the writers' start t is, for the logs.
func (s *tortureSession) since(t time.Time) time.Duration {
	return t.Sub(s.start).Round(time.Millisecond)
}

// kill kills writer n with SIGKILL once it has decided a few saves more and
// has one in flight, and returns when.
func (s *tortureSession) kill(n int) time.Time {
	s.t.Helper()
	victim := s.children[n]
	before := s.obs.decided(n)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if s.obs.decided(n) >= before+5 && s.obs.inFlight(n) > 0 {
			break
		}
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		s.t.Fatal(err)
	}
	<-victim.done
	killed := time.Now()
	s.t.Logf("killed writer %d (pid %d) with SIGKILL at %s: %d saves decided (%d in the last moments), %d in flight",
		n, victim.cmd.Process.Pid, s.since(killed), s.obs.decided(n), s.obs.decided(n)-before, s.obs.inFlight(n))
	return killed
}

// runUntil lets the writers go on until at least until, and then until
// acks saves (multi of several events) were acknowledged since `since`, or
// atMost after since, or a transaction hangs.
func (s *tortureSession) runUntil(until, since time.Time, acks, multi int, atMost time.Duration) {
	time.Sleep(time.Until(until))
	for time.Since(since) < atMost {
		if all, m := s.obs.ackedSince(since); all >= acks && m >= multi {
			break
		}
		if len(s.hangs.hangs()) > 0 {
			break // saves on those partitions can never be decided
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// finishAndCheck stops the writers that were not killed (no new saves; the
// undecided ones retried for shape.finish), waits for the transactions left
// open to end, and checks every outcome with package invariant. Liveness:
// the cluster was back at back; Appends may fail for settle after it, and
// every save of a writer that was not killed must be decided. story says
// what happened, for the log of the longest silence.
func (s *tortureSession) finishAndCheck(killed map[int]bool, back time.Time, settle time.Duration, story string) {
	t, obs := s.t, s.obs
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, c := range s.children {
		if !killed[c.n] {
			_ = c.stdin.Close()
		}
	}
	stopped := time.Now()
	giveUp := stopped.Add(s.finish)
	t.Logf("new saves stopped at %s", s.since(stopped))
	for _, c := range s.children {
		if killed[c.n] {
			continue
		}
		select {
		case <-c.done:
		case <-time.After(time.Until(giveUp.Add(30 * time.Second))):
			t.Fatalf("writer %d still runs 30s after its give-up time", c.n)
		}
		if c.err != nil {
			t.Errorf("writer %d: %v\n%s", c.n, c.err, c.stderr.String())
		}
	}
	writersDone := time.Since(s.start)

	// Let transactions a killed writer left open be aborted by the broker
	// (transaction timeout), so that the check sees the topic's final state.
	settled := func() (int64, error) {
		hw, err := s.adm.ListEndOffsets(ctx, s.topic)
		if err != nil {
			return 0, err
		}
		lso, err := s.adm.ListCommittedOffsets(ctx, s.topic)
		if err != nil {
			return 0, err
		}
		var open int64
		hw.Each(func(o kadm.ListedOffset) {
			if l, ok := lso.Lookup(o.Topic, o.Partition); ok {
				open += o.Offset - l.Offset
			}
		})
		return open, nil
	}
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		open, err := settled()
		if err == nil && open == 0 || len(s.hangs.hangs()) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("offsets of transactions still open after 45s: %d (%v)", open, err)
			break
		}
	}

	obs.mu.Lock()
	for _, e := range obs.errors {
		t.Error(e)
	}
	var o invariant.Observations
	o.Complete = true // every save's begin line was written before its first Append
	var multiAcked, ackedAfter, multiAfter, freshAcked, retried int
	var undecided []string // saves of the writers that were not killed still undecided at their give-up time
	fresh := map[uuid.UUID]bool{}
	for _, sid := range obs.order {
		sv := obs.saves[sid]
		b := sv.begin
		save := invariant.Save{Aggregate: b.Aggregate, Expected: b.Expected, Save: b.Save, Events: b.Events,
			Source: fmt.Sprintf("writer %d goroutine %d", b.Writer, b.G)}
		if !slices.Contains(s.ids, b.Aggregate) {
			fresh[b.Aggregate] = true
		}
		switch {
		case sv.final == nil || sv.final.Kind == "unknown" || sv.final.Kind == "fatal":
			o.Unknown = append(o.Unknown, save)
			if !killed[b.Writer] {
				last := "no final line"
				if sv.final != nil {
					last = sv.final.Kind + " after " + strconv.Itoa(sv.final.Attempt) + " attempts: " + sv.final.Err
				}
				undecided = append(undecided, fmt.Sprintf("%s: %s", save, last))
			}
		case sv.final.Kind == "ack":
			save.Partition, save.Offsets = sv.final.Partition, sv.final.Offsets
			o.Acked = append(o.Acked, save)
			if len(b.Events) > 1 {
				multiAcked++
			}
			if sv.finalAt.After(back) {
				ackedAfter++
				if len(b.Events) > 1 {
					multiAfter++
				}
			}
			if !slices.Contains(s.ids, b.Aggregate) {
				freshAcked++
			}
		case sv.final.Kind == "conflict":
			o.Conflicted = append(o.Conflicted, save)
		}
		if sv.final != nil && sv.final.Attempt > 1 {
			retried++
		}
	}
	for w := range s.children {
		t.Logf("writer %d: lines %v, counters %v", w, obs.lines[w], obs.stats[w])
	}
	var tl strings.Builder
	for sec := 0; sec <= int(time.Since(s.start)/time.Second); sec++ {
		if m := obs.timeline[sec]; m != nil {
			fmt.Fprintf(&tl, "\n  %3ds: %d acks, %d conflicts, %d retries, %d unknown", sec, m["ack"], m["conflict"], m["retry"], m["unknown"])
		}
	}
	t.Logf("outcomes per second since the writers started:%s", tl.String())
	for e, n := range obs.errKinds {
		t.Logf("%d retries/unknown after: %s", n, e)
	}
	// Once the cluster has been back for a while, an Append may fail only
	// while it waits to read past a transaction a killed writer left open;
	// storing must work again.
	late := map[string]int{}
	for _, r := range obs.retries {
		if r.at.After(back.Add(settle)) && !strings.Contains(r.line.Err, "check the outcome") {
			late[fmt.Sprintf("writer %d: %s", r.line.Writer, errKind(r.line.Err))]++
		}
	}
	for e, n := range late {
		t.Errorf("%d Appends failed more than %s after the cluster was back: %s", n, settle, e)
	}
	obs.mu.Unlock()

	rep, err := invariant.CheckTopic(ctx, s.topic, o, kgo.SeedBrokers(s.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	gap, gapFrom := obs.longestSilence()
	t.Logf("longest time without an acknowledgement: %s from %s (%s)", gap.Round(time.Millisecond), s.since(gapFrom), story)
	t.Logf("writers done at %s, checked at %s (test began %s before the writers)", writersDone.Round(time.Millisecond),
		time.Since(s.start).Round(time.Millisecond), s.start.Sub(s.began).Round(time.Millisecond))
	t.Logf("%d saves: %d acked (%d of several events, %d after the cluster was back of which %d of several events), %d conflicts, %d unknown; "+
		"%d decided after more than one attempt; %d saves acked on %d fresh ids (racing creations)",
		len(obs.order), len(o.Acked), multiAcked, ackedAfter, multiAfter, len(o.Conflicted), len(o.Unknown),
		retried, freshAcked, len(fresh))
	t.Logf("invariant report: %s", rep.String())
	for _, f := range rep.ForeignRecords {
		t.Logf("foreign record: %s", f)
	}
	for i, v := range rep.Violations {
		if i == 50 {
			t.Errorf("... and %d more violations", len(rep.Violations)-i)
			break
		}
		t.Errorf("violation: %s", v)
	}
	if len(o.Conflicted) == 0 || multiAcked == 0 || freshAcked == 0 {
		t.Errorf("the race produced %d conflicts, %d acked multi-event saves and %d acked creations of fresh ids: the test proves little",
			len(o.Conflicted), multiAcked, freshAcked)
	}
	// Liveness: the cluster was back long before the writers gave up, so
	// every save of a writer that was not killed must have been decided,
	// and saves of several events must have succeeded after it was back.
	// Unless the broker left a transaction hanging: then no Append on its
	// partition can complete, whatever snaplog does.
	if h := s.hangs.hangs(); len(h) > 0 {
		for at, who := range h {
			t.Logf("BROKER: a transaction hangs at %s/%s (%s): the partition's last stable offset stays behind it, "+
				"every Append on the partition waits for ever (kafka-transactions.sh find-hanging / abort repairs it)", s.topic, at, who)
		}
		t.Logf("liveness not checked: the broker left %d transactions hanging (%d saves undecided, %d acknowledged after the cluster was back)",
			len(h), len(undecided), ackedAfter)
		return
	}
	if len(undecided) > 0 {
		t.Errorf("%d saves of the writers that were not killed were still undecided %s after the cluster was back:\n%s",
			len(undecided), giveUp.Sub(back).Round(time.Second), strings.Join(undecided, "\n"))
	}
	if ackedAfter == 0 || multiAfter == 0 {
		t.Errorf("%d saves (%d of several events) were acknowledged after the cluster was back", ackedAfter, multiAfter)
	}
}
