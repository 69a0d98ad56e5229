package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/kafkaconn"
)

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// defaults is the configuration of run with only the brokers given.
func defaults() config {
	return config{
		Brokers:            []string{"k1:9092"},
		Group:              "snaplog-snapshotter",
		EventsPrefix:       "snaplog.events.",
		SnapshotsPrefix:    "snaplog.snapshots.",
		Threshold:          100,
		CheckpointInterval: 5 * time.Second,
		SessionTimeout:     45 * time.Second,
		RebalanceTimeout:   time.Minute,
		MaxStates:          100_000,
		HTTPAddr:           ":8080",
		LogLevel:           slog.LevelInfo,
		SnapshotStore:      storeKafka,
	}
}

func TestParseConfig(t *testing.T) {
	id := uuid.MustParse("550e8400-e29b-41d4-a716-446655440000")
	const pgURL = "postgres://snaplog:s3cret@db.example:5432/snaps?sslmode=disable"
	urlFile := filepath.Join(t.TempDir(), "postgres-url")
	if err := os.WriteFile(urlFile, []byte(pgURL+"\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pg := func(schema string) postgresConfig { return postgresConfig{Schema: schema} }
	tests := []struct {
		name string
		cmd  command
		args []string
		env  map[string]string
		want func(c *config) // changes to defaults(); nil when errs are expected
		errs []string        // every expected problem, all reported at once
		n    int             // how many problems, 0 for a command line the flag package refuses
	}{
		{name: "defaults", cmd: cmdRun, env: map[string]string{"SNAPLOG_BROKERS": "k1:9092"}, want: func(*config) {}},
		{name: "environment", cmd: cmdRun, env: map[string]string{
			"SNAPLOG_BROKERS": "k1:9092, k2:9093", "SNAPLOG_GROUP": "g", "SNAPLOG_EVENTS_PREFIX": "e.", "SNAPLOG_SNAPSHOTS_PREFIX": "s.",
			"SNAPLOG_THRESHOLD": "7", "SNAPLOG_CHECKPOINT_INTERVAL": "1m", "SNAPLOG_MAX_STATES": "9", "SNAPLOG_REPLICATION": "3",
			"SNAPLOG_HTTP_ADDR": "127.0.0.1:9000", "SNAPLOG_LOG_LEVEL": "debug", "SNAPLOG_TRANSACTIONAL_ID": "pod-0",
		}, want: func(c *config) {
			c.Brokers, c.Group, c.EventsPrefix, c.SnapshotsPrefix = []string{"k1:9092", "k2:9093"}, "g", "e.", "s."
			c.Threshold, c.CheckpointInterval, c.MaxStates, c.Replication = 7, time.Minute, 9, 3
			c.HTTPAddr, c.LogLevel, c.TransactionalID = "127.0.0.1:9000", slog.LevelDebug, "pod-0"
		}},
		{name: "a flag wins over its environment variable", cmd: cmdRun,
			args: []string{"-brokers", "f:1", "-threshold", "5", "-checkpoint-interval=2s", "-log-level", "warn", "-http-addr", ":0"},
			env:  map[string]string{"SNAPLOG_BROKERS": "e:1", "SNAPLOG_THRESHOLD": "50", "SNAPLOG_CHECKPOINT_INTERVAL": "0", "SNAPLOG_MAX_STATES": "3"},
			want: func(c *config) {
				c.Brokers, c.Threshold, c.CheckpointInterval, c.LogLevel, c.HTTPAddr = []string{"f:1"}, 5, 2*time.Second, slog.LevelWarn, ":0"
				c.MaxStates = 3 // no flag: the environment's
			}},
		{name: "a blank environment variable is not set", cmd: cmdRun,
			env:  map[string]string{"SNAPLOG_BROKERS": "k1:9092", "SNAPLOG_GROUP": "  ", "SNAPLOG_THRESHOLD": ""},
			want: func(*config) {}},
		{name: "every error at once", cmd: cmdRun,
			args: []string{"-checkpoint-interval", "soon", "-replication", "0", "-events-prefix", "x.", "-snapshots-prefix", "x.", "extra"},
			env: map[string]string{"SNAPLOG_THRESHOLD": "0", "SNAPLOG_MAX_STATES": "many", "SNAPLOG_LOG_LEVEL": "loud",
				"SNAPLOG_HTTP_ADDR": "8080"},
			errs: []string{
				`unexpected arguments ["extra"]`,
				"-brokers (or SNAPLOG_BROKERS) is required",
				`SNAPLOG_THRESHOLD "0": must be positive`,
				`-checkpoint-interval "soon": not a duration`,
				`SNAPLOG_MAX_STATES "many": not an integer`,
				`-replication "0": must be -1 or from 1 to 32767`,
				`SNAPLOG_HTTP_ADDR "8080": not host:port`,
				`SNAPLOG_LOG_LEVEL "loud": not one of debug, info, warn, error`,
				`the events and snapshot topics share the prefix "x."`,
			}, n: 9},
		{name: "bad values from flags", cmd: cmdRun,
			args: []string{"-brokers", "a:1,b,:3", "-group", "", "-events-prefix", "bad prefix", "-http-addr", ":http"},
			errs: []string{
				`-brokers "a:1,b,:3": "b" is not host:port`, `":3" is not host:port`,
				`-group "": must not be empty`,
				`-events-prefix "bad prefix": ' ' cannot be part of a topic name`,
				`-http-addr ":http": port "http" is not a number`,
			}, n: 4},
		{name: "inspect", cmd: cmdInspect, args: []string{"-type", "Order", "-id", id.String(), "-brokers", "k1:9092"},
			want: func(c *config) {
				*c = config{Brokers: c.Brokers, EventsPrefix: c.EventsPrefix, SnapshotsPrefix: c.SnapshotsPrefix, LogLevel: slog.LevelWarn, SnapshotStore: storeKafka,
					Type: "Order", ID: id}
			}},
		{name: "inspect without its arguments", cmd: cmdInspect, args: []string{"-id", "nope"},
			env:  map[string]string{"SNAPLOG_BROKERS": "k1:9092"},
			errs: []string{"-type is required", `-id "nope": not a UUID`}, n: 2},
		{name: "inspect takes no snapshotter settings", cmd: cmdInspect, args: []string{"-type", "Order", "-id", id.String(), "-threshold", "3"},
			errs: []string{"flag provided but not defined: -threshold"}},
		{name: "rebuild of an unknown type", cmd: cmdRebuild, args: []string{"-type", "Invoice", "-brokers", "k1:9092"},
			errs: []string{`-type "Invoice": not an aggregate type of this binary (Order)`}, n: 1},
		{name: "purge", cmd: cmdPurge, args: []string{"-type", "Order", "-schema-below", "3", "-dry-run"},
			env: map[string]string{"SNAPLOG_BROKERS": "k1:9092", "SNAPLOG_GROUP": "orders"},
			want: func(c *config) {
				*c = config{Brokers: c.Brokers, Group: "orders", EventsPrefix: c.EventsPrefix, SnapshotsPrefix: c.SnapshotsPrefix,
					SnapshotStore: storeKafka, LogLevel: slog.LevelWarn, Type: "Order", SchemaBelow: 3, DryRun: true}
			}},
		{name: "purge of every schema version, for real", cmd: cmdPurge, args: []string{"-type", "Order", "-dry-run=false", "-brokers", "k1:9092"},
			want: func(c *config) {
				*c = config{Brokers: c.Brokers, Group: c.Group, EventsPrefix: c.EventsPrefix, SnapshotsPrefix: c.SnapshotsPrefix,
					SnapshotStore: storeKafka, LogLevel: slog.LevelWarn, Type: "Order"}
			}},
		{name: "purge with bad flags", cmd: cmdPurge, args: []string{"-schema-below", "0", "-dry-run=maybe", "-group", ""},
			errs: []string{
				"-brokers (or SNAPLOG_BROKERS) is required",
				"-type is required",
				`-schema-below "0": must be from 1 to 2147483647`,
				`-dry-run "maybe": not true or false`,
				`-group "": must not be empty`,
			}, n: 5},
		{name: "purge with a schema version that is not a number", cmd: cmdPurge,
			args: []string{"-type", "Order", "-schema-below", "two", "-brokers", "k1:9092"},
			errs: []string{`-schema-below "two": not an integer`}, n: 1},
		{name: "purge of an unknown type", cmd: cmdPurge, args: []string{"-type", "Invoice", "-brokers", "k1:9092"},
			errs: []string{`-type "Invoice": not an aggregate type of this binary (Order)`}, n: 1},
		{name: "purge takes no snapshotter settings", cmd: cmdPurge, args: []string{"-type", "Order", "-threshold", "3"},
			errs: []string{"flag provided but not defined: -threshold"}},
		{name: "dry-run is purge's alone", cmd: cmdRebuild, args: []string{"-type", "Order", "-dry-run"},
			errs: []string{"flag provided but not defined: -dry-run"}},
		{name: "postgres", cmd: cmdRun,
			env:  map[string]string{"SNAPLOG_BROKERS": "k1:9092", "SNAPLOG_SNAPSHOT_STORE": "postgres", "SNAPLOG_POSTGRES_URL": pgURL},
			want: func(c *config) { c.SnapshotStore, c.SnapshotsPrefix, c.Postgres = storePostgres, "", pg("snaplog") }},
		{name: "postgres from flags and a URL file", cmd: cmdRun,
			args: []string{"-brokers", "k1:9092", "-snapshot-store", "postgres", "-postgres-url-file", urlFile, "-postgres-schema", "orders"},
			want: func(c *config) {
				c.SnapshotStore, c.SnapshotsPrefix, c.Postgres = storePostgres, "", pg("orders")
				c.Postgres.URLFile = urlFile
			}},
		{name: "inspect on postgres", cmd: cmdInspect, args: []string{"-type", "Order", "-id", id.String(), "-snapshot-store=postgres"},
			env: map[string]string{"SNAPLOG_BROKERS": "k1:9092", "SNAPLOG_POSTGRES_URL_FILE": urlFile, "SNAPLOG_POSTGRES_SCHEMA": "s"},
			want: func(c *config) {
				*c = config{Brokers: c.Brokers, EventsPrefix: c.EventsPrefix, LogLevel: slog.LevelWarn, Type: "Order", ID: id,
					SnapshotStore: storePostgres, Postgres: postgresConfig{URLFile: urlFile, Schema: "s"}}
			}},
		{name: "migrate: postgres, without kafka", cmd: cmdMigrate,
			env:  map[string]string{"SNAPLOG_POSTGRES_URL": pgURL, "SNAPLOG_BROKERS": "ignored", "SNAPLOG_SNAPSHOT_STORE": "kafka"},
			want: func(c *config) { *c = config{SnapshotStore: storePostgres, Postgres: pg("snaplog")} }},
		{name: "migrate without the URL", cmd: cmdMigrate, args: []string{"-postgres-schema", "s"},
			errs: []string{"the PostgreSQL URL is required: -postgres-url-file (or SNAPLOG_POSTGRES_URL_FILE), or the URL itself in SNAPLOG_POSTGRES_URL"}, n: 1},
		{name: "migrate takes no store", cmd: cmdMigrate, args: []string{"-snapshot-store", "postgres"},
			errs: []string{"flag provided but not defined: -snapshot-store"}},
		{name: "postgres settings with the kafka store", cmd: cmdRun, args: []string{"-postgres-tls", "-brokers", "k1:9092"},
			env:  map[string]string{"SNAPLOG_POSTGRES_URL": pgURL, "SNAPLOG_POSTGRES_SCHEMA": "s"},
			errs: []string{"SNAPLOG_POSTGRES_SCHEMA, -postgres-tls, SNAPLOG_POSTGRES_URL: PostgreSQL settings, but -snapshot-store is kafka"}, n: 1},
		{name: "snapshot topic settings with the postgres store", cmd: cmdRun,
			args: []string{"-snapshot-store", "postgres", "-snapshots-prefix", "s.", "-replication", "3", "-brokers", "k1:9092"},
			env:  map[string]string{"SNAPLOG_POSTGRES_URL": pgURL, "SNAPLOG_TRANSACTIONAL_ID": "pod-0"},
			errs: []string{"-snapshots-prefix, -replication, SNAPLOG_TRANSACTIONAL_ID: settings of the snapshot topics, which -snapshot-store postgres does not use"}, n: 1},
		{name: "postgres without the URL", cmd: cmdRebuild, args: []string{"-type", "Order", "-snapshot-store", "postgres", "-brokers", "k1:9092"},
			errs: []string{"the PostgreSQL URL is required"}, n: 1},
		{name: "the URL twice", cmd: cmdRun, args: []string{"-snapshot-store", "postgres", "-postgres-url-file", urlFile, "-brokers", "k1:9092"},
			env:  map[string]string{"SNAPLOG_POSTGRES_URL": pgURL},
			errs: []string{"both -postgres-url-file and SNAPLOG_POSTGRES_URL give the PostgreSQL URL: give one"}, n: 1},
		{name: "a URL file that is not there", cmd: cmdPurge, args: []string{"-type", "Order", "-snapshot-store", "postgres", "-brokers", "k1:9092"},
			env:  map[string]string{"SNAPLOG_POSTGRES_URL_FILE": "/no/url"},
			errs: []string{"SNAPLOG_POSTGRES_URL_FILE: open /no/url: no such file or directory"}, n: 1},
		{name: "an unknown store", cmd: cmdRun, args: []string{"-snapshot-store", "s3", "-brokers", "k1:9092"},
			env:  map[string]string{"SNAPLOG_POSTGRES_URL": pgURL},
			errs: []string{`-snapshot-store "s3": not kafka or postgres`}, n: 1},
		{name: "bad postgres settings", cmd: cmdRun,
			args: []string{"-snapshot-store", "postgres", "-postgres-schema", strings.Repeat("s", 64), "-postgres-tls-cert", "c.pem",
				"-postgres-tls-ca", "ca.pem", "-postgres-tls-insecure-skip-verify", "-brokers", "k1:9092"},
			env: map[string]string{"SNAPLOG_POSTGRES_URL": pgURL},
			errs: []string{`-postgres-schema "sss`, `": longer than PostgreSQL's 63-byte identifiers`,
				"PostgreSQL connection (the -postgres-tls flags): a client certificate needs both -postgres-tls-cert and -postgres-tls-key",
				"-postgres-tls-insecure-skip-verify and -postgres-tls-ca: the CA would not be used"}, n: 2},
		{name: "TLS that the URL rules out", cmd: cmdRun, args: []string{"-snapshot-store", "postgres", "-postgres-tls", "-brokers", "k1:9092"},
			env:  map[string]string{"SNAPLOG_POSTGRES_URL": pgURL},
			errs: []string{"the -postgres-tls settings and a URL that rules TLS out (sslmode=disable)"}, n: 1},
		{name: "healthcheck", cmd: cmdHealthcheck, env: map[string]string{"SNAPLOG_HTTP_ADDR": "127.0.0.1:9000"},
			want: func(c *config) { *c = config{HTTPAddr: "127.0.0.1:9000"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			got, err := parseConfig(tt.cmd, tt.args, getenv(tt.env), []string{"Order"}, io.Discard, &out)
			if tt.want != nil {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				want := defaults()
				tt.want(&want)
				if slices.Contains(kafkaCmds, tt.cmd) && (!slices.Equal(got.Conn.Brokers, got.Brokers) || len(got.KafkaOpts) == 0) {
					t.Fatalf("connection %s with %d options, brokers %v", got.Conn, len(got.KafkaOpts), got.Brokers)
				}
				if (got.SnapshotStore == storePostgres) != (got.Postgres.Pool != nil) {
					t.Fatalf("store %s with the pool configuration %v", got.SnapshotStore, got.Postgres.Pool)
				}
				got.Conn, got.KafkaOpts, got.Postgres.Pool = kafkaconn.Config{}, nil, nil
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got  %+v\nwant %+v", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; config %+v", got)
			}
			msg := err.Error() + out.String()
			for _, e := range tt.errs {
				if !strings.Contains(msg, e) {
					t.Errorf("the errors do not report %q:\n%s", e, msg)
				}
			}
			var invalid *invalidConfig
			if errors.As(err, &invalid) != (tt.n > 0) || (invalid != nil && len(invalid.errs) != tt.n) {
				t.Errorf("reported %v, want %d problems", err, tt.n)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range commands {
		var out strings.Builder
		_, err := parseConfig(cmd, []string{"-h"}, getenv(nil), []string{"Order"}, &out, io.Discard)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s -h: %v", cmd, err)
		}
		for _, s := range settings {
			if !s.takenBy(cmd) {
				continue
			}
			for _, want := range []string{"-" + s.flag + " ", s.env, s.defaultFor(cmd)} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("%s -h does not show %q:\n%s", cmd, want, out.String())
				}
			}
		}
	}
}

// TestRunHelpAndVersion: -h and help print the usage to stdout, version
// the build.
func TestRunHelpAndVersion(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "SNAPLOG_BROKERS"},
		{[]string{"rebuild", "-h"}, "-type name"},
		{[]string{"help"}, "Flags of run"},
		{[]string{"help", "inspect"}, "-id uuid"},
		{[]string{"help", "purge"}, "-dry-run  ("},
		{[]string{"help", "migrate"}, "SNAPLOG_POSTGRES_URL"},
		{[]string{"help"}, "snapshotter migrate [flags]"},
		{[]string{"version"}, "snapshotter "},
	} {
		var stdout, stderr strings.Builder
		code := run(t.Context(), tt.args, getenv(nil), &stdout, &stderr, testTypes(t))
		if code != exitOK || !strings.Contains(stdout.String(), tt.want) || stderr.Len() != 0 {
			t.Errorf("run %q: exit %d; stdout does not hold %q, or stderr is not empty:\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.want, stdout.String(), stderr.String())
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"-threshold", "-1"}, exitUsage, "snapshotter run: invalid configuration:\n  -brokers (or SNAPLOG_BROKERS) is required\n  -threshold \"-1\": must be positive\n"},
		{[]string{"inspect", "-nope"}, exitUsage, "flag provided but not defined: -nope"},
		{[]string{"migrate"}, exitUsage, "snapshotter migrate: invalid configuration:\n  the PostgreSQL URL is required"},
		{[]string{"-snapshot-store", "postgres", "-snapshots-prefix", "s.", "-brokers", "k:1"}, exitUsage,
			"snapshotter run: invalid configuration:\n  -snapshots-prefix: a setting of the snapshot topics, which -snapshot-store postgres does not use\n" +
				"  the PostgreSQL URL is required"},
		{[]string{"purge", "-type", "Order", "-schema-below", "-1"}, exitUsage,
			"snapshotter purge: invalid configuration:\n  -brokers (or SNAPLOG_BROKERS) is required\n  -schema-below \"-1\": must be from 1 to 2147483647\n"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		code := run(t.Context(), tt.args, getenv(nil), io.Discard, &stderr, testTypes(t))
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run %q: exit %d, want %d; stderr does not hold %q:\n%s", tt.args, code, tt.code, tt.want, stderr.String())
		}
	}
}

// TestConnectionSettings: the -tls and -sasl settings are validated with the
// rest, the password comes from the environment only, and the connection's
// description carries no secret.
func TestConnectionSettings(t *testing.T) {
	pass := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pass, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(cmdRun, []string{"-brokers", "k:9096", "-tls", "-sasl-mechanism", "SCRAM-SHA-512", "-sasl-username", "orders",
		"-sasl-password-file", pass}, getenv(nil), []string{"Order"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Conn.TLS.On() || c.Conn.SASL.Mechanism != kafkaconn.ScramSHA512 || c.Conn.SASL.Username != "orders" || len(c.KafkaOpts) != 3 {
		t.Fatalf("connection %s with %d options", c.Conn, len(c.KafkaOpts))
	}
	if strings.Contains(c.Conn.String(), "s3cret") {
		t.Fatalf("the connection's description gives the password away: %s", c.Conn)
	}
	c, err = parseConfig(cmdInspect, []string{"-brokers", "k:9096", "-type", "Order", "-id", uuid.NewString(), "-sasl-mechanism", "PLAIN",
		"-sasl-username", "orders"}, getenv(map[string]string{"SNAPLOG_SASL_PASSWORD": "s3cret"}), []string{"Order"}, io.Discard, io.Discard)
	if err != nil || c.Conn.SASL.Password != "s3cret" {
		t.Fatalf("password from the environment: %v, %+v", err, c.Conn.SASL)
	}

	_, err = parseConfig(cmdRun, []string{"-brokers", "k:9096", "-tls-ca", "/no/ca.pem", "-tls-cert", "/no/c.pem",
		"-sasl-mechanism", "SCRAM-SHA-256", "-threshold", "0"}, getenv(nil), []string{"Order"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"connection (the -tls and -sasl flags)", "tls: CA file: stat /no/ca.pem", "needs both its cert file and its key file",
		"sasl SCRAM-SHA-256: no username", "no password or password file", `-threshold "0": must be positive`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	_, err = parseConfig(cmdRun, []string{"-brokers", "k:9096", "-sasl-mechanism", "GSSAPI"}, getenv(nil), []string{"Order"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `-sasl-mechanism "GSSAPI": not one of PLAIN`) {
		t.Errorf("an unknown mechanism: %v", err)
	}
	var out strings.Builder
	if _, err := parseConfig(cmdRun, []string{"-brokers", "k:9096", "-sasl-password", "x"}, getenv(nil), []string{"Order"}, io.Discard, &out); err == nil {
		t.Error("-sasl-password is a flag: a password on the command line is visible to ps")
	}
}

// TestPostgresSettings: the PostgreSQL URL comes from a file or the
// environment, never a flag; its parameters apply; and neither the
// description of the database nor the errors about the URL give its
// password away.
func TestPostgresSettings(t *testing.T) {
	var out strings.Builder
	_, err := parseConfig(cmdRun, []string{"-brokers", "k:1", "-snapshot-store", "postgres", "-postgres-url", "postgres://u:pw@db/x"},
		getenv(nil), []string{"Order"}, io.Discard, &out)
	if err == nil || !strings.Contains(out.String(), "flag provided but not defined: -postgres-url") {
		t.Errorf("-postgres-url is a flag: a password on the command line is visible to ps (%v)", err)
	}

	env := getenv(map[string]string{"SNAPLOG_POSTGRES_URL": "postgres://orders:s3cret@db.example:6432/snaps?sslmode=require&pool_max_conns=3"})
	c, err := parseConfig(cmdRun, []string{"-brokers", "k:1", "-snapshot-store", "postgres", "-postgres-tls-insecure-skip-verify"}, env,
		[]string{"Order"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cc := c.Postgres.Pool.ConnConfig
	if cc.Host != "db.example" || cc.Port != 6432 || cc.Database != "snaps" || cc.User != "orders" || cc.Password != "s3cret" ||
		c.Postgres.Pool.MaxConns != 3 || cc.TLSConfig == nil || !cc.TLSConfig.InsecureSkipVerify {
		t.Fatalf("pool configuration %+v, max %d conns, TLS %+v", cc.Config, c.Postgres.Pool.MaxConns, cc.TLSConfig)
	}
	if got, want := c.Postgres.String(), "postgres=db.example:6432/snaps user=orders schema=snaplog tls(insecure-skip-verify)"; got != want {
		t.Errorf("description %q, want %q", got, want)
	}

	for _, url := range []string{
		"postgres://orders:s3cret@db.example:port/snaps",
		"postgres://orders:s3cret@db.example/snaps?sslmode=sometimes",
		"host=db.example password=s3cret sslmode=sometimes",
	} {
		_, err := parseConfig(cmdMigrate, nil, getenv(map[string]string{"SNAPLOG_POSTGRES_URL": url}), []string{"Order"}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "the PostgreSQL URL: ") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("a URL pgx refuses: %v; want an error about the URL without its password", err)
		}
	}
}
