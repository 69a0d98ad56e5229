package main

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/snaplog/snaplog/snapshotter"
)

const namespace = "snaplog_snapshotter"

// metrics are the sidecar's Prometheus metrics, in a registry of their own.
// The counters are driven by the snapshotter's hooks; the gauges are read
// from its Stats on each scrape. A partition the instance no longer has (a
// rebalance, or a broker outage that cost it its session) keeps its series
// with their last values, and partition_assigned 0, for keepPartitions, so
// that alerts on them still fire during an outage; its checkpoint age goes
// on growing.
type metrics struct {
	reg *prometheus.Registry

	snapshots     *prometheus.CounterVec // by aggregate type
	checkpoints   *prometheus.CounterVec // by events topic
	applyFailures *prometheus.CounterVec // by events topic
	aborted       prometheus.Counter

	// source is the snapshotter whose Stats the collector reads; nil until
	// watch is called.
	source atomic.Pointer[snapshotter.Snapshotter]
	// read returns the figures of source (replaced in tests), now the clock.
	read func() (snapshotter.Stats, bool, bool)
	now  func() time.Time

	mu   sync.Mutex
	last map[partitionKey]seenPartition // every partition reported within keepPartitions
}

// keepPartitions is how long a partition that is no longer assigned keeps
// its series.
const keepPartitions = 15 * time.Minute

type partitionKey struct {
	topic     string
	partition int32
}

type seenPartition struct {
	stats snapshotter.PartitionStats
	at    time.Time
}

