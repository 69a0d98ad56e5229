// Command snapshotting shows aggregate snapshots at work on the Order
// aggregate of package order, in six scenarios: automatic snapshots at a
// threshold, manual snapshots, background snapshots, a schema version change
// that makes a load ignore its snapshot, load times with and without a
// snapshot, and what a snapshot holds.
//
// It runs the scenarios on an event log and a snapshot store chosen
// independently: the log in memory or on Kafka, the snapshots with the log
// or in PostgreSQL. By default it uses the in-memory event log and snapshot
// store, and needs no broker:
//
//	go run ./examples/snapshotting
//
// With -brokers embedded it starts an in-process Kafka-protocol broker,
// franz-go's kfake, and runs on the Kafka event log and the Kafka snapshot
// store (a compacted topic of Avro snapshots) there:
//
//	go run ./examples/snapshotting -brokers embedded
//
// With -brokers and a comma-separated list of host:port it runs on the
// same Kafka log and store on that cluster:
//
//	go run ./examples/snapshotting -brokers 127.0.0.1:9092
//
// With -postgres and a PostgreSQL URL it keeps the snapshots in PostgreSQL
// (snapshots.Postgres, a schema of its own for each scenario, dropped at the
// end) and the events in memory, or with -brokers on Kafka, as
// eventsource-py's production example keeps snapshots in PostgreSQL and
// events in Kafka:
//
//	go run ./examples/snapshotting -postgres postgres://snaplog:snaplog@127.0.0.1:55432/snaplog
//	go run ./examples/snapshotting -brokers 127.0.0.1:9092 -postgres postgres://snaplog:snaplog@127.0.0.1:55432/snaplog
//
// On Kafka every scenario gets topics of its own, fresh as the in-memory
// default's log and store are, named after a prefix that is new for each
// run ("snaplog.example." and eight random hex digits), so that runs never
// share topics: an events topic, and a snapshot topic unless the snapshots
// are in PostgreSQL. The topics have -partitions partitions (default 3) and
// replication factor -replication (default 1). On a cluster named with
// -brokers the program deletes its topics at the end, unless -keep is
// given; a failed delete is reported but does not fail the run. The
// embedded broker's topics end with the program.
//
// With -prefix P every scenario runs on the same topics instead,
// P+"events.Order" and, unless the snapshots are in PostgreSQL,
// P+"snapshots.Order", created if missing and never deleted. The scenarios
// need fresh aggregates, not fresh topics: each creates orders of its own,
// so it prints the same lines on topics that already hold other orders.
//
// A snapshot topic whose checkpoints name a snapshotter (a running
// cmd/snapshotter on the same topics) is that snapshotter's alone: the store
// refuses the repositories' snapshot writes there (snapshots.ErrOwned). The
// program then says so once on standard error, and the scenarios, which
// show snapshots written by repositories, fail. To give a snapshotter
// orders to snapshot, use -feed:
//
//	go run ./examples/snapshotting -brokers 127.0.0.1:9092 -prefix snaplog. -feed 20
//
// saves 20 new orders to snaplog.events.Order (the snapshotter's default
// topic) through a repository without a snapshot store, prints each order's
// id, version, item count and status, and runs no scenario.
//
// It prints what each scenario did, in the layout of the Python library
// eventsource-py's snapshotting example, the same on every backend but for
// times and ids. One line on standard error names the backend. It exits
// with status 1 and a message if a step fails, and with status 2 on a
// wrong command line.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/aggregate"
	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/kafkaconn"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
)

// embedded is the -brokers value that asks for the in-process broker.
const embedded = "embedded"

// config is what the command line asks for.
type config struct {
	brokers     string // "" for the in-memory backend, embedded, or host:port,...
	partitions  int
	replication int
	keep        bool
	prefix      string // "" for topics of the run's own
	feed        int    // orders to save instead of running the scenarios; 0: run them
	postgres    string // a PostgreSQL URL: snapshots there, events in memory or on -brokers
	// conn is the connection to -brokers (TLS, SASL), connOpts its
	// franz-go options; nil for the in-memory and embedded backends.
	conn     kafkaconn.Config
	connOpts []kgo.Opt
}

