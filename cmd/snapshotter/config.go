package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/snaplog/snaplog/kafkaconn"
	"github.com/snaplog/snaplog/log"
	"github.com/snaplog/snaplog/snapshots"
	"github.com/snaplog/snaplog/snapshotter"
)

// command is a subcommand of the binary.
type command string

const (
	cmdRun         command = "run"
	cmdInspect     command = "inspect"
	cmdRebuild     command = "rebuild"
	cmdPurge       command = "purge"
	cmdMigrate     command = "migrate"
	cmdHealthcheck command = "healthcheck"
	cmdSchema      command = "schema"
)

var commands = []command{cmdRun, cmdInspect, cmdRebuild, cmdPurge, cmdMigrate, cmdHealthcheck, cmdSchema}

// config is everything the binary is told, read from its flags and
// environment variables by parseConfig. Only the fields of the command being
// run are set.
type config struct {
	Brokers []string
	// Conn is the connection to the cluster: Brokers with the TLS and SASL
	// settings; KafkaOpts its franz-go options, which every client of the
	// command is built from.
	Conn               kafkaconn.Config
	KafkaOpts          []kgo.Opt
	Group              string
	EventsPrefix       string
	SnapshotsPrefix    string
	Threshold          int64
	CheckpointInterval time.Duration
	MaxStates          int
	Replication        int16
	HTTPAddr           string
	LogLevel           slog.Level
	TransactionalID    string // "" for the snapshotter's default
	SessionTimeout     time.Duration
	RebalanceTimeout   time.Duration
	// SnapshotStore is where the snapshots and checkpoints are kept: the
	// snapshot topics (SnapshotsPrefix, Replication, TransactionalID), or
	// the tables of a PostgreSQL schema (Postgres). migrate implies
	// storePostgres.
	SnapshotStore snapshotStore
	// Postgres is the PostgreSQL store's database: set when SnapshotStore
	// is storePostgres.
	Postgres postgresConfig
	// Type is the aggregate type inspect, rebuild and purge work on; ID the
	// aggregate inspect shows.
	Type string
	ID   uuid.UUID
	// SchemaBelow is purge's bound: only snapshots taken with a lower
	// state schema version are deleted; 0 for every snapshot of the type.
	SchemaBelow int
	// DryRun makes purge count what it would delete and delete nothing.
	DryRun bool
}

// setting is one field of config: its flag, its environment variable, its
// default, which commands take it, and how its text is parsed.
type setting struct {
	flag     string
	env      string             // "" for a flag without an environment variable
	def      string             // the default as text, "" for none
	defs     map[command]string // defaults of commands that differ from def
	defDoc   string             // the default as the usage shows it, when def is ""
	arg      string             // the value's name in the usage
	usage    string
	required bool
	boolean  bool // a flag given without a value means true (-dry-run)
	cmds     []command
	set      func(c *config, v string) error
}

var (
	kafkaCmds    = []command{cmdRun, cmdInspect, cmdRebuild, cmdPurge}
	connCmds     = []command{cmdRun, cmdInspect, cmdRebuild, cmdPurge}
	snapshotCmds = []command{cmdRun, cmdRebuild}
	// postgresCmds take the PostgreSQL settings: those of the snapshot
	// store (-snapshot-store postgres), and migrate.
	postgresCmds = []command{cmdRun, cmdInspect, cmdRebuild, cmdPurge, cmdMigrate}
)