// newMetrics returns the metrics of a sidecar serving types on the events
// topics prefix+type. The counters start at zero for every type, so that
// every series exists from the first scrape.
func newMetrics(types []snapshotter.Type, eventsPrefix string) *metrics {
	m := &metrics{
		now:  time.Now,
		last: make(map[partitionKey]seenPartition),
		reg:  prometheus.NewRegistry(),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "snapshots_written_total",
			Help: "Snapshots committed, by aggregate type.",
		}, []string{"aggregate_type"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "checkpoints_written_total",
			Help: "Checkpoints committed, by events topic.",
		}, []string{"topic"}),
		applyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "apply_failures_total",
			Help: "Events that could not be applied (or records that are not snaplog events), by events topic; their aggregates are no longer snapshotted.",
		}, []string{"topic"}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "transactions_aborted_total",
			Help: "Snapshot transactions aborted: a rebalance, or fenced by a newer generation of the group; with the PostgreSQL store, partition writes fenced by a newer claim.",
		}),
	}
	for _, t := range types {
		m.snapshots.WithLabelValues(t.Name())
		m.checkpoints.WithLabelValues(eventsPrefix + t.Name())
		m.applyFailures.WithLabelValues(eventsPrefix + t.Name())
	}
	b := readBuildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "1, labelled with the binary's version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion},
	})
	build.Set(1)
	m.read = func() (snapshotter.Stats, bool, bool) {
		s := m.source.Load()
		if s == nil {
			return snapshotter.Stats{}, false, false
		}
		return s.Stats(), s.Ready(), true
	}
	m.reg.MustRegister(m.snapshots, m.checkpoints, m.applyFailures, m.aborted, build,
		statsCollector{m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// watch makes the gauges report s.
func (m *metrics) watch(s *snapshotter.Snapshotter) { m.source.Store(s) }

// hooks returns the snapshotter hooks that drive the counters.
func (m *metrics) hooks() snapshotter.Hooks {
	return snapshotter.Hooks{
		SnapshotsWritten: func(aggregateType string, n int) {
			m.snapshots.WithLabelValues(aggregateType).Add(float64(n))
		},
		CheckpointWritten: func(topic string, _ int32, _ int64) {
			m.checkpoints.WithLabelValues(topic).Inc()
		},
		ApplyFailed: func(topic string, _ int32, _ int64, _ uuid.UUID, _ error) {
			m.applyFailures.WithLabelValues(topic).Inc()
		},
		Aborted: func(error) { m.aborted.Inc() },
	}
}

var (
	partitionLabels = []string{"topic", "partition"}

	descLag = prometheus.NewDesc(namespace+"_lag_records",
		"Records of the events partition from the next one to process up to its high watermark as last fetched; transaction markers count, so a caught-up partition whose last record is one shows 1.", partitionLabels, nil)
	descCheckpointAge = prometheus.NewDesc(namespace+"_checkpoint_age_seconds",
		"Time since the partition's last checkpoint was written, while records processed since are waiting for the next one (0 on a caught-up partition with none: an idle partition's checkpoint is not stale); loads read at most the records written since.", partitionLabels, nil)
	descAssigned = prometheus.NewDesc(namespace+"_partition_assigned",
		"1 while the partition is assigned to this instance; 0 for up to 15 minutes after it was last (its other series then keep their last values, the checkpoint age growing).", partitionLabels, nil)
	descCheckpointOffset = prometheus.NewDesc(namespace+"_checkpoint_offset",
		"Offset of the partition's last checkpoint.", partitionLabels, nil)
	descAfterCheckpoint = prometheus.NewDesc(namespace+"_records_after_checkpoint",
		"Records of the partition processed since its last checkpoint (markers count): 0 on an idle partition.", partitionLabels, nil)
	descRestore = prometheus.NewDesc(namespace+"_restore_seconds",
		"Time the restore of the partition's snapshots and checkpoint took when it was assigned.", partitionLabels, nil)
	descDirty = prometheus.NewDesc(namespace+"_dirty_states",
		"Aggregate states of the partition with events not yet in a snapshot.", partitionLabels, nil)
	descUnsnapshotted = prometheus.NewDesc(namespace+"_unsnapshotted_aggregates",
		"Aggregates of the partition that are no longer snapshotted because an event of theirs could not be applied.", partitionLabels, nil)
	descStates = prometheus.NewDesc(namespace+"_states",
		"Aggregate states held in memory.", nil, nil)
	descPartitions = prometheus.NewDesc(namespace+"_assigned_partitions",
		"Events partitions assigned to this instance.", nil, nil)
	descReady = prometheus.NewDesc(namespace+"_ready",
		"1 when the snapshotter has joined its group and restored every partition assigned to it.", nil, nil)
	descEvents = prometheus.NewDesc(namespace+"_events_applied_total",
		"Events applied to aggregate states.", nil, nil)
	descReplays = prometheus.NewDesc(namespace+"_replays_total",
		"Aggregates rebuilt from the log for want of a usable snapshot.", nil, nil)
)

// statsCollector reports the snapshotter's Stats at each scrape.
type statsCollector struct{ m *metrics }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descCheckpointAge, descAssigned, descCheckpointOffset, descAfterCheckpoint, descRestore, descDirty,
		descUnsnapshotted, descStates, descPartitions, descReady, descEvents, descReplays} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	st, isReady, ok := c.m.read()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	now := c.m.now()
	c.m.mu.Lock()
	current := make(map[partitionKey]bool, len(st.Partitions))
	for _, p := range st.Partitions {
		k := partitionKey{p.Topic, p.Partition}
		c.m.last[k], current[k] = seenPartition{p, now}, true
	}
	for k, seen := range c.m.last {
		since := now.Sub(seen.at)
		if since > keepPartitions {
			delete(c.m.last, k)
			continue
		}
		p, part, assigned := seen.stats, strconv.Itoa(int(k.partition)), 0.0
		if current[k] {
			assigned = 1
		}
		gauge(descAssigned, assigned, p.Topic, part)
		gauge(descLag, float64(p.Lag), p.Topic, part)
		if p.Checkpoint >= 0 {
			after := max(0, p.Next-p.Checkpoint)
			age := p.CheckpointAge + since
			if after == 0 && p.Lag == 0 {
				age = 0 // idle and caught up: nothing waits for a checkpoint
			}
			gauge(descCheckpointAge, age.Seconds(), p.Topic, part)
			gauge(descCheckpointOffset, float64(p.Checkpoint), p.Topic, part)
			gauge(descAfterCheckpoint, float64(after), p.Topic, part)
		}
		gauge(descRestore, p.RestoreTime.Seconds(), p.Topic, part)
		gauge(descDirty, float64(p.Dirty), p.Topic, part)
		gauge(descUnsnapshotted, float64(p.Unsnapshotted), p.Topic, part)
	}
	c.m.mu.Unlock()
	gauge(descStates, float64(st.States))
	gauge(descPartitions, float64(len(st.Partitions)))
	ready := 0.0
	if isReady {
		ready = 1
	}
	gauge(descReady, ready)
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(st.EventsApplied))
	ch <- prometheus.MustNewConstMetric(descReplays, prometheus.CounterValue, float64(st.Replays))
}
