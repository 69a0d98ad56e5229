package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/internal/securetest"
	"github.com/snaplog/snaplog/kafkaconn"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/schemas"
	"github.com/snaplog/snaplog/snapshots"
)

// Parts of the expected output that change from run to run. Each line of
// testdata/expected.txt is turned into a regular expression: its literal
// text quoted, and each variable part replaced by the pattern of what the
// program may print there. Every other character, and so every version,
// count and name, must match exactly.
var variableParts = []struct {
	sample  string // how the part appears in expected.txt
	pattern string // what the program may print
}{
	// Ids.
	{`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`, uuidPattern},
	// eventsource-py's documented output elides product ids; the program
	// prints them.
	{`'\.\.\.'`, `'` + uuidPattern + `'`},
	// Python's str(datetime) omits a zero fraction.
	{`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00`, `\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00`},
	// Load times.
	{`\d+\.\d\dms`, `\d+\.\d\dms`},
	// The improvement is negative when loads from the snapshot are slower.
	{`\d+\.\d%`, `-?\d+\.\d%`},
}

const uuidPattern = `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`

var variableRE = func() *regexp.Regexp {
	alts := make([]string, len(variableParts))
	for i, v := range variableParts {
		alts[i] = "(" + v.sample + ")"
	}
	return regexp.MustCompile(strings.Join(alts, "|"))
}()

