package snapshotter_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/internal/kread"
	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// Environment of a snapshotter child process (see TestMain).
const (
	childGroup  = "SNAPLOG_TEST_CHILD_GROUP"
	childEvents = "SNAPLOG_TEST_CHILD_EVENTS"
	childSnaps  = "SNAPLOG_TEST_CHILD_SNAPSHOTS"
	// childSchema, when set, makes the child keep its snapshots in this
	// PostgreSQL schema (WithPostgres) of the server pgtest names.
	childSchema = "SNAPLOG_TEST_CHILD_POSTGRES_SCHEMA"
)

// TestMain runs the test binary as a snapshotter process when a test starts
// it as a child: the crash and zombie tests kill and stop real processes.
func TestMain(m *testing.M) {
	if group := os.Getenv(childGroup); group != "" {
		os.Exit(runChild(group))
	}
	os.Exit(m.Run())
}

func runChild(group string) int {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var t testing.T // accountType only reports registry errors, which do not happen
	opts := []snapshotter.Option{
		snapshotter.KafkaClient(kgo.SeedBrokers(strings.Split(os.Getenv(kafkatest.EnvBrokers), ",")...),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond), kgo.RebalanceTimeout(10*time.Second)),
		snapshotter.WithEventsTopicPrefix(os.Getenv(childEvents)),
		snapshotter.WithThreshold(10), snapshotter.WithCheckpointInterval(300 * time.Millisecond),
		snapshotter.WithLogger(logger),
	}
	if schema := os.Getenv(childSchema); schema != "" {
		pool, err := pgxpool.New(context.Background(), os.Getenv(pgtest.EnvURL))
		if err != nil {
			logger.Error("postgres", slog.Any("error", err))
			return 2
		}
		defer pool.Close()
		opts = append(opts, snapshotter.WithPostgres(pool, snapshots.WithPostgresSchema(schema)))
	} else {
		opts = append(opts, snapshotter.WithSnapshotsTopicPrefix(os.Getenv(childSnaps)), snapshotter.WithReplicationFactor(1))
	}
	s, err := snapshotter.New(group, []snapshotter.Type{snapshotter.Register(accountType(&t))}, opts...)
	if err != nil {
		logger.Error("new", slog.Any("error", err))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := s.Run(ctx); err != nil {
		logger.Error("run", slog.Any("error", err))
		return 1
	}
	return 0
}

// child is a snapshotter running in another process.
type child struct {
	cmd     *exec.Cmd
	aborted atomic.Int64 // "transaction aborted" lines it logged
	fenced  atomic.Int64 // "partition fenced" lines it logged
	done    chan struct{}
}

func (e *env) startChild(t *testing.T) *child {
	t.Helper()
	return e.startChildOn(t, "")
}

