// Command snapshotter is the snapshotter sidecar of the example Order
// domain: it runs package snapshotter, which consumes the events topics in a
// consumer group and writes snapshots and checkpoints to the snapshot
// topics, or to the tables of a PostgreSQL schema (-snapshot-store
// postgres), so that application processes only ever read a short tail of
// the log. It serves health, readiness and Prometheus metrics over HTTP, and
// has four maintenance commands, inspect, rebuild, purge and migrate.
//
// # Commands
//
//	snapshotter [run] [flags]                   run the sidecar
//	snapshotter inspect -type T -id ID [flags]  print an aggregate's latest snapshot and its partition's checkpoint
//	snapshotter rebuild -type T [flags]         recompute every snapshot of T from the log
//	snapshotter purge -type T [flags]           delete T's snapshots as the sidecars' owner, for them to write again
//	snapshotter migrate [flags]                 create or upgrade the tables of the PostgreSQL store
//	snapshotter healthcheck [flags]             exit 0 when the local sidecar's /healthz answers 200
//	snapshotter schema -type T                  print the Avro writer schema of T's snapshot records
//	snapshotter version                         print the version, VCS revision and Go version
//	snapshotter help [command]                  print the usage
//
// Exit codes: 0 done, 1 failed, 2 a wrong command line or configuration
// (every problem is listed at once). -h and help print a command's flags
// with their environment variables and defaults, to stdout. /metrics
// includes snaplog_snapshotter_build_info{version,revision,goversion} 1.
//
// # Configuration
//
// Every setting is a flag and, but for -type, -id, -schema-below and
// -dry-run, an environment variable; a flag given wins over its variable,
// and a variable set to blank counts as not set.
//
//	flag                  environment variable         default
//	-brokers              SNAPLOG_BROKERS              required: Kafka seed brokers, host:port,...
//	-tls                  SNAPLOG_TLS                  false (TLS, implied by every other -tls setting)
//	-tls-ca               SNAPLOG_TLS_CA               (PEM file of the CAs that verify the brokers; empty: the system's roots)
//	-tls-cert, -tls-key   SNAPLOG_TLS_CERT, _KEY       (client certificate and key, for mutual TLS)
//	-tls-server-name      SNAPLOG_TLS_SERVER_NAME      (the name the brokers' certificates must have)
//	-tls-insecure-skip-verify SNAPLOG_TLS_INSECURE_SKIP_VERIFY false (tests only)
//	-sasl-mechanism       SNAPLOG_SASL_MECHANISM       (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER, AWS_MSK_IAM)
//	-sasl-username        SNAPLOG_SASL_USERNAME
//	-sasl-password-file   SNAPLOG_SASL_PASSWORD_FILE   (or the password in SNAPLOG_SASL_PASSWORD; no flag)
//	-sasl-token-file      SNAPLOG_SASL_TOKEN_FILE      (OAUTHBEARER; read at each authentication)
//	-snapshot-store       SNAPLOG_SNAPSHOT_STORE       kafka (the snapshot topics), or postgres (a PostgreSQL schema's tables)
//	-postgres-url-file    SNAPLOG_POSTGRES_URL_FILE    (or the URL in SNAPLOG_POSTGRES_URL; no flag): required with postgres
//	-postgres-schema      SNAPLOG_POSTGRES_SCHEMA      snaplog
//	-postgres-tls         SNAPLOG_POSTGRES_TLS         false (TLS only, verify-full; implied by every other -postgres-tls setting)
//	-postgres-tls-ca      SNAPLOG_POSTGRES_TLS_CA      (PEM file of the CAs that verify the server; else the URL's sslrootcert, else the system's roots)
//	-postgres-tls-cert, -postgres-tls-key SNAPLOG_POSTGRES_TLS_CERT, _KEY (client certificate and key; else the URL's sslcert and sslkey)
//	-postgres-tls-server-name SNAPLOG_POSTGRES_TLS_SERVER_NAME (the name the server's certificate must have)
//	-postgres-tls-insecure-skip-verify SNAPLOG_POSTGRES_TLS_INSECURE_SKIP_VERIFY false (tests only)
//	-group                SNAPLOG_GROUP                snaplog-snapshotter (the consumer group; its checkpoints name it as owner)
//	-events-prefix        SNAPLOG_EVENTS_PREFIX        snaplog.events.
//	-snapshots-prefix     SNAPLOG_SNAPSHOTS_PREFIX     snaplog.snapshots. (kafka)
//	-threshold            SNAPLOG_THRESHOLD            100
//	-checkpoint-interval  SNAPLOG_CHECKPOINT_INTERVAL  5s
//	-session-timeout      SNAPLOG_SESSION_TIMEOUT      45s (a crashed replica's partitions move after this; lower fails over faster but moves partitions on shorter pauses)
//	-rebalance-timeout    SNAPLOG_REBALANCE_TIMEOUT    60s
//	-max-states           SNAPLOG_MAX_STATES           100000
//	-replication          SNAPLOG_REPLICATION          min(3, brokers); -1 is the broker's default (kafka)
//	-http-addr            SNAPLOG_HTTP_ADDR            :8080
//	-log-level            SNAPLOG_LOG_LEVEL            info; warn for inspect, rebuild and purge (debug, info, warn, error)
//	-transactional-id     SNAPLOG_TRANSACTIONAL_ID     the group, "-" and a random id (kafka)
//
// The settings map to the options of package snapshotter of the same names;
// -snapshot-store postgres to snapshotter.WithPostgres, with
// snapshots.WithPostgresSchema. Each running instance needs its own
// transactional id: leave it unset unless instances have stable identities
// (a StatefulSet's pod names). The store's settings go with their store: a
// -postgres setting or SNAPLOG_POSTGRES_URL with -snapshot-store kafka, and
// -snapshots-prefix, -replication or -transactional-id with postgres, are
// refused (exit 2), as is postgres without the URL. migrate takes the
// -postgres settings only, and implies postgres.
//
// # Running
//
// The sidecar logs JSON lines (log/slog) to stderr. It waits for the events
// topics of its aggregate types to exist, creates their snapshot topics
// (compacted, partitioned like the events topics; on PostgreSQL it checks
// instead that the schema is migrated, and exits 1 naming migrate when it
// is not), joins the group and snapshots. SIGTERM or SIGINT stops it: it ends the transaction in flight,
// if any, snapshots every dirty aggregate, writes the checkpoint of each of
// its partitions (logged as "final checkpoint"), leaves the group, stops the
// HTTP server gracefully and exits 0. A second signal kills it at once.
//
// The HTTP server (-http-addr) serves:
//
//   - /healthz: 200 while the process serves HTTP. It asks no broker: as a
//     liveness probe it must not restart every replica during a broker
//     outage;
//   - /readyz: 200 when the cluster answers a ping (made at most every 5s;
//     probes in between get the last outcome) and, on PostgreSQL, so does
//     the database, its schema migrated; the snapshotter has joined
//     its group, restored the partitions assigned to it and has at least
//     one, and no partition with records after its checkpoint has waited
//     more than three checkpoint intervals for a new one; else 503 with the
//     reason (the cluster's or the database's address when it does not
//     answer), and while stopping;
//   - /metrics: Prometheus text format, from a registry of its own.
//
// The metrics, all prefixed snaplog_snapshotter_:
//
//	lag_records{topic,partition}                gauge: records from the next one to process to the high watermark (a trailing transaction marker counts)
//	checkpoint_age_seconds{topic,partition}     gauge: time since the last checkpoint
//	checkpoint_offset{topic,partition}          gauge
//	records_after_checkpoint{topic,partition}   gauge: records processed since the checkpoint; 0 on an idle partition, where checkpoint_age_seconds means nothing
//	restore_seconds{topic,partition}            gauge: how long the partition's restore took
//	dirty_states{topic,partition}               gauge: states with events not yet in a snapshot
//	unsnapshotted_aggregates{topic,partition}   gauge: aggregates an event of which could not be applied
//	states                                      gauge: aggregate states held
//	assigned_partitions                         gauge
//	ready                                       gauge: 1 when ready
//	snapshots_written_total{aggregate_type}     counter
//	checkpoints_written_total{topic}            counter
//	apply_failures_total{topic}                 counter
//	transactions_aborted_total                  counter: Kafka transactions aborted; on PostgreSQL, partition writes fenced by a newer claim
//	events_applied_total                        counter
//	replays_total                               counter: aggregates rebuilt from the log
//
// and the Go runtime's go_* and the process's process_* metrics. The
// partition gauges cover the partitions assigned to the instance at the
// scrape.
//
// # PostgreSQL
//
// With -snapshot-store postgres the snapshots, the checkpoints and the
// offsets consumed are kept in the tables of one PostgreSQL schema
// (snapshots.Postgres), and the sidecar creates no snapshot topic: its group
// consumes without Kafka transactions, and each checkpoint interval writes
// a partition's snapshots, checkpoint and offset in one database
// transaction, under the claim it took of the partition at its assignment
// (see snapshotter.WithPostgres). The applications' repositories read the
// same schema through a snapshots.Postgres store.
//
// The database is named by a connection URL,
// postgres://user:password@host:port/database?sslmode=..., or a
// keyword/value string: the first line of -postgres-url-file, or
// SNAPLOG_POSTGRES_URL itself; never a flag, since the URL holds the
// password and ps shows the command line. Logs and errors name the hosts,
// database, user and schema, never the password. The URL's parameters apply
// as pgx reads them (sslmode, sslrootcert, sslcert, sslkey, pool_max_conns,
// connect_timeout, ...), and so do the libpq environment variables pgx
// reads (PGSSLMODE, PGPASSWORD, ...).
//
// Without a -postgres-tls setting, the URL's sslmode decides TLS alone
// (libpq's default, prefer, tries TLS without verifying the server, then
// plaintext). With any of them, every connection uses TLS, with no
// plaintext attempt whatever the URL's sslmode, and verifies the server's
// certificate chain and name as sslmode=verify-full does: the name
// -postgres-tls-server-name, else the host dialed; the roots
// -postgres-tls-ca, else the URL's sslrootcert, else the system's. The
// client certificate is -postgres-tls-cert and -postgres-tls-key, else the
// URL's sslcert and sslkey. -postgres-tls-insecure-skip-verify, for tests,
// accepts any certificate (refused with -postgres-tls-ca). A URL that rules
// TLS out, sslmode=disable or a Unix socket, is refused with a -postgres-tls
// setting.
//
// migrate creates the schema and its tables, or brings them up to this
// build's version ((*snapshots.Postgres).Migrate, in one transaction under
// an advisory lock, so that concurrent runs wait for each other), and
// prints what it did; run again, it applies nothing, and exits 0 either
// way:
//
//	migrate: PostgreSQL schema snaplog of db.example:5432/orders
//	  migration 1 applied: snapshots, events topics and checkpoints
//	  migration 2 applied: partition claims of snapshotters, and tombstones by partition
//	schema snaplog is at migration 2
//
// Run it at each deployment, before the sidecars and with a role that may
// create tables; run, inspect, purge and rebuild refuse a schema it has not
// brought to their version, naming it.
//
// # Inspect
//
// inspect prints one aggregate's latest snapshot in the layout of the
// seed's inspection example (its details, then each state field, lists as
// "[n items]" with their first two items), the log position of the last
// event it includes, and the checkpoint of its partition, from the snapshot
// topic or the PostgreSQL store's table. It exits 1 with a message when the
// aggregate has no snapshot.
//
// # Rebuild
//
// rebuild recomputes every snapshot of one aggregate type from its events,
// after a change to its apply function or its state schema: it runs the
// snapshotter with snapshotter.FromScratch in the sidecars' group until it
// has processed each events partition up to its end as of the start, then
// stops it, which writes the last snapshots and the checkpoints, and exits 0.
// It prints a progress line to stderr every second: the events processed of
// the total (the offsets of the events topic, transaction markers
// included), the rate and the time left.
//
// Stop the sidecars first: rebuild refuses to start while the group has
// members, and a sidecar that joins during a rebuild takes partitions from
// it (the rebuild then never completes; stop the sidecar and run it again).
// As a member of the same group, rebuild's writes are fenced like theirs;
// on PostgreSQL they are written under the claims it takes of the
// partitions, which fence the earlier claims, and replace the rows of the
// same versions. Applications may keep running: their loads stay correct
// throughout.
//
// # Purge
//
// purge deletes the snapshots of one aggregate type, or with -schema-below N
// only those taken with a state schema version below N: the housekeeping
// after a change to the type's state schema, whose older snapshots loads no
// longer use. It restores the type's snapshot topic, counts the matching
// snapshots of each partition, and writes a tombstone for each as the
// owner the sidecars' checkpoints name, -group (snapshots.Kafka.DeleteType).
// With -dry-run it prints the counts and deletes nothing; otherwise it
// prints what it deleted, per partition and in total, to stdout:
//
//	purge Order: snapshots of Order with schema version below 2 in snaplog.snapshots.Order
//	  partition 0: 12 snapshots deleted
//	  partition 1: 9 snapshots deleted
//	  total: 21 snapshots deleted
//	the snapshotters of group snaplog-snapshotter write them again at their next checkpoints; until then loads of those aggregates replay their events
//
// Loads of the aggregates whose snapshot was deleted read them from the
// log (their snapshots are deleted, not missing, so no checkpoint counts
// them as new), and the running sidecars write their snapshots again, with
// the type's current schema version, at their next checkpoints. So purge
// runs with the sidecars running: it exits 1 without deleting anything when
// partitions to purge are checkpointed by -group and the group has no
// members (the tombstones must be repaired before compaction drops them,
// delete.retention.ms after the cleaner reaches them), and when the topic's
// checkpoints name another owner than -group. A dry run prints the counts
// and then exits 1 with the reason the purge would be refused, if any.
//
// On PostgreSQL, purge deletes in one statement
// (snapshots.Postgres.DeleteType), all the matching snapshots or, when a
// partition's checkpoint names another owner than -group, none; the store
// counts by type, so purge prints the total alone:
//
//	purge Order: snapshots of Order with schema version below 2 in snaplog.snapshots
//	  total: 21 snapshots deleted
//
// It runs whether the sidecars do or not: its tombstones stay in the table
// until a snapshot replaces them, and the sidecars write the deleted
// snapshots again at their next checkpoints, stopped ones once started.
//
// # One's own domain
//
// main registers the example Order aggregate type. A sidecar of another
// domain copies this directory and, in main, registers its own types with
// snapshotter.Register (the aggregate.Type values its applications'
// repositories use, which carry their Avro state schemas, current and
// older) and passes them to run; inspect decodes snapshots with those
// schemas:
//
//	types := []snapshotter.Type{
//		snapshotter.Register(accountType),
//		snapshotter.Register(orderType),
//	}
//	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, types))
//
// # Container
//
// The Dockerfile at the repository's root builds the sidecar into a
// distroless image that runs as a non-root user and listens on 8080; its
// HEALTHCHECK runs "snapshotter healthcheck", since the image has no shell
// or curl. docker-compose.yml runs it next to a single-node Kafka.
package main