// settings lists the configuration in the order the usage shows it.
var settings = []setting{
	{flag: "brokers", env: "SNAPLOG_BROKERS", arg: "host:port,...", required: true, cmds: kafkaCmds,
		usage: "Kafka seed brokers, comma-separated",
		set: func(c *config, v string) (err error) {
			c.Brokers, err = parseBrokers(v)
			return err
		}},
	{flag: "tls", env: "SNAPLOG_TLS", def: "false", boolean: true, cmds: connCmds,
		usage: "connect with TLS (implied by the other -tls flags), verifying the brokers' certificates against the system's roots or -tls-ca",
		set:   func(c *config, v string) (err error) { c.Conn.TLS.Enabled, err = parseBool(v); return err }},
	{flag: "tls-ca", env: "SNAPLOG_TLS_CA", arg: "file", cmds: connCmds,
		usage: "PEM file of the CA certificates that verify the brokers'",
		set:   func(c *config, v string) error { c.Conn.TLS.CAFile = v; return nil }},
	{flag: "tls-cert", env: "SNAPLOG_TLS_CERT", arg: "file", cmds: connCmds,
		usage: "PEM file of the client certificate, for mutual TLS (with -tls-key)",
		set:   func(c *config, v string) error { c.Conn.TLS.CertFile = v; return nil }},
	{flag: "tls-key", env: "SNAPLOG_TLS_KEY", arg: "file", cmds: connCmds,
		usage: "PEM file of the client certificate's key, for mutual TLS (with -tls-cert)",
		set:   func(c *config, v string) error { c.Conn.TLS.KeyFile = v; return nil }},
	{flag: "tls-server-name", env: "SNAPLOG_TLS_SERVER_NAME", arg: "name", cmds: connCmds,
		usage: "the name the brokers' certificates must have, when not the host of the broker address",
		set:   func(c *config, v string) error { c.Conn.TLS.ServerName = v; return nil }},
	{flag: "tls-insecure-skip-verify", env: "SNAPLOG_TLS_INSECURE_SKIP_VERIFY", def: "false", boolean: true, cmds: connCmds,
		usage: "accept any certificate the brokers present: for tests only",
		set:   func(c *config, v string) (err error) { c.Conn.TLS.InsecureSkipVerify, err = parseBool(v); return err }},
	{flag: "sasl-mechanism", env: "SNAPLOG_SASL_MECHANISM", arg: "name", cmds: connCmds,
		usage: "SASL mechanism: " + strings.Join(kafkaconn.Mechanisms, ", ") + " (AWS_MSK_IAM takes AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the environment)",
		set: func(c *config, v string) error {
			if !kafkaconn.Known(v) {
				return fmt.Errorf("not one of %s", strings.Join(kafkaconn.Mechanisms, ", "))
			}
			c.Conn.SASL.Mechanism = v
			return nil
		}},
	{flag: "sasl-username", env: "SNAPLOG_SASL_USERNAME", arg: "name", cmds: connCmds,
		usage: "SASL user, for PLAIN and SCRAM",
		set:   func(c *config, v string) error { c.Conn.SASL.Username = v; return nil }},
	{flag: "sasl-password-file", env: "SNAPLOG_SASL_PASSWORD_FILE", arg: "file", cmds: connCmds,
		usage: "file whose first line is the SASL password, for PLAIN and SCRAM (or the environment variable SNAPLOG_SASL_PASSWORD; never a flag, which ps would show)",
		set:   func(c *config, v string) error { c.Conn.SASL.PasswordFile = v; return nil }},
	{flag: "sasl-token-file", env: "SNAPLOG_SASL_TOKEN_FILE", arg: "file", cmds: connCmds,
		usage: "file holding the OAuth bearer token, read at each authentication, for OAUTHBEARER",
		set:   func(c *config, v string) error { c.Conn.SASL.TokenFile = v; return nil }},
	{flag: "snapshot-store", env: "SNAPLOG_SNAPSHOT_STORE", def: string(storeKafka), arg: "kafka|postgres", cmds: kafkaCmds,
		usage: "where the snapshots and checkpoints are kept: kafka, the snapshot topics; postgres, the tables of a PostgreSQL schema (the -postgres settings; run migrate first)",
		set: func(c *config, v string) error {
			switch s := snapshotStore(v); s {
			case storeKafka, storePostgres:
				c.SnapshotStore = s
				return nil
			}
			return errors.New("not kafka or postgres")
		}},
	{flag: "postgres-url-file", env: "SNAPLOG_POSTGRES_URL_FILE", arg: "file", cmds: postgresCmds,
		usage: "file whose first line is the PostgreSQL connection URL, postgres://user:password@host:port/database?sslmode=... (or the URL in the environment variable " + envPostgresURL + "; never a flag, which ps would show)",
		set:   func(c *config, v string) error { c.Postgres.URLFile = v; return nil }},
	{flag: "postgres-schema", env: "SNAPLOG_POSTGRES_SCHEMA", def: snapshots.DefaultPostgresSchema, arg: "name", cmds: postgresCmds,
		usage: "PostgreSQL schema of the store's tables, which migrate creates",
		set: func(c *config, v string) error {
			switch {
			case len(v) > 63:
				return errors.New("longer than PostgreSQL's 63-byte identifiers")
			case strings.ContainsRune(v, 0):
				return errors.New("holds a NUL byte")
			}
			c.Postgres.Schema = v
			return nil
		}},
	{flag: "postgres-tls", env: "SNAPLOG_POSTGRES_TLS", def: "false", boolean: true, cmds: postgresCmds,
		usage: "connect to PostgreSQL with TLS only, verifying the server's certificate and name as sslmode=verify-full does, whatever the URL's sslmode (implied by the other -postgres-tls flags)",
		set:   func(c *config, v string) (err error) { c.Postgres.TLS.Enabled, err = parseBool(v); return err }},
	{flag: "postgres-tls-ca", env: "SNAPLOG_POSTGRES_TLS_CA", arg: "file", cmds: postgresCmds,
		usage: "PEM file of the CA certificates that verify the PostgreSQL server's (instead of the URL's sslrootcert; without either, the system's roots)",
		set:   func(c *config, v string) error { c.Postgres.TLS.CAFile = v; return nil }},
	{flag: "postgres-tls-cert", env: "SNAPLOG_POSTGRES_TLS_CERT", arg: "file", cmds: postgresCmds,
		usage: "PEM file of the client certificate, for PostgreSQL's cert authentication (with -postgres-tls-key; instead of the URL's sslcert)",
		set:   func(c *config, v string) error { c.Postgres.TLS.CertFile = v; return nil }},
	{flag: "postgres-tls-key", env: "SNAPLOG_POSTGRES_TLS_KEY", arg: "file", cmds: postgresCmds,
		usage: "PEM file of the client certificate's key (with -postgres-tls-cert; instead of the URL's sslkey)",
		set:   func(c *config, v string) error { c.Postgres.TLS.KeyFile = v; return nil }},
	{flag: "postgres-tls-server-name", env: "SNAPLOG_POSTGRES_TLS_SERVER_NAME", arg: "name", cmds: postgresCmds,
		usage: "the name the PostgreSQL server's certificate must have, when not the URL's host",
		set:   func(c *config, v string) error { c.Postgres.TLS.ServerName = v; return nil }},
	{flag: "postgres-tls-insecure-skip-verify", env: "SNAPLOG_POSTGRES_TLS_INSECURE_SKIP_VERIFY", def: "false", boolean: true, cmds: postgresCmds,
		usage: "accept any certificate the PostgreSQL server presents: for tests only",
		set: func(c *config, v string) (err error) {
			c.Postgres.TLS.InsecureSkipVerify, err = parseBool(v)
			return err
		}},
	{flag: "group", env: "SNAPLOG_GROUP", def: "snaplog-snapshotter", arg: "name", cmds: []command{cmdRun, cmdRebuild, cmdPurge},
		usage: "consumer group of the snapshotters, and the owner their checkpoints name (purge deletes as this owner)",
		set: func(c *config, v string) error {
			if v == "" {
				return errors.New("must not be empty")
			}
			c.Group = v
			return nil
		}},
	{flag: "events-prefix", env: "SNAPLOG_EVENTS_PREFIX", def: log.DefaultTopicPrefix, arg: "prefix", cmds: kafkaCmds,
		usage: "prefix of the events topics (the event log's)",
		set: func(c *config, v string) (err error) {
			c.EventsPrefix, err = topicPrefix(v)
			return err
		}},
	{flag: "snapshots-prefix", env: "SNAPLOG_SNAPSHOTS_PREFIX", def: snapshots.DefaultTopicPrefix, arg: "prefix", cmds: kafkaCmds,
		usage: "prefix of the snapshot topics (the repositories' snapshot store's; -snapshot-store kafka)",
		set: func(c *config, v string) (err error) {
			c.SnapshotsPrefix, err = topicPrefix(v)
			return err
		}},
	{flag: "threshold", env: "SNAPLOG_THRESHOLD", def: strconv.Itoa(snapshotter.DefaultThreshold), arg: "n", cmds: snapshotCmds,
		usage: "snapshot an aggregate when its version crosses a multiple of n",
		set: func(c *config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errors.New("not an integer")
			}
			if n <= 0 {
				return errors.New("must be positive")
			}
			c.Threshold = n
			return nil
		}},
	{flag: "checkpoint-interval", env: "SNAPLOG_CHECKPOINT_INTERVAL", def: snapshotter.DefaultCheckpointInterval.String(), arg: "duration", cmds: snapshotCmds,
		usage: "how often each partition's dirty aggregates are snapshotted and its checkpoint written; bounds every load's tail",
		set: func(c *config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("not a duration (such as 5s or 1m)")
			}
			if d <= 0 {
				return errors.New("must be positive")
			}
			c.CheckpointInterval = d
			return nil
		}},
	{flag: "session-timeout", env: "SNAPLOG_SESSION_TIMEOUT", def: "45s", arg: "duration", cmds: snapshotCmds,
		usage: "how long the group waits for a silent member (a crash, a pause) before its partitions move to another replica; lower fails over faster and moves partitions on shorter pauses (the broker allows 6s to 30m by default)",
		set: func(c *config, v string) (err error) {
			c.SessionTimeout, err = timeout(v, time.Second, 30*time.Minute)
			return err
		}},
	{flag: "rebalance-timeout", env: "SNAPLOG_REBALANCE_TIMEOUT", def: "60s", arg: "duration", cmds: snapshotCmds,
		usage: "how long a rebalance waits for members to hand their partitions over (each finishes its transaction first)",
		set: func(c *config, v string) (err error) {
			c.RebalanceTimeout, err = timeout(v, time.Second, 30*time.Minute)
			return err
		}},
	{flag: "max-states", env: "SNAPLOG_MAX_STATES", def: strconv.Itoa(snapshotter.DefaultMaxStates), arg: "n", cmds: snapshotCmds,
		usage: "aggregate states held in memory at most",
		set: func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return errors.New("not an integer")
			}
			if n <= 0 {
				return errors.New("must be positive")
			}
			c.MaxStates = n
			return nil
		}},
	{flag: "replication", env: "SNAPLOG_REPLICATION", defDoc: "min(3, brokers), with min.insync.replicas=2 from 3 on", arg: "n", cmds: snapshotCmds,
		usage: "replication factor of the snapshot topics the snapshotter creates; -1 for the broker's default (-snapshot-store kafka)",
		set: func(c *config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return errors.New("not an integer")
			}
			if n != -1 && (n < 1 || n > math.MaxInt16) {
				return fmt.Errorf("must be -1 or from 1 to %d", math.MaxInt16)
			}
			c.Replication = int16(n)
			return nil
		}},
	{flag: "http-addr", env: "SNAPLOG_HTTP_ADDR", def: ":8080", arg: "host:port", cmds: []command{cmdRun, cmdHealthcheck},
		usage: "address of the HTTP server: /healthz, /readyz, /metrics",
		set: func(c *config, v string) error {
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				return errors.New("not host:port (such as :8080)")
			}
			if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
				return fmt.Errorf("port %q is not a number from 0 to 65535", port)
			}
			c.HTTPAddr = v
			return nil
		}},
	{flag: "log-level", env: "SNAPLOG_LOG_LEVEL", def: "info", defs: map[command]string{cmdInspect: "warn", cmdRebuild: "warn", cmdPurge: "warn"},
		arg: "level", cmds: kafkaCmds,
		usage: "least level of the JSON log lines on stderr: debug, info, warn or error",
		set: func(c *config, v string) error {
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return errors.New("not one of debug, info, warn, error")
			}
			return nil
		}},
	{flag: "transactional-id", env: "SNAPLOG_TRANSACTIONAL_ID", defDoc: "the group, '-' and a random id", arg: "id", cmds: snapshotCmds,
		usage: "transactional id of the snapshotter's producer; each running instance needs its own (-snapshot-store kafka: with postgres the group consumes without transactions)",
		set: func(c *config, v string) error {
			c.TransactionalID = v
			return nil
		}},
	{flag: "type", arg: "name", required: true, cmds: []command{cmdInspect, cmdRebuild, cmdPurge, cmdSchema},
		usage: "aggregate type",
		set: func(c *config, v string) error {
			c.Type = v
			return nil
		}},
	{flag: "id", arg: "uuid", required: true, cmds: []command{cmdInspect},
		usage: "aggregate id",
		set: func(c *config, v string) (err error) {
			if c.ID, err = uuid.Parse(v); err != nil {
				return errors.New("not a UUID")
			}
			return nil
		}},
	{flag: "schema-below", arg: "n", defDoc: "every schema version", cmds: []command{cmdPurge},
		usage: "delete only the snapshots taken with a state schema version below n",
		set: func(c *config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return errors.New("not an integer")
			}
			if n <= 0 || n > math.MaxInt32 {
				return fmt.Errorf("must be from 1 to %d", math.MaxInt32)
			}
			c.SchemaBelow = n
			return nil
		}},
	{flag: "dry-run", def: "false", boolean: true, cmds: []command{cmdPurge},
		usage: "print how many snapshots each partition would lose, and delete nothing",
		set: func(c *config, v string) (err error) {
			if c.DryRun, err = strconv.ParseBool(v); err != nil {
				return errors.New("not true or false")
			}
			return nil
		}},
}