// seeds returns the host:port list of -brokers, nil for the in-memory and
// embedded backends.
func (c config) seeds() []string {
	if c.brokers == embedded {
		return nil
	}
	var seeds []string
	for s := range strings.SplitSeq(c.brokers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	return seeds
}

// parseFlags reads the command line; usage and errors go to stderr.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("snapshotting", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: snapshotting [-brokers embedded|host:port,...] [-partitions n] [-replication n] [-keep | -prefix p [-feed n]] [-postgres url]")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.brokers, "brokers", "",
		`Kafka brokers to run on, comma-separated host:port; "embedded" for an in-process broker; empty for the in-memory log (and store, without -postgres)`)
	fs.IntVar(&c.partitions, "partitions", 3, "partition count of the Kafka topics")
	fs.IntVar(&c.replication, "replication", 1, "replication factor of the Kafka topics (-1: the broker's default)")
	fs.BoolVar(&c.keep, "keep", false, "keep the run's topics on the cluster named with -brokers instead of deleting them")
	fs.StringVar(&c.prefix, "prefix", "",
		"run every scenario on the topics <prefix>events.Order and <prefix>snapshots.Order (the events topic alone with -postgres), which are kept; empty for topics of the run's own")
	fs.StringVar(&c.conn.TLS.CAFile, "tls-ca", "", "connect to -brokers with TLS, verifying them against the CA certificates of this PEM file")
	fs.BoolVar(&c.conn.TLS.Enabled, "tls", false, "connect to -brokers with TLS, verifying them against the system's roots")
	fs.StringVar(&c.conn.SASL.Mechanism, "sasl-mechanism", "", "SASL mechanism for -brokers: "+strings.Join(kafkaconn.Mechanisms, ", ")+
		" (the password from the environment variable SNAPLOG_SASL_PASSWORD)")
	fs.StringVar(&c.conn.SASL.Username, "sasl-username", "", "SASL user, for PLAIN and SCRAM")
	fs.StringVar(&c.postgres, "postgres", "",
		"keep the snapshots in the PostgreSQL database of this URL (a schema per scenario, dropped at the end), the events in memory or on -brokers")
	fs.IntVar(&c.feed, "feed", 0,
		"save this many new orders to <prefix>events.Order, for a snapshotter to snapshot, instead of running the scenarios (needs -prefix)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.brokers = strings.TrimSpace(c.brokers)
	switch {
	case c.brokers == "":
		for _, name := range []string{"partitions", "replication", "keep", "prefix", "feed"} {
			if set[name] {
				errs = append(errs, fmt.Errorf("-%s applies only to Kafka: give -brokers", name))
			}
		}
	case c.brokers == embedded:
		if c.keep {
			errs = append(errs, errors.New("-keep: the embedded broker's topics end with the program"))
		}
		if c.feed != 0 {
			errs = append(errs, errors.New("-feed: the embedded broker's topics end with the program"))
		}
		if c.replication > 1 {
			errs = append(errs, fmt.Errorf("-replication %d: the embedded broker has one node", c.replication))
		}
	case len(c.seeds()) == 0:
		errs = append(errs, fmt.Errorf("-brokers %q lists no broker", c.brokers))
	default:
		c.conn.Brokers = c.seeds()
		c.conn.SASL.Password = os.Getenv("SNAPLOG_SASL_PASSWORD")
		opts, err := c.conn.Opts()
		if err != nil {
			errs = append(errs, fmt.Errorf("-tls and -sasl: %w", err))
		}
		c.connOpts = opts
	}
	if (c.brokers == "" || c.brokers == embedded) && (c.conn.TLS.On() || c.conn.SASL.Mechanism != "" || c.conn.SASL.Username != "") {
		errs = append(errs, errors.New("-tls, -tls-ca and -sasl apply only to a cluster named with -brokers"))
	}
	if err := checkPrefix(c.prefix); err != nil {
		errs = append(errs, fmt.Errorf("-prefix %q: %w", c.prefix, err))
	}
	if c.postgres != "" && c.feed != 0 {
		errs = append(errs, errors.New("-postgres: -feed writes no snapshots"))
	}
	if c.keep && c.prefix != "" {
		errs = append(errs, errors.New("-keep: the topics of -prefix are always kept"))
	}
	switch {
	case c.feed < 0:
		errs = append(errs, fmt.Errorf("-feed %d: must not be negative", c.feed))
	case c.feed > 0 && c.prefix == "" && c.brokers != "" && c.brokers != embedded:
		errs = append(errs, errors.New("-feed needs -prefix: the orders go to <prefix>events.Order"))
	}
	if c.partitions < 1 || c.partitions > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("-partitions %d: must be positive", c.partitions))
	}
	if c.replication != -1 && (c.replication < 1 || c.replication > math.MaxInt16) {
		errs = append(errs, fmt.Errorf("-replication %d: must be -1 or from 1 to %d", c.replication, math.MaxInt16))
	}
	if len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintln(stderr, "snapshotting:", err)
		}
		fs.Usage()
		return c, errors.Join(errs...)
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		os.Exit(2)
	}
	// An interrupt ends the run; the run's own topics are still deleted.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = runWith(ctx, os.Stdout, os.Stderr, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapshotting:", err)
		os.Exit(1)
	}
}

// checkPrefix checks that p can start Kafka topic names, and leaves room
// for the rest of the longest one, p+"snapshots.Order".
func checkPrefix(p string) error {
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q cannot be part of a topic name (letters, digits, '.', '_' and '-' can)", r)
		}
	}
	if n := len(p + "snapshots." + order.TypeName); n > maxTopicLen {
		return fmt.Errorf("topic names of %d characters; Kafka allows %d", n, maxTopicLen)
	}
	return nil
}

// maxTopicLen is the longest topic name Kafka accepts.
const maxTopicLen = 249

