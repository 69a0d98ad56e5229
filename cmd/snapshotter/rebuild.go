package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshotter"
)

const (
	// rebuildCheckEvery is how often rebuild looks at the snapshotter's
	// progress, and rebuildPrintEvery how often it prints it.
	rebuildCheckEvery = 200 * time.Millisecond
	rebuildPrintEvery = time.Second
	// rebuildStalled is how long a partition's next offset must stay below
	// its end before rebuild reads the rest of the partition to see whether
	// it holds data records at all, or only transaction markers. A partition
	// within rebuildNearEnd records of its end is read at once.
	rebuildStalled = 2 * time.Second
	rebuildNearEnd = 64
	// rebuildRateWindow is the span of the rate and ETA estimates.
	rebuildRateWindow = 5 * time.Second
)

// rebuild recomputes every snapshot of aggregate type t from its events: it
// runs the snapshotter with snapshotter.FromScratch in the sidecars' group
// until it has processed every events partition up to its end as of the
// start, printing a progress line to stderr every second, then stops it,
// which writes the last snapshots and the checkpoints. It refuses to start
// while the group has members: the sidecars must be stopped. With the
// PostgreSQL store it writes as the sidecars do, under the claims it takes
// of the partitions, which fence every earlier claim, and overwrites the
// snapshots of the same versions (the version guard lets an equal version
// replace a row).
func rebuild(ctx context.Context, cfg config, t snapshotter.Type, logger *slog.Logger, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "snapshotter rebuild: %v\n", err)
		return exitError
	}
	cl, err := kgo.NewClient(cfg.KafkaOpts...)
	if err != nil {
		return fail(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var pool *pgxpool.Pool // the PostgreSQL store's
	if cfg.SnapshotStore == storePostgres {
		if pool, err = cfg.Postgres.pool(ctx); err != nil {
			return fail(err)
		}
		defer pool.Close()
		if err := cfg.Postgres.ready(ctx, pool); err != nil {
			return fail(err)
		}
	}
	if err := groupIdle(ctx, adm, cfg.Group); err != nil {
		return fail(err)
	}
	topic := cfg.EventsPrefix + t.Name()
	rg, err := listRange(ctx, adm, topic)
	if err != nil {
		return fail(err)
	}
	events, err := log.NewKafka(log.KafkaClient(cfg.KafkaOpts...), log.WithTopicPrefix(cfg.EventsPrefix),
		log.WithAutoCreateTopics(false), log.WithLogger(logger))
	if err != nil {
		return fail(err)
	}
	defer events.Close()
	// A topic whose partition count changed cannot be rebuilt (I9).
	if err := events.CheckPlacement(ctx, t.Name()); err != nil {
		return fail(err)
	}
	rg.noDataFrom = func(ctx context.Context, p int32, from int64) (bool, error) {
		tail, err := events.Read(ctx, t.Name(), rg.probes[p], from)
		return err == nil && tail.Scanned == 0, err
	}

	var snaps, checkpoints int // written by Run's goroutine, read once it returned
	hooks := snapshotter.Hooks{
		SnapshotsWritten:  func(_ string, n int) { snaps += n },
		CheckpointWritten: func(string, int32, int64) { checkpoints++ },
	}
	s, err := snapshotter.New(cfg.Group, []snapshotter.Type{t}, append(cfg.options(logger, hooks, pool), snapshotter.FromScratch())...)
	if err != nil {
		return fail(err)
	}
	// Ending Run's context, on ctx's end or once caught up, stops it: it
	// ends its transaction in flight, writes the last snapshots and the
	// checkpoints, and returns.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()

	start := time.Now()
	prog := progress{name: t.Name(), total: rg.total()}
	prog.add(start, 0)
	fmt.Fprintln(stderr, prog.line())
	lastPrint := start
	tick := time.NewTicker(rebuildCheckEvery)
	defer tick.Stop()
	for caught := false; !caught; {
		select {
		case err := <-ran:
			switch {
			case err != nil:
				return fail(cfg.Postgres.migrateHint(err))
			case ctx.Err() != nil:
				return fail(fmt.Errorf("interrupted at %d of %d events; the snapshots and checkpoints written so far stay", prog.done, prog.total))
			}
			return fail(errors.New("the snapshotter stopped before it caught up"))
		case now := <-tick.C:
			var done int64
			caught, done, err = rg.caughtUp(ctx, s.Stats(), now)
			if err != nil {
				logger.Warn("rebuild: read the rest of a partition", slog.Any("error", err))
			}
			prog.add(now, done)
			if now.Sub(lastPrint) >= rebuildPrintEvery {
				fmt.Fprintln(stderr, prog.line())
				lastPrint = now
			}
		}
	}
	// Stopping writes the snapshots still due and every partition's
	// checkpoint.
	stop()
	if err := <-ran; err != nil {
		return fail(err)
	}
	prog.add(time.Now(), prog.total)
	fmt.Fprintln(stderr, prog.line())
	took := time.Since(start)
	fmt.Fprintf(stderr, "snapshotter rebuild: %s rebuilt from %d events in %s (%.0f events/s): %d snapshots and %d checkpoints written\n",
		t.Name(), prog.total, took.Round(time.Millisecond), float64(prog.total)/took.Seconds(), snaps, checkpoints)
	return exitOK
}

// groupIdle returns an error when the consumer group has members: the
// sidecars, which must be stopped during a rebuild.
func groupIdle(ctx context.Context, adm *kadm.Client, group string) error {
	members, err := groupMembers(ctx, adm, group)
	if err != nil {
		return err
	}
	if len(members) > 0 {
		hosts := make([]string, len(members))
		for i, m := range members {
			hosts[i] = m.ClientID + "@" + m.ClientHost
		}
		return fmt.Errorf("group %s has %d members (%s): stop the sidecars of the group before rebuilding",
			group, len(members), strings.Join(hosts, ", "))
	}
	return nil
}

// groupAttempts bounds the DescribeGroups requests of groupMembers, half a
// second apart.
const groupAttempts = 20

// groupMembers returns the members of the consumer group: none when the
// group does not exist.
func groupMembers(ctx context.Context, adm *kadm.Client, group string) ([]kadm.DescribedGroupMember, error) {
	var (
		described kadm.DescribedGroups
		err       error
	)
	// A cluster just started, or whose coordinator moves, answers with a
	// retriable error (COORDINATOR_NOT_AVAILABLE and the like) for a while.
	for attempt := 0; ; attempt++ {
		described, err = adm.DescribeGroups(ctx, group)
		if err == nil {
			if g, ok := described[group]; ok && kerr.IsRetriable(g.Err) {
				err = g.Err
			}
		}
		var ke *kerr.Error
		if err == nil || !errors.As(err, &ke) || !ke.Retriable || attempt == groupAttempts-1 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	g, ok := described[group]
	if !ok || errors.Is(g.Err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	if g.Err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, g.Err)
	}
	return g.Members, nil
}

// rebuildRange is the part of an events topic that a rebuild covers: each
// partition from its start to its end as of the start of the rebuild.
type rebuildRange struct {
	topic      string
	start, end map[int32]int64
	probes     map[int32]uuid.UUID // an aggregate id of each partition, for reads
	// noDataFrom reports whether partition p holds no data record (only
	// transaction markers, or records of aborted transactions) from offset
	// from on.
	noDataFrom func(ctx context.Context, p int32, from int64) (bool, error)

	next     map[int32]int64 // the partitions' next offsets at the last check
	moved    map[int32]time.Time
	finished map[int32]bool
}

// listRange reads the start and end offsets of topic's partitions.
func listRange(ctx context.Context, adm *kadm.Client, topic string) (*rebuildRange, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("events topic %s: start offsets: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("events topic %s: end offsets: %w", topic, err)
	}
	rg := &rebuildRange{topic: topic, start: map[int32]int64{}, end: map[int32]int64{},
		next: map[int32]int64{}, moved: map[int32]time.Time{}, finished: map[int32]bool{}}
	starts.Each(func(o kadm.ListedOffset) { rg.start[o.Partition] = o.Offset })
	ends.Each(func(o kadm.ListedOffset) { rg.end[o.Partition] = o.Offset })
	n := int32(len(rg.end))
	if n == 0 {
		return nil, fmt.Errorf("events topic %s: no partitions", topic)
	}
	rg.probes = probeIDs(n)
	return rg, nil
}

// probeIDs returns an aggregate id of each partition of a topic of n
// partitions, for the reads and checkpoints of a partition.
func probeIDs(n int32) map[int32]uuid.UUID {
	ids := make(map[int32]uuid.UUID, n)
	for int32(len(ids)) < n {
		id := uuid.New()
		ids[log.Partition(id, n)] = id
	}
	return ids
}

func (rg *rebuildRange) total() int64 {
	var n int64
	for p, end := range rg.end {
		n += max(0, end-rg.start[p])
	}
	return n
}

// caughtUp reports whether the snapshotter whose figures are st has
// processed every partition of the range, and how many of the range's
// offsets it has processed. A partition is processed when its next offset
// reached its end, or when no data record follows its next offset: the
// records left are transaction markers (the last record of a partition
// often is one), or belong to aborted or still open transactions, which the
// snapshotter never gets.
func (rg *rebuildRange) caughtUp(ctx context.Context, st snapshotter.Stats, now time.Time) (bool, int64, error) {
	caught := true
	var done int64
	var errs []error
	for p, end := range rg.end {
		start := rg.start[p]
		if rg.finished[p] {
			done += end - start
			continue
		}
		i := slices.IndexFunc(st.Partitions, func(ps snapshotter.PartitionStats) bool {
			return ps.Topic == rg.topic && ps.Partition == p
		})
		if i < 0 {
			caught = false // not assigned yet
			continue
		}
		next := st.Partitions[i].Next
		if next >= end {
			rg.finished[p] = true
			done += end - start
			continue
		}
		done += max(0, next-start)
		if prev, seen := rg.next[p]; !seen || prev != next {
			rg.next[p], rg.moved[p] = next, now
		}
		if end-next <= rebuildNearEnd || now.Sub(rg.moved[p]) >= rebuildStalled {
			rg.moved[p] = now // read again at most every rebuildStalled
			empty, err := rg.noDataFrom(ctx, p, next)
			if err != nil {
				errs = append(errs, err)
			}
			if empty {
				rg.finished[p] = true
				done += end - next
				continue
			}
		}
		caught = false
	}
	return caught, done, errors.Join(errs...)
}

// progress is a rebuild's progress: offsets processed of a total, with
// the samples of the last rebuildRateWindow for the rate.
type progress struct {
	name        string
	total, done int64
	samples     []sample
}

type sample struct {
	at   time.Time
	done int64
}

func (p *progress) add(at time.Time, done int64) {
	p.done = min(done, p.total)
	p.samples = append(p.samples, sample{at, p.done})
	cut := 0
	for cut < len(p.samples)-2 && at.Sub(p.samples[cut+1].at) >= rebuildRateWindow {
		cut++
	}
	p.samples = p.samples[cut:]
}

// rate returns the events processed per second over the samples.
func (p *progress) rate() float64 {
	if len(p.samples) < 2 {
		return 0
	}
	first, last := p.samples[0], p.samples[len(p.samples)-1]
	if d := last.at.Sub(first.at).Seconds(); d > 0 {
		return float64(last.done-first.done) / d
	}
	return 0
}

// line is the progress line printed every second.
func (p *progress) line() string {
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	rate := p.rate()
	eta := "unknown"
	switch {
	case p.done >= p.total:
		eta = "0s"
	case rate > 0:
		eta = (time.Duration(float64(p.total-p.done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("rebuild %s: %d/%d events (%.1f%%), %.0f events/s, ETA %s", p.name, p.done, p.total, pct, rate, eta)
}
