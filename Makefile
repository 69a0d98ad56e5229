# Development and CI entry points.
#
#   make test         start the local Kafka broker, the SASL_SSL broker
#                     (scripts/kafka.sh secure) and the PostgreSQL server if
#                     they are not running, then run every test against them
#                     (race detector on)
#   make test-cluster start a three-node cluster (scripts/kafka.sh cluster),
#                     run the fault suite on it (kill -9 of a leader, a
#                     rolling restart, a paused node), stop the cluster
#   make bench        run the benchmarks against the same broker
#   make bench-report run the Kafka load benchmark (BenchmarkKafkaLoad/Account:
#                     full replay, snapshot load and bare fetch at 100 to
#                     100,000 events, three runs, two to three minutes on two
#                     cores) against the same broker, and write docs/bench.md
#                     (table, command, date, machine), docs/load.png (log-log
#                     plot) and the table in README.md (internal/benchreport)
#   make lint         gofmt and go vet
#   make kafka-start  start the broker (scripts/kafka.sh, data under .kafka/)
#   make kafka-stop   stop it
#   make postgres-start  start the PostgreSQL server (scripts/postgres.sh,
#                     data under .postgres/)
#   make postgres-stop   stop it
#
# make test and make bench leave the broker running so that the next run
# starts at once; `make kafka-stop` (or `bash scripts/kafka.sh stop`) stops
# it. Tests find the broker through SNAPLOG_KAFKA_BROKERS; see
# internal/kafkatest. KAFKA_PORT moves the broker off 127.0.0.1:9092, for
# scripts/kafka.sh and the tests alike. make test likewise starts, and
# leaves running, a PostgreSQL server of its own on 127.0.0.1:55432
# (POSTGRES_PORT moves it), which tests find through SNAPLOG_POSTGRES_URL;
# see internal/pgtest.

.POSIX:
.PHONY: test test-cluster bench bench-report lint kafka-start kafka-stop kafka-up kafka-secure-up postgres-start postgres-stop postgres-up

GO = go
KAFKA = bash scripts/kafka.sh
# Where scripts/kafka.sh listens: 127.0.0.1 on $KAFKA_PORT, default 9092.
KAFKA_BROKERS = 127.0.0.1:$${KAFKA_PORT:-9092}
POSTGRES = bash scripts/postgres.sh
# What scripts/postgres.sh prints: 127.0.0.1 on $POSTGRES_PORT, default 55432.
POSTGRES_URL = postgres://snaplog:snaplog@127.0.0.1:$${POSTGRES_PORT:-55432}/snaplog?sslmode=disable

# The secured broker's address, CA and credentials (SNAPLOG_KAFKA_SECURE_*)
# come from `scripts/kafka.sh secure env`.
test: kafka-up kafka-secure-up postgres-up
	set -a && eval "$$($(KAFKA) secure env)" && set +a && \
	SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) SNAPLOG_POSTGRES_URL="$(POSTGRES_URL)" $(GO) test -race -count=1 -timeout 12m ./...
	# Stops and starts the broker: runs alone, after everything else.
	SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test -count=1 -timeout 5m -tags kafkarestart -run 'TestKafkaSurvivesBrokerRestart|TestKafkaProcessTorture' ./log/

# The cluster's nodes listen on 127.0.0.1:19092-19094 (scripts/kafka.sh).
test-cluster:
	@bootstrap="$$($(KAFKA) cluster start | tail -n 1)" && \
	SNAPLOG_KAFKA_CLUSTER="$$bootstrap" $(GO) test -count=1 -timeout 12m -tags kafkacluster -run TestKafkaClusterFaults -v ./log/; \
	status=$$?; $(KAFKA) cluster stop; exit $$status

bench: kafka-up
	SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test -run '^$$' -bench . -benchmem ./...

# What make bench-report runs. -benchtime 50x -count 3: three runs of 50
# loads of each kind per history length.
BENCH_REPORT_ARGS = -run '^$$' -bench 'BenchmarkKafkaLoad/Account' -benchtime 50x -count 3 -benchmem -timeout 15m

# The report generator is built first, so that compiling it does not share
# the cores with the benchmark; it copies the benchmark's output to stdout
# as it comes, and fails, writing nothing, if the benchmark fails.
bench-report: kafka-up
	$(GO) build -o /dev/null ./internal/benchreport
	SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test $(BENCH_REPORT_ARGS) ./aggregate/ | \
	$(GO) run ./internal/benchreport -md docs/bench.md -png docs/load.png -readme README.md \
		-command "SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) go test $(BENCH_REPORT_ARGS) ./aggregate/" \
		-note "broker: Apache Kafka $$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml), one node (scripts/kafka.sh), on the same machine"

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; \
	fi
	$(GO) vet ./...

kafka-start:
	$(KAFKA) start

kafka-stop:
	$(KAFKA) stop

# Starts the broker unless it already runs and answers.
kafka-up:
	@$(KAFKA) status || $(KAFKA) start

# Starts the SASL_SSL broker (scripts/kafka.sh secure) unless it answers.
kafka-secure-up:
	@$(KAFKA) secure status || $(KAFKA) secure start

postgres-start:
	$(POSTGRES) start

postgres-stop:
	$(POSTGRES) stop

# Starts the PostgreSQL server unless it already runs and accepts
# connections.
postgres-up:
	@$(POSTGRES) status || $(POSTGRES) start