// boolFlag is the flag.Value of a boolean setting: its text, set to "true"
// when the flag is given without a value.
type boolFlag struct{ v *string }

func (b boolFlag) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}

func (b boolFlag) Set(v string) error {
	*b.v = v
	return nil
}

func (b boolFlag) IsBoolFlag() bool { return true }

func (s setting) takenBy(cmd command) bool { return slices.Contains(s.cmds, cmd) }

// defaultFor returns the setting's default for cmd, as text.
func (s setting) defaultFor(cmd command) string {
	if d, ok := s.defs[cmd]; ok {
		return d
	}
	return s.def
}

// invalidConfig is every problem found in a command line and environment.
type invalidConfig struct{ errs []error }

func (e *invalidConfig) Error() string   { return errors.Join(e.errs...).Error() }
func (e *invalidConfig) Unwrap() []error { return e.errs }

// parseConfig reads the configuration of cmd from its flags (args) and the
// environment (getenv): a flag given wins over its environment variable,
// which wins over the default; an environment variable set to blank counts
// as not set. It checks every value and returns every problem at once, as an
// *invalidConfig. A command line the flag package refuses is reported to out
// with the usage, and -h prints the usage and returns flag.ErrHelp.
func parseConfig(cmd command, args []string, getenv func(string) string, types []string, stdout, stderr io.Writer) (config, error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			printUsage(stdout, cmd, types) // asked for: to stdout
			return config{}, flag.ErrHelp
		}
	}
	fs := flag.NewFlagSet("snapshotter "+string(cmd), flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(stderr, cmd, types) }
	raw := make(map[string]*string)
	for _, s := range settings {
		switch {
		case !s.takenBy(cmd):
		case s.boolean:
			raw[s.flag] = new(string)
			fs.Var(boolFlag{raw[s.flag]}, s.flag, s.usage)
		default:
			raw[s.flag] = fs.String(s.flag, "", s.usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	var c config
	var errs []error
	from := make(map[string]string) // the source of each setting given: its flag or its environment variable
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	for _, s := range settings {
		if !s.takenBy(cmd) {
			continue
		}
		v, src := s.defaultFor(cmd), ""
		if given[s.flag] {
			v, src = strings.TrimSpace(*raw[s.flag]), "-"+s.flag
		} else if e := strings.TrimSpace(envOf(getenv, s.env)); e != "" {
			v, src = e, s.env
		}
		if src != "" {
			from[s.flag] = src
		}
		if src == "" && v == "" {
			if s.required {
				errs = append(errs, fmt.Errorf("-%s%s is required", s.flag, orEnv(s.env)))
			}
			continue
		}
		if err := s.set(&c, v); err != nil {
			if src == "" {
				src = "default of -" + s.flag
			}
			errs = append(errs, fmt.Errorf("%s %q: %w", src, v, err))
		}
	}
	if slices.Contains(postgresCmds, cmd) {
		errs = append(errs, c.checkStore(cmd, from, strings.TrimSpace(getenv(envPostgresURL)))...)
	}
	if slices.Contains(kafkaCmds, cmd) {
		if c.EventsPrefix != "" && c.EventsPrefix == c.SnapshotsPrefix {
			errs = append(errs, fmt.Errorf("the events and snapshot topics share the prefix %q", c.EventsPrefix))
		}
		// The password never comes from a flag: ps shows the command line.
		c.Conn.SASL.Password = envOf(getenv, envSASLPassword)
		c.Conn.Brokers = c.Brokers
		if len(c.Brokers) > 0 {
			if err := c.Conn.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("connection (the -tls and -sasl flags): %w", err))
			} else if c.KafkaOpts, err = c.Conn.Opts(); err != nil {
				errs = append(errs, fmt.Errorf("connection (the -tls and -sasl flags): %w", err))
			}
		}
	}
	if c.Type != "" && !slices.Contains(types, c.Type) {
		errs = append(errs, fmt.Errorf("-type %q: not an aggregate type of this binary (%s)", c.Type, strings.Join(types, ", ")))
	}
	if len(errs) > 0 {
		return c, &invalidConfig{errs}
	}
	return c, nil
}

