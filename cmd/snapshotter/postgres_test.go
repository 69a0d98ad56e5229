package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/snaplog/snaplog/examples/order"
	"github.com/snaplog/snaplog/internal/kafkatest"
	"github.com/snaplog/snaplog/internal/pgtest"
	"github.com/snaplog/snaplog/snapshots"
)

// postgresEnviron is the sidecar's environment for the test's topics and
// group, keeping the snapshots in the PostgreSQL schema: environ without
// the snapshot topics' settings (blank counts as not set).
func (e *kafkaEnv) postgresEnviron(url, schema string, extra ...string) func(string) string {
	return e.environ(append([]string{"SNAPLOG_SNAPSHOTS_PREFIX", "", "SNAPLOG_REPLICATION", "",
		"SNAPLOG_SNAPSHOT_STORE", "postgres", "SNAPLOG_POSTGRES_URL", url, "SNAPLOG_POSTGRES_SCHEMA", schema}, extra...)...)
}

// postgresStoreOf is a PostgreSQL store of the test's schema that decodes
// orders.
func (e *kafkaEnv) postgresStoreOf(t *testing.T, schema string) *snapshots.Postgres {
	t.Helper()
	codec, err := codecOf(testTypes(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	store, err := snapshots.NewPostgres(codec, pgtest.Pool(t), snapshots.WithPostgresSchema(schema), snapshots.WithPostgresEventsTopicPrefix(e.events))
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// TestPostgresSidecar runs the commands with -snapshot-store postgres on a
// fresh schema: migrate creates the tables, and again does nothing; the
// sidecar gets ready and writes the snapshots and checkpoints to
// PostgreSQL, creating no snapshot topic; inspect reads them; purge deletes
// them, refusing another owner, and the running sidecar writes them again;
// the sidecar stops with its final checkpoints; rebuild recomputes them.
func TestPostgresSidecar(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	e := newKafkaEnv(t, 2)
	env := e.postgresEnviron(url, schema)
	cmd := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr strings.Builder
		code := run(ctxT(t, 2*time.Minute), args, env, &stdout, &stderr, testTypes(t))
		return code, stdout.String(), stderr.String()
	}

	code, stdout, stderr := cmd("migrate")
	first := regexp.MustCompile(`^migrate: PostgreSQL schema ` + schema + ` of 127\.0\.0\.1:\d+/\w+\n` +
		`  migration 1 applied: .+\n(  migration \d+ applied: .+\n)*schema ` + schema + ` is at migration (\d+)\n$`)
	m := first.FindStringSubmatch(stdout)
	if code != exitOK || m == nil || stderr != "" {
		t.Fatalf("migrate: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	header, _, _ := strings.Cut(stdout, "\n")
	code, stdout, stderr = cmd("migrate")
	if want := header + "\n  nothing to apply: the schema was up to date\nschema " + schema + " is at migration " + m[2] + "\n"; code != exitOK ||
		stdout != want || stderr != "" {
		t.Fatalf("migrate again: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}

	var orders []order.Order
	for i := range 4 {
		orders = append(orders, e.writeOrder(t, item{fmt.Sprintf("Product %d", i), 1 + i, 10}))
	}
	s := startSidecar(t, env)
	base := s.url(t)
	waitFor(t, "/readyz 200", 60*time.Second, func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusOK
	})
	waitFor(t, "4 snapshots written", 60*time.Second, func() bool {
		_, body := get(t, base+"/metrics")
		return strings.Contains(body, `snaplog_snapshotter_snapshots_written_total{aggregate_type="Order"} 4`) &&
			strings.Contains(body, "snaplog_snapshotter_ready 1")
	})
	store := e.postgresStoreOf(t, schema)
	for _, o := range orders {
		snap, err := store.Get(ctxT(t, time.Minute), "Order", o.ID())
		if err != nil || snap.Version != o.Version() {
			t.Fatalf("%s v%d in PostgreSQL: snapshot %v, %v", o.ID(), o.Version(), snap, err)
		}
		cp, err := store.CheckpointOf(ctxT(t, time.Minute), "Order", o.ID())
		if err != nil || cp.Owner != e.group || !cp.Covers(o.ID()) {
			t.Fatalf("checkpoint of %s in PostgreSQL: %+v, %v", o.ID(), cp, err)
		}
	}
	topics, err := kafkatest.Admin(t).ListTopics(ctxT(t, time.Minute), e.snaps+"Order")
	if err != nil {
		t.Fatal(err)
	}
	if topics.Has(e.snaps + "Order") {
		t.Fatalf("the sidecar on PostgreSQL created the snapshot topic %sOrder", e.snaps)
	}

	o := orders[3]
	code, stdout, stderr = cmd("inspect", "-type", "Order", "-id", o.ID().String())
	for _, want := range []string{"  Aggregate ID: " + o.ID().String() + "\n", fmt.Sprintf("  Version: %d\n", o.Version()),
		"  Topic: " + e.events + "Order\n", "  Owner: " + e.group + "\n", "  Covers This Aggregate: True\n"} {
		if code != exitOK || !strings.Contains(stdout, want) {
			t.Fatalf("inspect: exit %d, stdout does not hold %q:\n%s\nstderr:\n%s", code, want, stdout, stderr)
		}
	}
	missing := uuid.New()
	code, stdout, stderr = cmd("inspect", "-type", "Order", "-id", missing.String())
	if want := "snapshotter inspect: Order " + missing.String() + " has no snapshot in " + schema + ".snapshots"; code != exitError || !strings.Contains(stderr, want) {
		t.Fatalf("inspect of an aggregate without snapshot: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, want)
	}

	code, stdout, stderr = cmd("purge", "-type", "Order", "-dry-run")
	if want := "purge Order: every snapshot of Order in " + schema + ".snapshots, dry run\n  total: 4 snapshots would be deleted; nothing was deleted\n"; code != exitOK ||
		stdout != want || stderr != "" {
		t.Fatalf("purge -dry-run: exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", code, stdout, want, stderr)
	}
	code, stdout, stderr = cmd("purge", "-type", "Order", "-group", "another-group")
	if code != exitError || !strings.Contains(stderr, fmt.Sprintf("owned by snapshotter %q", e.group)) || stdout != "" {
		t.Fatalf("purge as another owner: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if n, err := store.CountType(ctxT(t, time.Minute), "Order", 0); err != nil || n != 4 {
		t.Fatalf("%d snapshots after the refused purges (%v), want 4", n, err)
	}
	code, stdout, stderr = cmd("purge", "-type", "Order")
	if want := "purge Order: every snapshot of Order in " + schema + ".snapshots\n  total: 4 snapshots deleted\nthe snapshotters of group " + e.group; code != exitOK ||
		!strings.HasPrefix(stdout, want) || stderr != "" {
		t.Fatalf("purge: exit %d\nstdout:\n%s\nwant:\n%s...\nstderr:\n%s", code, stdout, want, stderr)
	}
	waitFor(t, "the deleted snapshots written again", 60*time.Second, func() bool {
		for _, o := range orders {
			if snap, err := store.Get(ctxT(t, time.Minute), "Order", o.ID()); err != nil || snap.Version != o.Version() {
				return false
			}
		}
		return true
	})

	if code := s.stop(t); code != exitOK {
		t.Fatalf("sidecar exit %d; stderr:\n%s", code, s.stderr)
	}
	final := map[float64]bool{}
	for _, l := range s.logLines() {
		if l["msg"] == "final checkpoint" {
			final[l["partition"].(float64)] = true
		}
		if l["msg"] == "starting" && (l["snapshot_store"] != "postgres" || !strings.Contains(fmt.Sprint(l["postgres"]), "schema="+schema)) {
			t.Errorf("the start is logged as %v", l)
		}
	}
	if len(final) != 2 || strings.Contains(s.stderr.String(), "snaplog:snaplog@") {
		t.Fatalf("final checkpoints of partitions %v; stderr:\n%s", final, s.stderr)
	}

	code, _, stderr = cmd("rebuild", "-type", "Order")
	if code != exitOK || !strings.Contains(stderr, "snapshotter rebuild: Order rebuilt from ") {
		t.Fatalf("rebuild: exit %d; stderr:\n%s", code, stderr)
	}
	ends, err := kafkatest.Admin(t).ListEndOffsets(ctxT(t, time.Minute), e.events+"Order")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range orders {
		snap, err := store.Get(ctxT(t, time.Minute), "Order", o.ID())
		if err != nil || snap.Version != o.Version() {
			t.Fatalf("%s v%d after the rebuild: snapshot %v, %v", o.ID(), o.Version(), snap, err)
		}
		cp, err := store.CheckpointOf(ctxT(t, time.Minute), "Order", o.ID())
		if err != nil {
			t.Fatal(err)
		}
		if end, _ := ends.Lookup(e.events+"Order", cp.EventsPartition); cp.Offset != end.Offset-1 || cp.Owner != e.group {
			// The last record of each partition is a transaction marker.
			t.Fatalf("checkpoint %+v after the rebuild, want offset %d owned by %s", cp, end.Offset-1, e.group)
		}
	}
}

// TestPostgresUnmigrated: on a schema migrate has not prepared, the sidecar
// and the commands that read it exit 1 at once, naming `snapshotter
// migrate`.
func TestPostgresUnmigrated(t *testing.T) {
	t.Parallel()
	url, schema := pgtest.URL(t), pgtest.Schema(t)
	id := uuid.NewString()[:8]
	e := &kafkaEnv{brokers: kafkatest.Brokers(t), events: "sc." + id + ".events.", group: "sc-" + id}
	env := e.postgresEnviron(url, schema)
	// /readyz says so too, should the schema go while a sidecar runs.
	pool := pgtest.Pool(t)
	pg := postgresConfig{Schema: schema}
	store, err := pg.store(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := newPostgresCheck(pg, store, time.Second).Check(t.Context()); err == nil || !strings.Contains(err.Error(), "run `snapshotter migrate`") {
		t.Errorf("the readiness check of an unmigrated schema: %v", err)
	}
	for _, args := range [][]string{
		nil, // run
		{"inspect", "-type", "Order", "-id", uuid.NewString()},
		{"purge", "-type", "Order", "-dry-run"},
		{"rebuild", "-type", "Order"},
	} {
		var stdout, stderr syncBuffer
		start := time.Now()
		code := run0(t, args, env, &stdout, &stderr)
		if code != exitError || !strings.Contains(stderr.String(), "PostgreSQL schema "+schema+" is not migrated: run `snapshotter migrate`") ||
			time.Since(start) > 20*time.Second {
			t.Errorf("%q on an unmigrated schema: exit %d after %s\nstdout:\n%s\nstderr:\n%s", args, code, time.Since(start), stdout.String(), stderr.String())
		}
	}
}
