// Package pgtest gives integration tests a PostgreSQL server, and each test
// a schema of its own on it.
//
// Tests find the server through the environment variable
// SNAPLOG_POSTGRES_URL ([EnvURL]), a connection URL such as the one
// `bash scripts/postgres.sh start` prints as its last line. The server must
// answer within a few seconds; if it does not, every test that asks for it
// fails with the reason: a server that was named but is down is an error,
// not a skip. Without the variable, a test fails when the environment
// variable CI is set to anything but a false value (as package kafkatest
// decides it: "true", "1", "yes" are true; "", "false", "0" are not), since
// in CI an integration test must never pass by skipping; otherwise it skips
// with instructions to start the server.
//
// Tests share the server, and so do the packages that go test runs in
// parallel: [Schema] returns a PostgreSQL schema name no other test uses,
// and drops the schema, with everything in it, when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snaplog/snaplog/kafkatest"
)

// EnvURL names the environment variable that holds the URL of a running
// PostgreSQL server, for example
// "postgres://snaplog:snaplog@127.0.0.1:55432/snaplog?sslmode=disable" as
// started by `bash scripts/postgres.sh start`.
const EnvURL = "SNAPLOG_POSTGRES_URL"

const envCI = "CI"

const (
	// pingTimeout bounds the check that the server named in EnvURL answers.
	pingTimeout = 5 * time.Second
	// cleanupTimeout bounds dropping a test's schema.
	cleanupTimeout = 30 * time.Second
)

// HowToStart is what a test that skips, or fails in CI, for want of a
// server tells the reader to do.
const HowToStart = "start one with `bash scripts/postgres.sh start`, then run " +
	"`" + EnvURL + "=$(bash scripts/postgres.sh url) go test ./...` (or `make test`, which does both)"

// decision is what URL does for a test.
type decision int

const (
	useEnv   decision = iota + 1 // the server named in EnvURL
	skipTest                     // no server, outside CI
	failTest                     // no server, in CI
)

// decide is URL's choice, a pure function of the two environment
// variables.
func decide(url, ci string) decision {
	switch {
	case strings.TrimSpace(url) != "":
		return useEnv
	case kafkatest.InCI(ci):
		return failTest
	default:
		return skipTest
	}
}

// The server named in EnvURL is pinged once per test binary, by the first
// test that asks.
var (
	pingOnce sync.Once
	pingErr  error
)

// URL returns the URL of the PostgreSQL server in EnvURL, checked to
// answer; without one it fails the test in CI and skips it elsewhere.
func URL(t testing.TB) string {
	t.Helper()
	url := strings.TrimSpace(os.Getenv(EnvURL))
	switch decide(url, os.Getenv(envCI)) {
	case failTest:
		t.Fatal("pgtest: CI is true but no PostgreSQL server is configured (" + EnvURL + " is not set); " + HowToStart)
	case skipTest:
		t.Skip("pgtest: no PostgreSQL server (" + EnvURL + " is not set); " + HowToStart)
	}
	pingOnce.Do(func() { pingErr = ping(url) })
	if pingErr != nil {
		t.Fatal(pingErr)
	}
	return url
}

func ping(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	var last error
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: no PostgreSQL server answers at %s=%s within %s (%w): "+
				"start one with `bash scripts/postgres.sh start` or point %s at a running server",
				EnvURL, redact(url), pingTimeout, last, EnvURL)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// redact hides the password of a URL in messages.
func redact(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		return url
	}
	return strings.Replace(url, ":"+cfg.Password+"@", ":***@", 1)
}

// Pool returns a connection pool on URL(t), closed when the test ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: pool on %s: %v", redact(url), err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Schema returns the name of a PostgreSQL schema that no other test uses
// ("snaplog_test_" and 12 random hex digits). It does not create the
// schema; when the test ends it drops it, if it exists, with everything in
// it. Schema calls URL, so it skips or fails the test as URL does.
func Schema(t testing.TB) string {
	t.Helper()
	url := URL(t)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "snaplog_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	return name
}