// envSASLPassword is the environment variable of the SASL password.
const envSASLPassword = "SNAPLOG_SASL_PASSWORD"

// checkStore checks the settings of the snapshot store, given as from
// says (see parseConfig), with envURL the value of SNAPLOG_POSTGRES_URL:
// the PostgreSQL settings go with -snapshot-store postgres (or migrate),
// which needs the URL, and the snapshot topics' settings with kafka. It
// leaves only the settings of the store in c, parsing the PostgreSQL ones
// into c.Postgres.Pool.
func (c *config) checkStore(cmd command, from map[string]string, envURL string) []error {
	if cmd == cmdMigrate {
		c.SnapshotStore = storePostgres
	}
	// given returns the sources of the settings given whose flags match.
	given := func(match func(flag string) bool) []string {
		var srcs []string
		for _, s := range settings {
			if src := from[s.flag]; src != "" && match(s.flag) {
				srcs = append(srcs, src)
			}
		}
		return srcs
	}
	var errs []error
	switch c.SnapshotStore {
	case "":
		return nil // a value that is neither, reported
	case storeKafka:
		pg := given(func(f string) bool { return strings.HasPrefix(f, "postgres-") })
		if envURL != "" {
			pg = append(pg, envPostgresURL)
		}
		if len(pg) > 0 {
			errs = append(errs, fmt.Errorf("%s: %s, but -snapshot-store is %s (set -snapshot-store postgres to keep the snapshots in PostgreSQL)",
				strings.Join(pg, ", "), plural(len(pg), "a PostgreSQL setting", "PostgreSQL settings"), storeKafka))
		}
		c.Postgres = postgresConfig{}
		return errs
	}
	topics := given(func(f string) bool { return f == "snapshots-prefix" || f == "replication" || f == "transactional-id" })
	if len(topics) > 0 {
		errs = append(errs, fmt.Errorf("%s: %s of the snapshot topics, which -snapshot-store postgres does not use",
			strings.Join(topics, ", "), plural(len(topics), "a setting", "settings")))
	}
	c.SnapshotsPrefix = ""
	tlsErr := checkPostgresTLS(c.Postgres.TLS)
	if tlsErr != nil {
		errs = append(errs, fmt.Errorf("PostgreSQL connection (the -postgres-tls flags): %w", tlsErr))
	}
	url, err := readPostgresURL(c.Postgres.URLFile, from["postgres-url-file"], envURL)
	if err != nil {
		return append(errs, err)
	}
	pc, err := parsePostgresURL(url)
	if err != nil {
		return append(errs, err)
	}
	if tlsErr == nil {
		if err := applyPostgresTLS(&pc.ConnConfig.Config, c.Postgres.TLS); err != nil {
			errs = append(errs, fmt.Errorf("PostgreSQL connection (the -postgres-tls flags): %w", err))
		}
	}
	if len(errs) == 0 {
		c.Postgres.Pool = pc
	}
	return errs
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("not a boolean (true or false)")
	}
	return b, nil
}