// startChildOn starts a child that keeps its snapshots in the PostgreSQL
// schema, or in the snapshot topics if it is "".
func (e *env) startChildOn(t *testing.T, schema string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childGroup+"="+e.group, childEvents+"="+e.events, childSnaps+"="+e.snaps,
		kafkatest.EnvBrokers+"="+strings.Join(kafkatest.Brokers(t), ","), childSchema+"="+schema)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "transaction aborted") {
				c.aborted.Add(1)
			}
			if strings.Contains(sc.Text(), "partition fenced") {
				c.fenced.Add(1)
			}
			if strings.Contains(sc.Text(), `"level":"ERROR"`) {
				t.Logf("child %d: %s", cmd.Process.Pid, sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

// traffic writes deposits to the accounts until stop is called.
func traffic(t *testing.T, e *env, accounts []uuid.UUID) (stop func()) {
	repo := e.repo(t)
	var halt atomic.Bool
	var wg sync.WaitGroup
	for _, id := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !halt.Load(); i++ {
				a, err := repo.Load(ctxT(t), id)
				if errors.Is(err, aggregate.ErrNotFound) {
					a, err = repo.New(id), nil
				}
				if err != nil {
					t.Error(err)
					return
				}
				for k := 0; k < 1+i%3; k++ {
					_ = a.Apply(Deposited{Amount: int64(k + 1)})
				}
				if err := repo.Save(ctxT(t), a); err != nil && !errors.Is(err, aggregate.ErrConflict) {
					t.Error(err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return func() { halt.Store(true); wg.Wait() }
}

// topicCaughtUp waits until every partition's checkpoint, as read from the
// snapshot topic, has nothing but transaction markers after it.
func topicCaughtUp(t *testing.T, e *env, d time.Duration) {
	t.Helper()
	probe := map[int32]uuid.UUID{}
	for int32(len(probe)) < e.partitions {
		id := uuid.New()
		probe[log.Partition(id, e.partitions)] = id
	}
	store := e.store(t)
	waitFor(t, "the snapshot topic's checkpoints at the end of the log", d, func() bool {
		if err := store.Caught(ctxT(t)); err != nil {
			return false
		}
		for p, id := range probe {
			cp, err := store.CheckpointOf(ctxT(t), "Account", id)
			if err != nil || cp.EventsPartition != p {
				return false
			}
			tail, err := e.log.Read(ctxT(t), "Account", id, cp.Offset)
			if err != nil || tail.Scanned != 0 {
				return false
			}
		}
		return true
	})
}

// verifyTopic reads the events and snapshot topics whole and checks that no
// aggregate's snapshots go back to a lower version, and that no checkpoint
// claims more than the snapshots before it give: every aggregate with events
// before a checkpoint's offset (and not listed as unsnapshotted) has, before
// the checkpoint record, a snapshot of at least its version at that offset.
func verifyTopic(t *testing.T, e *env) (snaps, checkpoints int) {
	t.Helper()
	cl := kafkatest.Client(t)
	rd := kread.NewReader(cl)
	codec := snapshots.NewAvroCodec()
	if err := codec.Register("Account", accountSchema); err != nil {
		t.Fatal(err)
	}
	evTopic, err := kread.Describe(ctxT(t), cl, e.events+"Account")
	if err != nil {
		t.Fatal(err)
	}
	snTopic, err := kread.Describe(ctxT(t), cl, e.snaps+"Account")
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < e.partitions; p++ {
		history := readHistory(t, rd, evTopic, p)
		best := map[uuid.UUID]int64{}
		if _, _, err := rd.ScanOne(ctxT(t), snTopic, p, 0, -1, func(r *kgo.Record) error {
			if snapshots.IsCheckpointKey(r.Key) {
				cp, err := snapshots.DecodeCheckpoint(r.Value)
				if err != nil {
					return fmt.Errorf("checkpoint at %d: %w", r.Offset, err)
				}
				checkpoints++
				for id := range history {
					if v := history.before(id, cp.Offset); v > 0 && cp.Covers(id) && best[id] < v {
						return fmt.Errorf("checkpoint %d@%d (snapshot record %d) overstates: %s is at version %d before it, its snapshots reach %d",
							cp.EventsPartition, cp.Offset, r.Offset, id, v, best[id])
					}
				}
				return nil
			}
			snap, err := codec.Decode(r.Value)
			if err != nil {
				return fmt.Errorf("snapshot record %d: %w", r.Offset, err)
			}
			snaps++
			if snap.Version < best[snap.AggregateID] {
				return fmt.Errorf("snapshot of %s went back from version %d to %d at %d", snap.AggregateID, best[snap.AggregateID], snap.Version, r.Offset)
			}
			best[snap.AggregateID] = snap.Version
			return nil
		}); err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	return snaps, checkpoints
}

// history is the versions an events partition's aggregates reached, by
// the winner rule (log.Sequencer), with the offsets they reached them at.
type history map[uuid.UUID][]struct{ offset, version int64 }

// before returns the aggregate's version before offset c.
func (h history) before(id uuid.UUID, c int64) int64 {
	var v int64
	for _, s := range h[id] {
		if s.offset < c {
			v = s.version
		}
	}
	return v
}

// readHistory reads partition p of the events topic whole.
func readHistory(t testing.TB, rd *kread.Reader, evTopic *kread.Topic, p int32) history {
	t.Helper()
	h := history{}
	seqs := map[uuid.UUID]*log.Sequencer{}
	if _, _, err := rd.ScanOne(ctxT(t), evTopic, p, 0, -1, func(r *kgo.Record) error {
		ev, err := log.FromRecord(r)
		if err != nil {
			return nil
		}
		sq := seqs[ev.AggregateID]
		if sq == nil {
			sq = &log.Sequencer{}
			seqs[ev.AggregateID] = sq
		}
		if out, evs := sq.Next(ev); out == log.Accepted {
			h[ev.AggregateID] = append(h[ev.AggregateID], struct{ offset, version int64 }{r.Offset, evs[len(evs)-1].AggregateVersion})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestCrash: kill -9 the snapshotter mid-stream and start another: no
// snapshot regresses, no checkpoint overstates what is snapshotted, every
// load stays correct and bounded.
func TestCrash(t *testing.T) {
	e := newEnv(t, 3)
	first := e.startChild(t)
	accounts := ids(12)
	stop := traffic(t, e, accounts)
	time.Sleep(3 * time.Second)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done
	time.Sleep(time.Second)
	second := e.startChild(t)
	time.Sleep(3 * time.Second)
	stop()
	topicCaughtUp(t, e, 2*time.Minute)
	snaps, cps := verifyTopic(t, e)
	maxRead := checkLoads(t, e, accounts)
	t.Logf("%d snapshots and %d checkpoints verified; loads read at most %d records", snaps, cps, maxRead)
	_ = second.cmd.Process.Signal(syscall.SIGTERM)
	<-second.done
	if code := second.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the snapshotter exited with %d on SIGTERM", code)
	}
}

// TestFailover: two snapshotters share the partitions; kill -9 one, and
// the other takes its partitions over within about the session timeout
// (6 s here, kgo.SessionTimeout; the sidecar's -session-timeout), not the
// 45 s default: every partition's checkpoint reaches the end of the log
// soon after, and nothing regresses.
func TestFailover(t *testing.T) {
	e := newEnv(t, 3)
	victim := e.startChild(t)
	survivor := e.startChild(t)
	accounts := ids(12)
	stop := traffic(t, e, accounts)
	time.Sleep(4 * time.Second) // both members hold partitions, checkpointing
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-victim.done
	time.Sleep(time.Second)
	stop()
	topicCaughtUp(t, e, time.Minute)
	took := time.Since(killed)
	t.Logf("every partition checkpointed to the end of the log %v after the kill", took.Round(100*time.Millisecond))
	if took > 25*time.Second {
		t.Errorf("the survivor took %v to checkpoint the killed member's partitions; the session timeout is 6 s", took)
	}
	snaps, cps := verifyTopic(t, e)
	maxRead := checkLoads(t, e, accounts)
	t.Logf("%d snapshots and %d checkpoints verified; loads read at most %d records", snaps, cps, maxRead)
	_ = survivor.cmd.Process.Signal(syscall.SIGTERM)
	<-survivor.done
}

// TestZombie: a snapshotter paused (SIGSTOP) until another took its
// partitions, then resumed, cannot write: its transactions are fenced, and
// nothing regresses.
func TestZombie(t *testing.T) {
	e := newEnv(t, 3)
	zombie := e.startChild(t)
	accounts := ids(12)
	stop := traffic(t, e, accounts)
	time.Sleep(3 * time.Second)
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	e.startChild(t)
	time.Sleep(12 * time.Second) // past the paused member's session timeout: the new one takes every partition
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	stop()
	topicCaughtUp(t, e, 2*time.Minute)
	snaps, cps := verifyTopic(t, e)
	checkLoads(t, e, accounts)
	t.Logf("%d snapshots and %d checkpoints verified; the resumed snapshotter had %d transactions aborted", snaps, cps, zombie.aborted.Load())
}
