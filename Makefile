# Development and CI entry points.
#
#   make test         start the local Kafka broker if it is not running, then
#                     run every test against it (race detector on)
#   make test-cluster start a three-node cluster (scripts/kafka.sh cluster),
#                     run the fault suite on it (kill -9 of a leader, a
#                     rolling restart, a paused node), stop the cluster
#   make bench        run the benchmarks against the same broker
#   make lint         gofmt and go vet
#   make kafka-start  start the broker (scripts/kafka.sh, data under .kafka/)
#   make kafka-stop   stop it
#
# make test and make bench leave the broker running so that the next run
# starts at once; `make kafka-stop` (or `bash scripts/kafka.sh stop`) stops
# it. Tests find the broker through SNAPLOG_KAFKA_BROKERS; see
# internal/kafkatest. KAFKA_PORT moves the broker off 127.0.0.1:9092, for
# scripts/kafka.sh and the tests alike.

.POSIX:
.PHONY: test test-cluster bench lint kafka-start kafka-stop kafka-up

GO = go
KAFKA = bash scripts/kafka.sh
# Where scripts/kafka.sh listens: 127.0.0.1 on $KAFKA_PORT, default 9092.
KAFKA_BROKERS = 127.0.0.1:$${KAFKA_PORT:-9092}

test: kafka-up
	SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test -race -count=1 -timeout 12m ./...
	# Stops and starts the broker: runs alone, after everything else.
	SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test -count=1 -timeout 5m -tags kafkarestart -run 'TestKafkaSurvivesBrokerRestart|TestKafkaProcessTorture' ./log/

# The cluster's nodes listen on 127.0.0.1:19092-19094 (scripts/kafka.sh).
test-cluster:
	@bootstrap="$$($(KAFKA) cluster start | tail -n 1)" && \
	SNAPLOG_KAFKA_CLUSTER="$$bootstrap" $(GO) test -count=1 -timeout 12m -tags kafkacluster -run TestKafkaClusterFaults -v ./log/; \
	status=$$?; $(KAFKA) cluster stop; exit $$status

bench: kafka-up
	SNAPLOG_KAFKA_BROKERS=$(KAFKA_BROKERS) $(GO) test -run '^$$' -bench . -benchmem ./...

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