// linePattern returns the regular expression that a line of output must
// match where expected.txt has want.
func linePattern(want string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, m := range variableRE.FindAllStringSubmatchIndex(want, -1) {
		b.WriteString(regexp.QuoteMeta(want[last:m[0]]))
		for i := range variableParts {
			if m[2+2*i] >= 0 {
				b.WriteString("(?:" + variableParts[i].pattern + ")")
				break
			}
		}
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(want[last:]))
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// checkOutput compares the program's output with testdata/expected.txt,
// line by line.
func checkOutput(t *testing.T, output string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	want, got := lines(string(raw)), lines(output)
	for i := range max(len(want), len(got)) {
		switch {
		case i >= len(got):
			t.Errorf("line %d: missing, want %q", i+1, want[i])
		case i >= len(want):
			t.Errorf("line %d: unexpected %q", i+1, got[i])
		case !linePattern(want[i]).MatchString(got[i]):
			t.Errorf("line %d:\n got %q\nwant %q", i+1, got[i], want[i])
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", output)
	}

	// The snapshot inspected is of the order whose state it holds.
	aggID := valueAfter(got, "  Aggregate ID: ")
	if orderID := valueAfter(got, "  order_id: "); aggID == "" || aggID != orderID {
		t.Errorf("inspection: aggregate id %q, state order_id %q", aggID, orderID)
	}
}

// runArgs runs the program with the command line args and returns what it
// wrote to standard output and to standard error.
func runArgs(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, info bytes.Buffer
	if err := runWith(ctx, &out, &info, cfg); err != nil {
		t.Fatalf("run %q: %v\nstderr:\n%s\noutput so far:\n%s", args, err, info.String(), out.String())
	}
	return out.String(), info.String()
}

func TestOutput(t *testing.T) {
	out, info := runArgs(t)
	checkOutput(t, out)
	if want := "snapshotting: on the in-memory event log and snapshot store\n"; info != want {
		t.Errorf("stderr %q, want %q", info, want)
	}
}

// The six scenarios on franz-go's in-process broker, kfake, with the
// Kafka event log and snapshot store print what they print in memory.
func TestOutputEmbedded(t *testing.T) {
	out, info := runArgs(t, "-brokers", "embedded")
	checkOutput(t, out)
	backend := regexp.MustCompile(`^snapshotting: on an embedded Kafka-protocol broker \(kfake\) at 127\.0\.0\.1:\d+ \(topics snaplog\.example\.[0-9a-f]{8}\.\*\)\n$`)
	if !backend.MatchString(info) {
		t.Errorf("stderr %q, want a match of %s", info, backend)
	}
}

// With -prefix on the embedded broker every scenario runs on the same two
// topics and prints what it prints in memory.
func TestOutputEmbeddedPrefix(t *testing.T) {
	out, info := runArgs(t, "-brokers", "embedded", "-prefix", "shared.")
	checkOutput(t, out)
	backend := regexp.MustCompile(`^snapshotting: on an embedded Kafka-protocol broker \(kfake\) at 127\.0\.0\.1:\d+ \(topics shared\.events\.Order and shared\.snapshots\.Order, shared by the scenarios\)\n$`)
	if !backend.MatchString(info) {
		t.Errorf("stderr %q, want a match of %s", info, backend)
	}
}

// kafkaRun matches what the program writes to standard error on a Kafka
// cluster; the group is the run's topic prefix.
var kafkaRun = regexp.MustCompile(`^snapshotting: on Kafka at \S+ \(topics (snaplog\.example\.[0-9a-f]{8}\.)\*\)\n`)

// runTopics returns the topics of the cluster whose names start with
// prefix.
func runTopics(t *testing.T, adm *kadm.Client, prefix string) kadm.TopicDetails {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := kadm.TopicDetails{}
	for name, d := range all {
		if strings.HasPrefix(name, prefix) {
			run[name] = d
		}
	}
	return run
}

// checkTopicsDeleted checks that the cluster has no topic whose name
// starts with prefix.
func checkTopicsDeleted(t *testing.T, prefix string) {
	t.Helper()
	// A deleted topic may linger in the broker's metadata for a moment.
	adm := kafkatest.Admin(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := runTopics(t, adm, prefix)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topics left behind: %v", left.Names())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// postgresSnapshots is the end of the line that names the backend when the
// snapshots are in PostgreSQL; the group is the run's schema prefix.
const postgresSnapshots = `, snapshots in PostgreSQL \(schemas (snaplog_example_[0-9a-f]{8})_\*\)\n`

// What the program writes to standard error first with -postgres, alone
// and with -brokers; the last group is the run's schema prefix, the first
// on Kafka the run's topic prefix.
var (
	memoryPostgresRun = regexp.MustCompile(`^snapshotting: on the in-memory event log` + postgresSnapshots)
	kafkaPostgresRun  = regexp.MustCompile(`^snapshotting: on Kafka at \S+ \(topics (snaplog\.example\.[0-9a-f]{8}\.)\*\)` + postgresSnapshots)
)

// checkSchemasDropped checks that no schema whose name starts with
// prefix+"_" is left.
func checkSchemasDropped(t *testing.T, prefix string) {
	t.Helper()
	var left int
	if err := pgtest.Pool(t).QueryRow(context.Background(),
		"SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE $1", prefix+"_%").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d of the run's schemas left behind: %v", left, err)
	}
}

// The six scenarios on a real broker print what they print in memory, and
// the run deletes its topics.
func TestOutputKafka(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	out, info := runArgs(t, "-brokers", strings.Join(brokers, ","))
	checkOutput(t, out)
	m := kafkaRun.FindStringSubmatch(info)
	if m == nil || len(info) != len(m[0]) {
		t.Fatalf("stderr %q, want one match of %s", info, kafkaRun)
	}
	checkTopicsDeleted(t, m[1])
}

// TestOutputPostgres: with -postgres the scenarios keep their snapshots in
// PostgreSQL and print what they print on every backend; the run's schemas
// are dropped at the end.
func TestOutputPostgres(t *testing.T) {
	url := pgtest.URL(t)
	out, info := runArgs(t, "-postgres", url)
	checkOutput(t, out)
	m := memoryPostgresRun.FindStringSubmatch(info)
	if m == nil || len(info) != len(m[0]) {
		t.Fatalf("stderr %q, want one match of %s", info, memoryPostgresRun)
	}
	checkSchemasDropped(t, m[1])
}

// TestOutputKafkaPostgres: with -brokers and -postgres the scenarios keep
// their events on Kafka and their snapshots in PostgreSQL, as
// eventsource-py's production setup does, and print what they print on
// every backend; the run deletes its topics and drops its schemas.
func TestOutputKafkaPostgres(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	url := pgtest.URL(t)
	out, info := runArgs(t, "-brokers", strings.Join(brokers, ","), "-postgres", url)
	checkOutput(t, out)
	m := kafkaPostgresRun.FindStringSubmatch(info)
	if m == nil || len(info) != len(m[0]) {
		t.Fatalf("stderr %q, want one match of %s", info, kafkaPostgresRun)
	}
	checkSchemasDropped(t, m[2])
	checkTopicsDeleted(t, m[1])
}

// With -brokers, -postgres and -keep the run keeps an events topic per
// scenario and no snapshot topic: the snapshots were in PostgreSQL, whose
// schemas the run drops.
func TestKafkaPostgresKeep(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	url := pgtest.URL(t)
	out, info := runArgs(t, "-brokers", strings.Join(brokers, ","), "-postgres", url, "-keep")
	checkOutput(t, out)
	m := kafkaPostgresRun.FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("stderr %q, want a match of %s", info, kafkaPostgresRun)
	}
	var want []string
	for i := 1; i <= len(scenarios); i++ {
		want = append(want, fmt.Sprintf("%ss%d.events.%s", m[1], i, order.TypeName))
	}
	kafkatest.DeleteTopicsOnCleanup(t, want...)
	checkSchemasDropped(t, m[2])
	if wantInfo := fmt.Sprintf("snapshotting: kept the run's %d topics %s*\n", len(want), m[1]); info[len(m[0]):] != wantInfo {
		t.Errorf("stderr after the first line %q, want %q", info[len(m[0]):], wantInfo)
	}
	slices.Sort(want)
	if got := runTopics(t, kafkatest.Admin(t), m[1]).Names(); !slices.Equal(got, want) {
		t.Fatalf("kept topics %v, want %v", got, want)
	}
}

// TestOutputSecureKafka: the example runs its scenarios on a SASL_SSL
// cluster, with -tls-ca, -sasl-mechanism, -sasl-username and the password
// from the environment, and prints what it prints on every backend.
func TestOutputSecureKafka(t *testing.T) {
	b := securetest.Get(t)
	t.Setenv("SNAPLOG_SASL_PASSWORD", b.Password)
	out, _ := runArgs(t, "-brokers", strings.Join(b.Brokers, ","), "-tls-ca", b.CA, "-sasl-mechanism", "SCRAM-SHA-256",
		"-sasl-username", b.User, "-partitions", "1")
	checkOutput(t, out)
}

// With -keep the run leaves its topics: for each scenario an events topic
// that keeps events forever and a compacted snapshot topic, with the
// partition count asked for.
func TestKafkaKeep(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	out, info := runArgs(t, "-brokers", strings.Join(brokers, ","), "-partitions", "2", "-keep")
	checkOutput(t, out)
	m := kafkaRun.FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("stderr %q, want a match of %s", info, kafkaRun)
	}
	var want []string
	for i := 1; i <= len(scenarios); i++ {
		want = append(want,
			fmt.Sprintf("%ss%d.events.%s", m[1], i, order.TypeName),
			fmt.Sprintf("%ss%d.snapshots.%s", m[1], i, order.TypeName))
	}
	kafkatest.DeleteTopicsOnCleanup(t, want...)
	if wantInfo := fmt.Sprintf("snapshotting: kept the run's %d topics %s*\n", len(want), m[1]); info[len(m[0]):] != wantInfo {
		t.Errorf("stderr after the first line %q, want %q", info[len(m[0]):], wantInfo)
	}

	adm := kafkatest.Admin(t)
	kept := runTopics(t, adm, m[1])
	slices.Sort(want)
	if got := kept.Names(); !slices.Equal(got, want) {
		t.Fatalf("kept topics %v, want %v", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	configs, err := adm.DescribeTopicConfigs(ctx, want...)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want {
		if n := len(kept[name].Partitions); n != 2 {
			t.Errorf("%s: %d partitions, want 2", name, n)
		}
		rc, err := configs.On(name, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			t.Errorf("%s: describe configs: %v", name, err)
			continue
		}
		policy := ""
		for _, c := range rc.Configs {
			if c.Key == "cleanup.policy" && c.Value != nil {
				policy = *c.Value
			}
		}
		wantPolicy := "compact"
		if strings.Contains(name, ".events.") {
			wantPolicy = "delete"
		}
		if policy != wantPolicy {
			t.Errorf("%s: cleanup.policy=%q, want %q", name, policy, wantPolicy)
		}
	}
}

// sharedPrefix returns a topic prefix new to the broker, whose two topics
// are deleted when the test ends.
func sharedPrefix(t *testing.T) string {
	prefix := kafkatest.Topic(t, "snaplog.test.shared") + "."
	kafkatest.DeleteTopicsOnCleanup(t, prefix+"events."+order.TypeName, prefix+"snapshots."+order.TypeName)
	return prefix
}

// With -prefix every scenario runs on the same two topics, which the run
// keeps; a second run on them prints the same lines: the scenarios need
// fresh aggregates, not fresh topics.
func TestKafkaPrefix(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	prefix := sharedPrefix(t)
	wantInfo := regexp.MustCompile(`^snapshotting: on Kafka at \S+ \(topics ` + regexp.QuoteMeta(prefix+"events.Order and "+prefix+"snapshots.Order") + `, shared by the scenarios, kept\)\n$`)
	for run := 1; run <= 2; run++ {
		out, info := runArgs(t, "-brokers", strings.Join(brokers, ","), "-prefix", prefix)
		checkOutput(t, out)
		if !wantInfo.MatchString(info) {
			t.Errorf("run %d: stderr %q, want a match of %s", run, info, wantInfo)
		}
		want := []string{prefix + "events." + order.TypeName, prefix + "snapshots." + order.TypeName}
		if got := runTopics(t, kafkatest.Admin(t), prefix).Names(); !slices.Equal(got, want) {
			t.Fatalf("run %d: topics %v, want %v", run, got, want)
		}
	}
}

// A snapshot topic whose checkpoints name a snapshotter refuses the
// repositories' snapshots: the run says so once on stderr and fails.
func TestKafkaPrefixOwned(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	prefix := sharedPrefix(t)
	ctx := context.Background()
	events, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(brokers...)), log.WithTopicPrefix(prefix+"events."),
		log.WithTopicPartitions(3), log.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	if err := events.EnsureTopic(ctx, order.TypeName); err != nil {
		t.Fatal(err)
	}
	codec := snapshots.NewAvroCodec()
	if err := codec.Register(order.TypeName, schemas.OrderState()); err != nil {
		t.Fatal(err)
	}
	const owner = "test-snapshotter"
	store, err := snapshots.NewKafka(codec, snapshots.KafkaClient(kgo.SeedBrokers(brokers...)), snapshots.WithOwner(owner),
		snapshots.WithTopicPrefix(prefix+"snapshots."), snapshots.WithEventsTopicPrefix(prefix+"events."), snapshots.WithReplicationFactor(1))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for p := range int32(3) {
		if err := store.PutCheckpoint(ctx, order.TypeName, snapshots.Checkpoint{EventsPartition: p}); err != nil {
			t.Fatal(err)
		}
	}

	cfg, err := parseFlags([]string{"-brokers", strings.Join(brokers, ","), "-prefix", prefix}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out, info bytes.Buffer
	err = runWith(ctx, &out, &info, cfg)
	if err == nil {
		t.Fatalf("the run succeeded on an owned snapshot topic; output:\n%s", out.String())
	}
	note := "snapshotting: a snapshotter owns the snapshot topic and alone writes snapshots there"
	if n := strings.Count(info.String(), note); n != 1 || !strings.Contains(info.String(), `belongs to snapshotter "`+owner+`"`) {
		t.Fatalf("stderr has the note %d times, want once, naming %s:\n%s", n, owner, info.String())
	}
}

// -feed saves orders to <prefix>events.Order, one line each, and runs no
// scenario.
func TestKafkaFeed(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	prefix := sharedPrefix(t)
	out, info := runArgs(t, "-brokers", strings.Join(brokers, ","), "-prefix", prefix, "-feed", "4")
	wantInfo := "snapshotting: feeding 4 orders to " + prefix + "events.Order on Kafka at " + strings.Join(brokers, ",") + "\n"
	if info != wantInfo {
		t.Errorf("stderr %q, want %q", info, wantInfo)
	}
	want := []string{
		`Order (` + uuidPattern + `): version 2, 1 items, created`,
		`Order (` + uuidPattern + `): version 4, 2 items, submitted`,
		`Order (` + uuidPattern + `): version 4, 3 items, created`,
		`Order (` + uuidPattern + `): version 6, 4 items, submitted`,
		`Saved 4 orders, 16 events`,
	}
	got := lines(out)
	if len(got) != len(want) {
		t.Fatalf("output:\n%s\nwant %d lines", out, len(want))
	}

	events, err := log.NewKafka(log.KafkaClient(kgo.SeedBrokers(brokers...)), log.WithTopicPrefix(prefix+"events."))
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	repo, err := newRepo(events, order.SchemaVersion)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	for i, w := range want {
		m := regexp.MustCompile("^" + w + "$").FindStringSubmatch(got[i])
		if m == nil {
			t.Fatalf("line %d: got %q, want a match of %s", i+1, got[i], w)
		}
		if len(m) < 2 {
			continue
		}
		root, err := repo.Load(context.Background(), uuid.MustParse(m[1]))
		if err != nil {
			t.Fatalf("load the order of line %d: %v", i+1, err)
		}
		if v := fmt.Sprintf("version %d,", root.Version()); !strings.Contains(got[i], v) {
			t.Errorf("line %d: %q, but the log has the order at %s", i+1, got[i], v)
		}
	}
	if topics := runTopics(t, kafkatest.Admin(t), prefix).Names(); !slices.Equal(topics, []string{prefix + "events." + order.TypeName}) {
		t.Errorf("topics %v, want only the events topic", topics)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want config // when ok
		err  string // a part of the error, "" when ok
	}{
		{nil, config{partitions: 3, replication: 1}, ""},
		{[]string{"-brokers", ""}, config{partitions: 3, replication: 1}, ""},
		{[]string{"-brokers", "embedded"}, config{brokers: "embedded", partitions: 3, replication: 1}, ""},
		{[]string{"-brokers", " a:9092, b:9092 ", "-partitions", "6", "-replication", "-1", "-keep"},
			config{brokers: "a:9092, b:9092", partitions: 6, replication: -1, keep: true}, ""},
		{[]string{"-keep"}, config{}, "-keep applies only to Kafka"},
		{[]string{"-partitions", "3"}, config{}, "-partitions applies only to Kafka"},
		{[]string{"-brokers", "embedded", "-keep"}, config{}, "-keep: the embedded broker"},
		{[]string{"-brokers", "embedded", "-replication", "3"}, config{}, "the embedded broker has one node"},
		{[]string{"-brokers", ","}, config{}, "lists no broker"},
		{[]string{"-brokers", "a:9092", "-partitions", "0"}, config{}, "-partitions 0"},
		{[]string{"-brokers", "a:9092", "-replication", "0"}, config{}, "-replication 0"},
		{[]string{"-brokers", "a:9092", "-replication", "40000"}, config{}, "-replication 40000"},
		{[]string{"-brokers", "a:9092", "-prefix", "snaplog."}, config{brokers: "a:9092", partitions: 3, replication: 1, prefix: "snaplog."}, ""},
		{[]string{"-brokers", "a:9092", "-prefix", "snaplog.", "-feed", "20"},
			config{brokers: "a:9092", partitions: 3, replication: 1, prefix: "snaplog.", feed: 20}, ""},
		{[]string{"-brokers", "embedded", "-prefix", "shared."}, config{brokers: "embedded", partitions: 3, replication: 1, prefix: "shared."}, ""},
		{[]string{"-prefix", "snaplog."}, config{}, "-prefix applies only to Kafka"},
		{[]string{"-feed", "1"}, config{}, "-feed applies only to Kafka"},
		{[]string{"-brokers", "a:9092", "-prefix", "p/"}, config{}, `-prefix "p/": '/' cannot be part of a topic name`},
		{[]string{"-brokers", "a:9092", "-prefix", strings.Repeat("p", 240)}, config{}, "Kafka allows 249"},
		{[]string{"-brokers", "a:9092", "-prefix", "p.", "-keep"}, config{}, "-keep: the topics of -prefix are always kept"},
		{[]string{"-brokers", "a:9092", "-feed", "2"}, config{}, "-feed needs -prefix"},
		{[]string{"-brokers", "a:9092", "-prefix", "p.", "-feed", "-1"}, config{}, "-feed -1: must not be negative"},
		{[]string{"-brokers", "embedded", "-prefix", "p.", "-feed", "1"}, config{}, "-feed: the embedded broker"},
		{[]string{"-postgres", "postgres://h/db"}, config{partitions: 3, replication: 1, postgres: "postgres://h/db"}, ""},
		{[]string{"-brokers", "a:9092", "-postgres", "postgres://h/db"},
			config{brokers: "a:9092", partitions: 3, replication: 1, postgres: "postgres://h/db"}, ""},
		{[]string{"-brokers", "embedded", "-postgres", "postgres://h/db"},
			config{brokers: "embedded", partitions: 3, replication: 1, postgres: "postgres://h/db"}, ""},
		{[]string{"-brokers", "a:9092", "-prefix", "p.", "-feed", "1", "-postgres", "postgres://h/db"}, config{}, "-postgres: -feed writes no snapshots"},
		{[]string{"extra"}, config{}, "unexpected arguments"},
		{[]string{"-nope"}, config{}, "flag provided but not defined"},
	} {
		name := strings.Join(tc.args, " ")
		if name == "" {
			name = "no flags"
		}
		t.Run(name, func(t *testing.T) {
			got, err := parseFlags(tc.args, io.Discard)
			got.conn, got.connOpts = kafkaconn.Config{}, nil
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err == "" && !reflect.DeepEqual(got, tc.want):
				t.Fatalf("config %+v, want %+v", got, tc.want)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
	// Every problem is reported at once.
	_, err := parseFlags([]string{"-brokers", "embedded", "-keep", "-partitions", "-1"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-keep") || !strings.Contains(err.Error(), "-partitions -1") {
		t.Errorf("error %v, want both -keep and -partitions", err)
	}
}

func TestConfigSeeds(t *testing.T) {
	for _, tc := range []struct {
		brokers string
		want    []string
	}{
		{"", nil},
		{"embedded", nil},
		{"127.0.0.1:9092", []string{"127.0.0.1:9092"}},
		{" a:1 ,, b:2 ", []string{"a:1", "b:2"}},
	} {
		if got := (config{brokers: tc.brokers}).seeds(); !slices.Equal(got, tc.want) {
			t.Errorf("seeds of %q = %q, want %q", tc.brokers, got, tc.want)
		}
	}
}

// valueAfter returns the rest of the first line that starts with prefix.
func valueAfter(lines []string, prefix string) string {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	return ""
}

func TestLinePattern(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		match     bool
	}{
		{"Snapshot version: 5", "Snapshot version: 5", true},
		{"Snapshot version: 5", "Snapshot version: 6", false},
		{"Average load time: 15.23ms", "Average load time: 0.31ms", true},
		{"Average load time: 15.23ms", "Average load time: 0.3ms", false},
		{"Performance improvement: 90.5%", "Performance improvement: -3.0%", true},
		{"  Aggregate ID: 550e8400-e29b-41d4-a716-446655440000", "  Aggregate ID: 5f4f3970-84ef-4f3c-b396-b2d48625a2fd", true},
		{"  Aggregate ID: 550e8400-e29b-41d4-a716-446655440000", "  Aggregate ID: None", false},
		{"  Created At: 2024-01-15 10:30:45.123456+00:00", "  Created At: 2026-11-26 14:47:39+00:00", true},
		{"  Created At: 2024-01-15 10:30:45.123456+00:00", "  Created At: 2026-11-26 14:47:39.4963+00:00", false},
		{"    [0]: {'product_id': '...', 'product_name': 'Premium Widget', ...}",
			"    [0]: {'product_id': '66f6b532-af48-4f13-b4aa-43a3b96e0054', 'product_name': 'Premium Widget', ...}", true},
		{"    [0]: {'product_id': '...', 'product_name': 'Premium Widget', ...}",
			"    [0]: {'product_id': '66f6b532-af48-4f13-b4aa-43a3b96e0054', 'product_name': 'Basic Widget', ...}", false},
	} {
		if m := linePattern(tc.want).MatchString(tc.got); m != tc.match {
			t.Errorf("pattern of %q matches %q: %v, want %v", tc.want, tc.got, m, tc.match)
		}
	}
}

func TestFailingBackend(t *testing.T) {
	errDown := errors.New("backend down")
	down := func(context.Context) (aggregate.EventLog, snapshots.Store, error) { return nil, nil, errDown }
	var out bytes.Buffer
	if err := runOn(context.Background(), &out, down); !errors.Is(err, errDown) {
		t.Fatalf("runOn = %v, want %v", err, errDown)
	}
}

type failingWriter struct{}

var errWrite = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteError(t *testing.T) {
	if err := runWith(context.Background(), failingWriter{}, io.Discard, config{}); !errors.Is(err, errWrite) {
		t.Fatalf("runWith = %v, want %v", err, errWrite)
	}
}
