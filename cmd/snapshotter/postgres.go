package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/snaplog/snaplog/kafkaconn"
	"github.com/snaplog/snaplog/snapshots"
)

// snapshotStore is where the snapshots and checkpoints are kept.
type snapshotStore string

const (
	// storeKafka is the snapshot topics (snapshots.Kafka).
	storeKafka snapshotStore = "kafka"
	// storePostgres is the tables of a PostgreSQL schema
	// (snapshots.Postgres, snapshotter.WithPostgres).
	storePostgres snapshotStore = "postgres"
)

// envPostgresURL is the environment variable of the PostgreSQL connection
// URL; a URL holds the password, so no flag carries it.
const envPostgresURL = "SNAPLOG_POSTGRES_URL"

// postgresConfig is the database of the PostgreSQL store.
type postgresConfig struct {
	// URLFile is the file the URL was read from: "" when it came from
	// SNAPLOG_POSTGRES_URL.
	URLFile string
	// Schema is the PostgreSQL schema of the store's tables.
	Schema string
	// TLS are the -postgres-tls settings: the same as the Kafka
	// connection's -tls ones, applied to the database's connections by
	// applyPostgresTLS.
	TLS kafkaconn.TLS
	// Pool is the URL parsed, with TLS applied: what the commands' pools
	// are made from.
	Pool *pgxpool.Config
}

// readPostgresURL returns the connection URL: the first line of file
// (named src in errors: -postgres-url-file or its variable), or env, the
// value of SNAPLOG_POSTGRES_URL. Its errors never quote the URL.
func readPostgresURL(file, src, env string) (string, error) {
	switch {
	case file != "" && env != "":
		return "", fmt.Errorf("both %s and %s give the PostgreSQL URL: give one", src, envPostgresURL)
	case env != "":
		return env, nil
	case file == "":
		return "", fmt.Errorf("the PostgreSQL URL is required: -postgres-url-file (or SNAPLOG_POSTGRES_URL_FILE), or the URL itself in %s", envPostgresURL)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	url, _, _ := strings.Cut(string(b), "\n")
	url = strings.TrimSpace(url)
	if url == "" {
		return "", fmt.Errorf("%s %s: its first line is empty", src, file)
	}
	return url, nil
}

// parsePostgresURL parses a connection URL, or keyword/value string, into
// a pool configuration. The URL's own parameters (sslmode, sslrootcert,
// pool_max_conns, ...) and the libpq environment variables pgx reads
// (PGSSLMODE, PGPASSWORD, ...) apply as pgx defines them. Its errors never
// quote the URL.
func parsePostgresURL(url string) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL URL: %s", withoutURL(err))
	}
	return pc, nil
}

// withoutURL returns the text of a pgx parse error without the connection
// string it quotes (redacted by pgx, at best effort).
func withoutURL(err error) string {
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if i := strings.LastIndex(msg, "`: "); strings.HasPrefix(msg, "cannot parse `") && i >= 0 {
			return msg[i+len("`: "):]
		}
		return "cannot be parsed"
	}
	return msg
}

// checkPostgresTLS reports the problems of the -postgres-tls settings that
// the URL has no part in, as kafkaconn.Config.Validate does for -tls.
func checkPostgresTLS(t kafkaconn.TLS) error {
	var errs []error
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("a client certificate needs both -postgres-tls-cert and -postgres-tls-key"))
	}
	if t.InsecureSkipVerify && t.CAFile != "" {
		errs = append(errs, errors.New("-postgres-tls-insecure-skip-verify and -postgres-tls-ca: the CA would not be used"))
	}
	return errors.Join(errs...)
}