// runWith runs every scenario on the event log and snapshot store cfg
// names, or feeds orders with -feed, writing their output to w and the line
// that names the backend to info. The log (in memory, or Kafka with
// -brokers) and the snapshot store (the log's own kind, or PostgreSQL with
// -postgres) are chosen independently. At the end, even when ctx ended, it
// closes what it opened, deletes what the run created and says what it
// kept.
func runWith(ctx context.Context, w, info io.Writer, cfg config) (err error) {
	if cfg.feed > 0 {
		return runFeed(ctx, w, info, cfg)
	}
	var (
		logs   logOpener
		stores storeOpener
		on     string // names the backend on the info line
	)
	if cfg.brokers == "" {
		logs, stores, on = memoryLogs, memoryStores, "the in-memory event log"
	} else {
		var kb *kafkaBackend
		if kb, err = openKafka(cfg, info); err != nil {
			return err
		}
		defer kb.close(ctx)
		logs, stores, on = kb.openLog, kb.openStore, kb.String()
	}
	switch {
	case cfg.postgres != "":
		var pb *postgresBackend
		if pb, err = newPostgresBackend(ctx, cfg.postgres); err != nil {
			return err
		}
		// A failed drop is the run's error when nothing failed before.
		defer func() {
			if cerr := pb.close(context.WithoutCancel(ctx)); err == nil {
				err = cerr
			}
		}()
		stores = pb.openStore
		on += ", snapshots in PostgreSQL (schemas " + pb.run + "_*)"
	case cfg.brokers == "":
		on += " and snapshot store"
	}
	fmt.Fprintf(info, "snapshotting: on %s\n", on)
	return runOn(ctx, w, pair(logs, stores))
}

// backend gives each scenario a fresh event log and snapshot store, so that
// the scenarios run the same way on every backend.
type backend func(ctx context.Context) (aggregate.EventLog, snapshots.Store, error)

// scenarioLog is a scenario's fresh event log and what a snapshot store for
// it must know.
type scenarioLog struct {
	events aggregate.EventLog
	// prefix starts the names of the scenario's Kafka topics: its events
	// are on prefix+"events."+order.TypeName. "" for the in-memory log.
	prefix string
	// partitions is the partition count of the orders' events topic.
	partitions int32
}

// logOpener opens the event log of the next scenario.
type logOpener func(ctx context.Context) (scenarioLog, error)

// storeOpener opens a fresh snapshot store for a scenario's log.
type storeOpener func(ctx context.Context, l scenarioLog) (snapshots.Store, error)

// pair is the backend of each scenario's log from logs and a store for it
// from stores.
func pair(logs logOpener, stores storeOpener) backend {
	return func(ctx context.Context) (aggregate.EventLog, snapshots.Store, error) {
		l, err := logs(ctx)
		if err != nil {
			return nil, nil, err
		}
		store, err := stores(ctx, l)
		if err != nil {
			return nil, nil, err
		}
		return l.events, store, nil
	}
}

// memoryPartitions is the partition count of the in-memory log's topics,
// that of the Kafka topics by default.
const memoryPartitions = 3

// memoryLogs opens an in-memory event log.
func memoryLogs(context.Context) (scenarioLog, error) {
	events, err := log.NewMemory(log.WithMemoryPartitions(memoryPartitions))
	if err != nil {
		return scenarioLog{}, err
	}
	return scenarioLog{events: events, partitions: memoryPartitions}, nil
}

// memoryStores opens an in-memory snapshot store, which suits any log.
func memoryStores(context.Context, scenarioLog) (snapshots.Store, error) {
	return snapshots.NewMemory(), nil
}

// scenario is one part of the program. It prints to p and returns the first
// error of its steps.
type scenario struct {
	title string
	run   func(ctx context.Context, p *printer, be backend) error
}

var scenarios = []scenario{
	{"BASIC SNAPSHOTTING EXAMPLE", basicSnapshotting},
	{"MANUAL SNAPSHOT EXAMPLE", manualSnapshot},
	{"BACKGROUND SNAPSHOT EXAMPLE", backgroundSnapshot},
	{"SCHEMA VERSIONING EXAMPLE", schemaVersioning},
	{"PERFORMANCE COMPARISON EXAMPLE", performanceComparison},
	{"SNAPSHOT INSPECTION EXAMPLE", snapshotInspection},
}

// runOn runs every scenario on be and writes their output to w.
func runOn(ctx context.Context, w io.Writer, be backend) error {
	p := &printer{w: w}
	for _, s := range scenarios {
		p.header(s.title)
		if err := s.run(ctx, p, be); err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(s.title), err)
		}
		if p.err != nil {
			return p.err
		}
	}
	p.header("ALL EXAMPLES COMPLETED")
	return p.err
}

// printer writes lines and keeps the first write error, so that scenarios
// read as a list of prints and the error is checked once.
type printer struct {
	w   io.Writer
	err error
}

// line writes one line, formatted as by fmt.Sprintf.
func (p *printer) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	if _, err := fmt.Fprintf(p.w, format+"\n", args...); err != nil {
		p.err = fmt.Errorf("write output: %w", err)
	}
}

var rule = strings.Repeat("=", 60)

func (p *printer) header(title string) {
	p.line("")
	p.line("%s", rule)
	p.line("%s", title)
	p.line("%s", rule)
}