func envOf(getenv func(string) string, name string) string {
	if name == "" {
		return ""
	}
	return getenv(name)
}

func orEnv(env string) string {
	if env == "" {
		return ""
	}
	return " (or " + env + ")"
}

// parseBrokers splits a comma-separated list of host:port.
func parseBrokers(v string) ([]string, error) {
	var brokers []string
	var errs []error
	for b := range strings.SplitSeq(v, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("%q is not host:port", b))
			continue
		}
		brokers = append(brokers, b)
	}
	if len(brokers) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("lists no broker"))
	}
	return brokers, errors.Join(errs...)
}

// topicPrefix checks that v can start Kafka topic names.
func topicPrefix(v string) (string, error) {
	if v == "" {
		return "", errors.New("must not be empty")
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "", fmt.Errorf("%q cannot be part of a topic name (letters, digits, '.', '_' and '-' can)", r)
		}
	}
	return v, nil
}

// options maps the configuration to the snapshotter's options; pool is
// the PostgreSQL store's, nil with the snapshot topics.
func (c config) options(logger *slog.Logger, hooks snapshotter.Hooks, pool *pgxpool.Pool) []snapshotter.Option {
	opts := []snapshotter.Option{
		snapshotter.KafkaClient(c.KafkaOpts...),
		snapshotter.WithEventsTopicPrefix(c.EventsPrefix),
		snapshotter.WithThreshold(c.Threshold),
		snapshotter.WithCheckpointInterval(c.CheckpointInterval),
		snapshotter.WithMaxStates(c.MaxStates),
		snapshotter.WithLogger(logger),
		snapshotter.WithHooks(hooks),
	}
	if pool != nil {
		opts = append(opts, snapshotter.WithPostgres(pool, snapshots.WithPostgresSchema(c.Postgres.Schema)))
	} else {
		opts = append(opts, snapshotter.WithSnapshotsTopicPrefix(c.SnapshotsPrefix))
	}
	if c.TransactionalID != "" {
		opts = append(opts, snapshotter.WithTransactionalID(c.TransactionalID))
	}
	if c.Replication != 0 {
		opts = append(opts, snapshotter.WithReplicationFactor(c.Replication))
	}
	if c.SessionTimeout > 0 || c.RebalanceTimeout > 0 {
		var group []kgo.Opt
		if c.SessionTimeout > 0 {
			group = append(group, kgo.SessionTimeout(c.SessionTimeout))
		}
		if c.RebalanceTimeout > 0 {
			group = append(group, kgo.RebalanceTimeout(c.RebalanceTimeout))
		}
		opts = append(opts, snapshotter.KafkaClient(group...))
	}
	return opts
}