// applyPostgresTLS applies the -postgres-tls settings t to the
// connection configuration pgx parsed from the URL. Without any, the URL's
// sslmode and files decide alone. With one, every connection uses TLS
// (whatever the URL's sslmode, a plaintext attempt is never made) and
// verifies the server's certificate chain and name, as sslmode=verify-full
// does, unless t.InsecureSkipVerify: the name is t.ServerName or the host
// dialed, and the roots t.CAFile, else the URL's sslrootcert, else the
// system's. The client certificate is t's, else the URL's sslcert and
// sslkey. A URL that rules TLS out (sslmode=disable, a Unix socket) is
// refused.
func applyPostgresTLS(cc *pgconn.Config, t kafkaconn.TLS) error {
	if !t.On() {
		return nil
	}
	if err := checkPostgresTLS(t); err != nil {
		return err
	}
	type attempt struct {
		host string
		port uint16
		tls  *tls.Config
	}
	attempts := []attempt{{cc.Host, cc.Port, cc.TLSConfig}}
	for _, fb := range cc.Fallbacks {
		attempts = append(attempts, attempt{fb.Host, fb.Port, fb.TLSConfig})
	}
	// The URL's TLS configuration: its roots and client certificate.
	var base *tls.Config
	for _, a := range attempts {
		if network, _ := pgconn.NetworkAddress(a.host, a.port); network == "unix" {
			return fmt.Errorf("the -postgres-tls settings and the Unix socket %s: PostgreSQL uses no TLS on Unix sockets", a.host)
		}
		if base == nil && a.tls != nil {
			base = a.tls
		}
	}
	if base == nil {
		return errors.New("the -postgres-tls settings and a URL that rules TLS out (sslmode=disable): remove one")
	}
	tmpl := base.Clone()
	tmpl.MinVersion = max(tmpl.MinVersion, tls.VersionTLS12)
	tmpl.InsecureSkipVerify, tmpl.VerifyPeerCertificate = t.InsecureSkipVerify, nil
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return fmt.Errorf("-postgres-tls-ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-postgres-tls-ca %s: no PEM certificate in it", t.CAFile)
		}
		tmpl.RootCAs = roots
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("-postgres-tls-cert %s and -postgres-tls-key %s: %w", t.CertFile, t.KeyFile, err)
		}
		tmpl.Certificates = []tls.Certificate{cert}
	}
	forHost := func(host string) *tls.Config {
		c := tmpl.Clone()
		c.ServerName = t.ServerName
		if c.ServerName == "" {
			c.ServerName = host
		}
		return c
	}
	// One TLS attempt per host, in the URL's order: the plaintext ones of
	// sslmode=prefer and allow go.
	cc.TLSConfig = forHost(cc.Host)
	seen := map[string]bool{net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))): true}
	var fallbacks []*pgconn.FallbackConfig
	for _, a := range attempts[1:] {
		key := net.JoinHostPort(a.host, strconv.Itoa(int(a.port)))
		if seen[key] {
			continue
		}
		seen[key] = true
		fallbacks = append(fallbacks, &pgconn.FallbackConfig{Host: a.host, Port: a.port, TLSConfig: forHost(a.host)})
	}
	cc.Fallbacks = fallbacks
	return nil
}

// String describes the database without its secrets: the hosts, the
// database, the user, the schema and the -postgres-tls settings.
func (p postgresConfig) String() string {
	if p.Pool == nil {
		return "postgres(unset)"
	}
	cc := p.Pool.ConnConfig
	hosts := []string{net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))}
	for _, fb := range cc.Fallbacks {
		if h := net.JoinHostPort(fb.Host, strconv.Itoa(int(fb.Port))); hosts[len(hosts)-1] != h {
			hosts = append(hosts, h)
		}
	}
	parts := []string{"postgres=" + strings.Join(hosts, ",") + "/" + cc.Database, "user=" + cc.User, "schema=" + p.Schema}
	if t := p.TLS; t.On() {
		var s []string
		for _, kv := range [][2]string{{"ca", t.CAFile}, {"cert", t.CertFile}, {"key", t.KeyFile}, {"server-name", t.ServerName}} {
			if kv[1] != "" {
				s = append(s, kv[0]+"="+kv[1])
			}
		}
		if t.InsecureSkipVerify {
			s = append(s, "insecure-skip-verify")
		}
		parts = append(parts, "tls("+strings.Join(s, " ")+")")
	} else if cc.TLSConfig != nil {
		parts = append(parts, "tls(the URL's sslmode)")
	}
	return strings.Join(parts, " ")
}

// addr names the database in messages: its first host and port, and the
// database, host:port/database.
func (p postgresConfig) addr() string {
	cc := p.Pool.ConnConfig
	return net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))) + "/" + cc.Database
}

// pool returns a new connection pool on the database; it connects when
// first used. The caller closes it.
func (p postgresConfig) pool(ctx context.Context) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, p.Pool.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// store returns a PostgreSQL store on pool of the configured schema, with
// the extra options.
func (p postgresConfig) store(pool *pgxpool.Pool, codec *snapshots.AvroCodec, extra ...snapshots.PostgresOption) (*snapshots.Postgres, error) {
	return snapshots.NewPostgres(codec, pool, append([]snapshots.PostgresOption{snapshots.WithPostgresSchema(p.Schema)}, extra...)...)
}

// postgresPingTimeout bounds the check that the database answers and its
// schema is migrated, before a command starts.
const postgresPingTimeout = 10 * time.Second

// ready checks that the database answers and that its schema is
// migrated; an error names `snapshotter migrate` when it is not.
func (p postgresConfig) ready(ctx context.Context, pool *pgxpool.Pool) error {
	store, err := p.store(pool, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, postgresPingTimeout)
	defer cancel()
	return p.migrateHint(store.Ping(ctx))
}

// migrateHint returns err, naming `snapshotter migrate` when it reports an
// unmigrated schema (snapshots.ErrNotMigrated).
func (p postgresConfig) migrateHint(err error) error {
	if errors.Is(err, snapshots.ErrNotMigrated) {
		return fmt.Errorf("PostgreSQL schema %s is not migrated: run `snapshotter migrate` with the same -postgres settings first (%w)", p.Schema, err)
	}
	return err
}
