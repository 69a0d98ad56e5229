package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrateTimeout bounds migrate: the advisory lock it waits for (another
// migrate of the schema) and the migrations.
const migrateTimeout = 5 * time.Minute

// migrate creates or upgrades the tables of the PostgreSQL store in the
// configured schema ((*snapshots.Postgres).Migrate), and prints the
// migrations it applied and the one the schema is at. Run again, it applies
// nothing; concurrent runs wait for each other.
func migrate(ctx context.Context, cfg config, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "snapshotter migrate: %v\n", err)
		return exitError
	}
	ctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	pool, err := cfg.Postgres.pool(ctx)
	if err != nil {
		return fail(err)
	}
	defer pool.Close()
	store, err := cfg.Postgres.store(pool, nil)
	if err != nil {
		return fail(err)
	}
	schema := cfg.Postgres.Schema
	before, err := appliedMigrations(ctx, pool, schema)
	if err != nil {
		return fail(err)
	}
	if err := store.Migrate(ctx); err != nil {
		return fail(err)
	}
	after, err := appliedMigrations(ctx, pool, schema)
	if err == nil {
		err = store.Ping(ctx) // the store's own check that it can use the schema
	}
	if err != nil {
		return fail(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "migrate: PostgreSQL schema %s of %s\n", schema, cfg.Postgres.addr())
	had := make(map[int]bool, len(before))
	for _, m := range before {
		had[m.version] = true
	}
	applied := 0
	for _, m := range after {
		if !had[m.version] {
			fmt.Fprintf(&b, "  migration %d applied: %s\n", m.version, m.description)
			applied++
		}
	}
	if applied == 0 {
		fmt.Fprintf(&b, "  nothing to apply: the schema was up to date\n")
	}
	at := 0
	if len(after) > 0 {
		at = after[len(after)-1].version
	}
	fmt.Fprintf(&b, "schema %s is at migration %d\n", schema, at)
	if _, err := io.WriteString(stdout, b.String()); err != nil {
		return fail(err)
	}
	return exitOK
}

// migration is one row of the schema_migrations table in which Migrate
// records each migration it applies.
type migration struct {
	version     int
	description string
}

// appliedMigrations returns the migrations recorded in schema, in order:
// none when the schema or its table does not exist.
func appliedMigrations(ctx context.Context, pool *pgxpool.Pool, schema string) ([]migration, error) {
	rows, err := pool.Query(ctx, `SELECT version, description FROM `+pgx.Identifier{schema}.Sanitize()+`.schema_migrations ORDER BY version`)
	var ms []migration
	if err == nil {
		ms, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (migration, error) {
			var m migration
			return m, r.Scan(&m.version, &m.description)
		})
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000") { // undefined_table, invalid_schema_name
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read the migrations of schema %s: %w", schema, err)
	}
	return ms, nil
}