// timeout parses a duration from lo to hi.
func timeout(v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("not a duration (such as 10s or 1m)")
	}
	if d < lo || d > hi {
		return 0, fmt.Errorf("must be from %s to %s", lo, hi)
	}
	return d, nil
}

// printUsage writes the usage of cmd: the synopsis of every command and
// cmd's flags with their environment variables and defaults.
func printUsage(w io.Writer, cmd command, types []string) {
	fmt.Fprintf(w, `Usage:
  snapshotter [run] [flags]                   run the sidecar
  snapshotter inspect -type T -id ID [flags]  print an aggregate's latest snapshot and its partition's checkpoint
  snapshotter rebuild -type T [flags]         recompute every snapshot of T from the log (stop the sidecars first)
  snapshotter purge -type T [flags]           delete T's snapshots as the sidecars' owner, for them to write again
                                              (-schema-below N: only those of schema versions below N; -dry-run: count them)
  snapshotter migrate [flags]                 create or upgrade the tables of the PostgreSQL store (-snapshot-store postgres)
  snapshotter healthcheck [flags]             exit 0 when the local sidecar's /healthz answers 200
  snapshotter schema -type T                  print the Avro writer schema of T's snapshot records (envelope and state)
  snapshotter version                         print the version, VCS revision and Go version of the binary
  snapshotter help [command]                  print this usage, with the flags of command

Aggregate types: %s

Flags of %s (a flag given wins over its environment variable):
`, strings.Join(types, ", "), cmd)
	for _, s := range settings {
		if !s.takenBy(cmd) {
			continue
		}
		var notes []string
		if s.env != "" {
			notes = append(notes, s.env)
		}
		switch {
		case s.required:
			notes = append(notes, "required")
		case s.defaultFor(cmd) != "":
			notes = append(notes, "default "+strconv.Quote(s.defaultFor(cmd)))
		case s.defDoc != "":
			notes = append(notes, "default: "+s.defDoc)
		}
		flagArg := "-" + s.flag
		if s.arg != "" {
			flagArg += " " + s.arg
		}
		fmt.Fprintf(w, "  %s  (%s)\n        %s\n", flagArg, strings.Join(notes, "; "), s.usage)
	}
}
