#!/usr/bin/env bash
# Runs a real, single-node Apache Kafka broker (KRaft, combined
# broker+controller) for development and CI. No Docker: the broker jars come
# from Maven Central via scripts/kafka/pom.xml and run on the `java` on PATH.
#
#   scripts/kafka.sh start     fetch jars (once), format storage (once), start,
#                              wait until the broker serves requests
#   scripts/kafka.sh stop      SIGTERM, wait, SIGKILL after a timeout
#   scripts/kafka.sh restart
#   scripts/kafka.sh status    exit 0 iff running and answering
#   scripts/kafka.sh logs [-f] [LINES]
#   scripts/kafka.sh reset     stop and delete all broker data (keeps jars)
#
# start and stop are idempotent. Everything (jars, config, data, logs, pid
# file) lives under .kafka/ at the repository root.
#
# Environment:
#   KAFKA_PORT             client listener (PLAINTEXT), default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller listener, default 9093
#   KAFKA_HEAP             max heap, default 512m
#   KAFKA_JVM_OPTS         extra JVM options
#   KAFKA_START_TIMEOUT    seconds to wait for readiness, default 90
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM, default 30
#
# Clients connect to 127.0.0.1:$KAFKA_PORT.
#
# Cluster mode: three KRaft nodes, each a combined broker+controller, with a
# static 3-voter controller quorum (controller.quorum.voters), for failover
# tests. Independent of the single node above (both can run at once): own
# ports, config, data, logs, pid files and cluster id under .kafka/cluster/
# (node1/ .. node3/), own lock (.kafka/cluster.lock); only the jars are
# shared. Node N is 1, 2 or 3.
#
#   scripts/kafka.sh cluster start [N...]   start all (or the given) nodes that
#                        are not running (formatting storage once), wait until
#                        they serve, print the bootstrap list as the last line
#                        of stdout; idempotent
#   scripts/kafka.sh cluster stop [N...]    SIGTERM all (or the given) nodes
#                        together, SIGKILL after a timeout; idempotent
#   scripts/kafka.sh cluster restart        stop all, start all
#   scripts/kafka.sh cluster restart N...   one node at a time: stop it
#                        gracefully, start it, wait until it serves
#   scripts/kafka.sh cluster kill N...      SIGKILL (then `cluster start N`)
#   scripts/kafka.sh cluster pause N...     SIGSTOP
#   scripts/kafka.sh cluster resume N...    SIGCONT
#   scripts/kafka.sh cluster status         per-node state and the brokers the
#                        cluster metadata lists; exit 0 iff all three run,
#                        none is paused and all three are live brokers
#   scripts/kafka.sh cluster bootstrap      print 127.0.0.1:P1,127.0.0.1:P2,...
#   scripts/kafka.sh cluster logs N [-f] [LINES]
#   scripts/kafka.sh cluster reset          stop, delete .kafka/cluster (keeps jars)
#
# "Serves" means: each started node's process is alive, it logged "Kafka
# Server started" (caught up with the metadata log and unfenced) and its
# client port accepts connections; then kafka-broker-api-versions, asked
# through the running nodes, lists each started node as an unfenced broker
# that answers; then, if all three run, no partition is under-replicated
# (TopicCommand --under-replicated-partitions is empty). A timeout on the
# first two fails the start (the nodes it launched are stopped); on the
# last one it only warns.
#
# Cluster defaults: default.replication.factor=3, min.insync.replicas=2,
# unclean.leader.election.enable=false, offsets and transaction state
# topics with RF 3 (transaction.state.log.min.isr=2), num.partitions=1;
# otherwise like the single node (no topic auto-creation, no initial
# rebalance delay, fast log cleaner), with fewer threads per node.
#
# Cluster environment:
#   KAFKA_CLUSTER_PORT_BASE             client port of node 1, default 19092
#                                       (node N: BASE+N-1: 19092,19093,19094)
#   KAFKA_CLUSTER_CONTROLLER_PORT_BASE  controller port of node 1, default
#                                       19192 (19192,19193,19194)
#   KAFKA_CLUSTER_HEAP                  max heap of each node, default 384m
#   KAFKA_CLUSTER_JVM_OPTS              extra JVM options for each node
#   KAFKA_CLUSTER_START_TIMEOUT         seconds to wait for readiness, default 180
#   KAFKA_CLUSTER_STOP_TIMEOUT          seconds to wait after SIGTERM, default 30
#   KAFKA_CLUSTER_WAIT_ISR              1 (default): start/restart also wait
#                                       for full ISRs; 0: don't
# While any node runs, the ports are those the cluster was started with
# (.kafka/cluster/ports); changing the port variables then is an error.
#
# Secure mode: one KRaft node (combined broker+controller) whose client
# listener is SASL_SSL, for the secured-connection tests. Independent of the
# single node and the cluster (all can run at once): own ports, config,
# data, logs, pid file, cluster id, CA and credentials under .kafka/secure/,
# own lock (.kafka/secure.lock); only the jars are shared. Topic defaults,
# transactions, log cleaner and threads are the single node's.
#
#   scripts/kafka.sh secure start      make the CA, broker certificate and
#                        credentials (once), format storage with the SCRAM
#                        users (once), start, wait until an admin client that
#                        authenticates with SCRAM-SHA-512 over TLS gets a
#                        topic list; print the bootstrap address as the last
#                        line of stdout; idempotent
#   scripts/kafka.sh secure stop       SIGTERM, wait, SIGKILL after a timeout;
#                        finds the broker by its pid file or, without one, by
#                        its command line; idempotent
#   scripts/kafka.sh secure restart
#   scripts/kafka.sh secure status     exit 0 iff running and answering over
#                        SASL_SSL
#   scripts/kafka.sh secure env        print NAME=value lines for clients:
#                        SNAPLOG_KAFKA_SECURE_BROKERS (127.0.0.1:9094),
#                        SNAPLOG_KAFKA_SECURE_CA (PEM file of the CA),
#                        SNAPLOG_KAFKA_SECURE_USER, SNAPLOG_KAFKA_SECURE_PASSWORD
#                        (a user of SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN),
#                        SNAPLOG_KAFKA_SECURE_MECHANISMS, and
#                        SNAPLOG_KAFKA_SECURE_CLIENT_CONFIG (client properties
#                        for Kafka's Java tools). Use them with
#                          set -a; eval "$(bash scripts/kafka.sh secure env)"; set +a
#                        or append them to $GITHUB_ENV.
#   scripts/kafka.sh secure bootstrap  print 127.0.0.1:$KAFKA_SECURE_PORT
#   scripts/kafka.sh secure logs [-f] [LINES]
#   scripts/kafka.sh secure reset      stop, delete .kafka/secure (data, CA,
#                        credentials; keeps jars)
#
# Listeners (all on 127.0.0.1): SASL_SSL for clients (TLS 1.2/1.3, no
# client certificates; SCRAM-SHA-256, SCRAM-SHA-512, PLAIN), INTERNAL
# (PLAINTEXT) for inter-broker traffic, CONTROLLER (PLAINTEXT). The CA and
# the broker certificate (SAN IP:127.0.0.1, DNS:localhost) are made with
# openssl and kept in PEM (ssl.keystore.type=PEM, ssl.truststore.type=PEM).
#
# Secure environment:
#   KAFKA_SECURE_PORT             SASL_SSL client listener, default 9094
#   KAFKA_SECURE_INTERNAL_PORT    inter-broker listener (PLAINTEXT), default 9095
#   KAFKA_SECURE_CONTROLLER_PORT  KRaft controller listener, default 9096
#   KAFKA_SECURE_HEAP             max heap, default 512m
#   KAFKA_SECURE_JVM_OPTS         extra JVM options
#   KAFKA_SECURE_START_TIMEOUT    seconds to wait for readiness, default 90
#   KAFKA_SECURE_STOP_TIMEOUT     seconds to wait after SIGTERM, default 30
# While it runs, the ports are those it was started with
# (.kafka/secure/ports); changing the port variables then is an error.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/scripts/kafka/pom.xml"
KDIR="$ROOT/.kafka"
LIBS="$KDIR/libs"
CONF="$KDIR/config"
DATA="$KDIR/data"
LOGS="$KDIR/logs"
PIDFILE="$KDIR/kafka.pid"
LOCKFILE="$KDIR/lock"

PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-9093}"
HOST=127.0.0.1
HEAP="${KAFKA_HEAP:-512m}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"

MAIN_CLASS=kafka.Kafka                                  # in kafka_2.13.jar
STORAGE_TOOL=kafka.tools.StorageTool                    # in kafka_2.13.jar
TOPIC_TOOL=org.apache.kafka.tools.TopicCommand          # in kafka-tools.jar

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_tools() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka 4.x needs Java 17+)"
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  if ! [[ "${v%%.*}" =~ ^[0-9]+$ ]] || (( ${v%%.*} < 17 )); then
    die "Java 17+ required, found java.specification.version=${v:-unknown}"
  fi
}

# ---------------------------------------------------------------- jars

# True iff $LIBS holds the jars of the current pom.
jars_fresh() {
  local stamp want
  stamp="$LIBS/.pom.sha256"
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null
}

fetch_jars() {
  local want
  if jars_fresh; then
    return 0
  fi
  want="$(sha256sum "$POM" | cut -d' ' -f1)"
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch the Kafka jars)"
  log "fetching Kafka jars with Maven into $LIBS ..."
  rm -rf "$LIBS" "$LIBS.tmp"
  mkdir -p "$LIBS.tmp"
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" >"$LOGS/maven.log" 2>&1; then
    tail -n 40 "$LOGS/maven.log" >&2
    die "Maven could not fetch the Kafka jars (full output: $LOGS/maven.log)"
  fi
  echo "$want" >"$LIBS.tmp/.pom.sha256"
  mv "$LIBS.tmp" "$LIBS"
}

# ---------------------------------------------------------------- config

# The settings of a single node (plain and secure mode alike) after its
# listeners and log.dirs: topic defaults, transactions, log cleaner, threads.
single_node_settings() {
  cat <<'EOF'
# Single node: everything has one replica.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests create their topics explicitly.
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# Upper bound a transactional producer may ask for (transaction.timeout.ms).
transaction.max.timeout.ms=900000

# Log cleaner tuned so compaction happens within seconds. The cleaner never
# touches the active segment, so topics that need fast compaction must also
# set per-topic segment.ms / segment.bytes (e.g. segment.ms=100,
# min.cleanable.dirty.ratio=0.01); a segment only rolls when a record is
# appended after segment.ms has passed.
log.cleaner.enable=true
log.cleaner.threads=1
log.cleaner.backoff.ms=500
log.cleaner.min.compaction.lag.ms=0
log.cleaner.min.cleanable.ratio=0.01
log.cleaner.dedupe.buffer.size=16777216

# Small machine: fewer threads.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# Broker logging (log4j 2) for a node whose logs go to -Dkafka.logs.dir.
broker_log4j2() {
  cat <<'EOF'
# Broker logging (log4j 2). Files go to ${sys:kafka.logs.dir}.
status = warn
name = snaplog-dev-kafka
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = ${sys:kafka.logs.dir}/server.log
appender.server.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 20MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
EOF
}

# Command-line tools: warnings only, to stderr (stdout stays clean).
tools_log4j2() {
  cat <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
EOF
}

write_config() {
  mkdir -p "$CONF"
  {
    cat <<EOF
# Generated by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
# Static single-voter quorum: the controller port may change between runs.
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$DATA

EOF
    single_node_settings
  } >"$CONF/server.properties"

  broker_log4j2 >"$CONF/log4j2.properties"
  tools_log4j2 >"$CONF/tools-log4j2.properties"

  cat >"$CONF/admin.properties" <<'EOF'
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
}

# Runs a Kafka command-line tool class from the classpath.
run_tool() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

format_storage() {
  if [[ -f "$DATA/meta.properties" ]]; then
    return 0
  fi
  local cid
  if [[ -s "$KDIR/cluster-id" ]]; then
    cid="$(cat "$KDIR/cluster-id")"
  else
    cid="$(run_tool "$STORAGE_TOOL" random-uuid | tail -n 1)"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (got: $cid)"
    echo "$cid" >"$KDIR/cluster-id"
  fi
  log "formatting KRaft storage in $DATA (cluster id $cid)"
  mkdir -p "$DATA"
  run_tool "$STORAGE_TOOL" format --config "$CONF/server.properties" \
    --cluster-id "$cid" --ignore-formatted >"$LOGS/format.log" 2>&1 \
    || { cat "$LOGS/format.log" >&2; die "kafka-storage format failed"; }
}

# ---------------------------------------------------------------- process

# Prints the broker pid if our broker is running (pid file + live process
# whose command line is this checkout's broker), else prints nothing.
running_pid() {
  [[ -f "$PIDFILE" ]] || return 0
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if kill -0 "$pid" 2>/dev/null \
     && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$MAIN_CLASS $CONF/server.properties"; then
    echo "$pid"
  fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Asks the broker on port $1 for its topic list through the client protocol.
answers() {
  timeout 30 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$CONF/tools-log4j2.properties" \
    -cp "$LIBS/*" "$TOPIC_TOOL" --bootstrap-server "$HOST:$1" \
    --command-config "$CONF/admin.properties" --list >/dev/null 2>&1
}

# Shows what the broker wrote since it was launched (byte offsets of
# server.log and stdout.log at launch time).
show_log_tail() {
  local server_off="${1:-0}" stdout_off="${2:-0}"
  log "last lines of $LOGS/server.log from this launch:"
  tail -c +"$((server_off + 1))" "$LOGS/server.log" 2>/dev/null | tail -n 40 >&2 || true
  if [[ -f "$LOGS/stdout.log" ]] && (( $(stat -c %s "$LOGS/stdout.log") > stdout_off )); then
    log "last lines of $LOGS/stdout.log from this launch:"
    tail -c +"$((stdout_off + 1))" "$LOGS/stdout.log" | tail -n 20 >&2
  fi
}

size_of() { if [[ -f "$1" ]]; then stat -c %s "$1"; else echo 0; fi; }

do_start() {
  local pid
  pid="$(running_pid)"
  if [[ -n "$pid" ]]; then
    log "already running (pid $pid) on $HOST:$(running_port)"
    return 0
  fi
  rm -f "$PIDFILE"
  need_tools
  for p in "$PORT" "$CPORT"; do
    port_open "$p" && die "port $HOST:$p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
  done
  fetch_jars
  write_config
  format_storage

  local t0 offset out_offset
  t0=$SECONDS
  offset="$(size_of "$LOGS/server.log")"
  out_offset="$(size_of "$LOGS/stdout.log")"

  # shellcheck disable=SC2086
  nohup java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.shutdownHookEnabled=false \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$CONF/log4j2.properties" \
    ${KAFKA_JVM_OPTS:-} \
    -cp "$LIBS/*" "$MAIN_CLASS" "$CONF/server.properties" \
    >>"$LOGS/stdout.log" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$PORT" >"$KDIR/port"
  log "started pid $pid, waiting up to ${START_TIMEOUT}s for $HOST:$PORT ..."

  # Ready = process alive, it logged "Kafka Server started" (KafkaRaftServer
  # logs this only after the broker caught up with the metadata log and was
  # unfenced), and a real admin client gets a topic list from it.
  local started=0
  while (( SECONDS - t0 < START_TIMEOUT )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      show_log_tail "$offset" "$out_offset"
      die "broker process exited during startup"
    fi
    # server.log rolls over at its size limit: read the new file from its start.
    if (( $(stat -c %s "$LOGS/server.log" 2>/dev/null || echo 0) < offset )); then
      offset=0
    fi
    if (( !started )) && tail -c +"$((offset + 1))" "$LOGS/server.log" 2>/dev/null | grep -q 'Kafka Server started'; then
      started=1
    fi
    if (( started )) && port_open "$PORT" && answers "$PORT"; then
      if tail -c +"$((offset + 1))" "$LOGS/server.log" | grep -E '\] (ERROR|FATAL) ' >&2; then
        log "warning: the broker logged errors while starting (see above)"
      fi
      log "ready on $HOST:$PORT after $((SECONDS - t0))s (pid $pid)"
      return 0
    fi
    sleep 0.5
  done
  show_log_tail "$offset" "$out_offset"
  log "broker not ready after ${START_TIMEOUT}s; stopping it"
  stop_pid "$pid"
  exit 1
}

stop_pid() {
  local pid="$1" deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

do_stop() {
  local pid
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  log "stopping pid $pid ..."
  stop_pid "$pid"
  log "stopped"
}

# The client port of the running broker: KAFKA_PORT if set, else the port it
# was started with.
running_port() {
  if [[ -z "${KAFKA_PORT:-}" && -s "$KDIR/port" ]]; then cat "$KDIR/port"; else echo "$PORT"; fi
}

do_status() {
  local pid port
  port="$(running_port)"
  pid="$(running_pid)"
  if [[ -z "$pid" ]]; then
    echo "kafka: not running"
    return 1
  fi
  if [[ -d "$LIBS" ]] && port_open "$port" && answers "$port"; then
    echo "kafka: running (pid $pid) on $HOST:$port"
    return 0
  fi
  echo "kafka: process $pid is up but $HOST:$port does not answer"
  return 2
}

do_logs() {
  local follow=0 n=100
  for a in "$@"; do
    case "$a" in
      -f|--follow) follow=1 ;;
      *[!0-9]*|'') die "usage: $0 logs [-f] [LINES]" ;;
      *) n="$a" ;;
    esac
  done
  [[ -f "$LOGS/server.log" ]] || die "no log yet ($LOGS/server.log)"
  if (( follow )); then
    exec tail -n "$n" -F "$LOGS/server.log"
  fi
  tail -n "$n" "$LOGS/server.log"
}

do_restart() {
  do_stop
  do_start
}

do_reset() {
  do_stop
  rm -rf "$DATA" "$KDIR/cluster-id"
  log "deleted broker data in $DATA"
}

# Serialise start/stop/restart/reset so concurrent callers (e.g. parallel CI
# steps) don't start two brokers.
with_lock() {
  exec 9>"$LOCKFILE"
  flock -w $((START_TIMEOUT + STOP_TIMEOUT + 300)) 9 || die "could not lock $LOCKFILE"
  "$@"
}

# ================================================================ cluster
#
# `kafka.sh cluster ...`: three KRaft nodes (each combined broker+controller,
# static 3-voter controller quorum) on 127.0.0.1, under .kafka/cluster/.
# Independent of the single node: own ports, config, data, logs, pid files,
# cluster id and lock; only the jars in .kafka/libs are shared.

CL_DIR="$KDIR/cluster"
CL_CONF="$CL_DIR/config"
CL_LOCKFILE="$KDIR/cluster.lock"
CL_PORTSFILE="$CL_DIR/ports"
CL_NODES=(1 2 3)
CL_HEAP="${KAFKA_CLUSTER_HEAP:-384m}"
CL_START_TIMEOUT="${KAFKA_CLUSTER_START_TIMEOUT:-180}"
CL_STOP_TIMEOUT="${KAFKA_CLUSTER_STOP_TIMEOUT:-30}"
CL_WAIT_ISR="${KAFKA_CLUSTER_WAIT_ISR:-1}"
CL_PORTS=() CL_CPORTS=()                  # indexed by node id, see cl_load_ports

cl_node_dir() { echo "$CL_DIR/node$1"; }

# Ports from the environment: node i gets BASE+i-1.
cl_env_ports() {
  local base="${KAFKA_CLUSTER_PORT_BASE:-19092}" cbase="${KAFKA_CLUSTER_CONTROLLER_PORT_BASE:-19192}" i
  [[ "$base" =~ ^[0-9]+$ && "$cbase" =~ ^[0-9]+$ ]] || die "KAFKA_CLUSTER_PORT_BASE / KAFKA_CLUSTER_CONTROLLER_PORT_BASE must be numbers"
  for i in "${CL_NODES[@]}"; do
    CL_PORTS[i]=$((base + i - 1))
    CL_CPORTS[i]=$((cbase + i - 1))
  done
}

cl_any_running() {
  local i
  for i in "${CL_NODES[@]}"; do [[ -n "$(cl_pid "$i")" ]] && return 0; done
  return 1
}

# While any node runs, the ports are the ones the cluster was started with
# (recorded in $CL_PORTSFILE): every node's config lists all voters, so a
# node restarted alone must use the same ports as the others. Otherwise they
# come from the environment (defaults 19092.. and 19192..).
cl_load_ports() {
  cl_env_ports
  if [[ -s "$CL_PORTSFILE" ]] && cl_any_running; then
    local env_ports=("${CL_PORTS[@]}") env_cports=("${CL_CPORTS[@]}") i p c
    while read -r i p c; do
      CL_PORTS[i]="$p"
      CL_CPORTS[i]="$c"
    done <"$CL_PORTSFILE"
    if [[ -n "${KAFKA_CLUSTER_PORT_BASE:-}${KAFKA_CLUSTER_CONTROLLER_PORT_BASE:-}" ]] \
       && [[ "${env_ports[*]} ${env_cports[*]}" != "${CL_PORTS[*]} ${CL_CPORTS[*]}" ]]; then
      die "the cluster is running on ports ${CL_PORTS[*]} / ${CL_CPORTS[*]}; stop it before changing KAFKA_CLUSTER_PORT_BASE / KAFKA_CLUSTER_CONTROLLER_PORT_BASE"
    fi
  fi
}

cl_save_ports() {
  local i
  mkdir -p "$CL_DIR"
  for i in "${CL_NODES[@]}"; do echo "$i ${CL_PORTS[i]} ${CL_CPORTS[i]}"; done >"$CL_PORTSFILE"
}

# host:port,host:port,... of the given nodes (default: all).
cl_bootstrap_list() {
  local i out=()
  (( $# )) || set -- "${CL_NODES[@]}"
  for i in "$@"; do out+=("$HOST:${CL_PORTS[i]}"); done
  local IFS=,
  echo "${out[*]}"
}

# Prints node $1's pid if it runs (pid file + live process whose command line
# is this checkout's node $1), else nothing. A paused node counts as running.
cl_pid() {
  local pidfile pid
  pidfile="$(cl_node_dir "$1")/kafka.pid"
  [[ -f "$pidfile" ]] || return 0
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if kill -0 "$pid" 2>/dev/null \
     && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$MAIN_CLASS $(cl_node_dir "$1")/server.properties"; then
    echo "$pid"
  fi
}

# running | paused | stopped
cl_state() {
  local pid st
  pid="$(cl_pid "$1")"
  if [[ -z "$pid" ]]; then echo stopped; return 0; fi
  st="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1 || true)"
  case "$st" in T|t) echo paused ;; *) echo running ;; esac
}

cl_write_config() {
  local i="$1" nd voters=() j
  nd="$(cl_node_dir "$i")"
  mkdir -p "$nd" "$nd/logs"
  for j in "${CL_NODES[@]}"; do voters+=("$j@$HOST:${CL_CPORTS[j]}"); done
  cat >"$nd/server.properties" <<CONF
# Generated by scripts/kafka.sh (cluster mode) on every start of this node;
# edit the script, not this file.
process.roles=broker,controller
node.id=$i
# Static 3-voter quorum (kraft.version 0).
controller.quorum.voters=$(IFS=,; echo "${voters[*]}")
listeners=PLAINTEXT://$HOST:${CL_PORTS[i]},CONTROLLER://$HOST:${CL_CPORTS[i]}
advertised.listeners=PLAINTEXT://$HOST:${CL_PORTS[i]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$nd/data

# Three replicas, two must acknowledge (acks=all); no data-losing elections.
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2

# Tests create their topics explicitly.
auto.create.topics.enable=false
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# Upper bound a transactional producer may ask for (transaction.timeout.ms).
transaction.max.timeout.ms=900000

# Log cleaner tuned so compaction happens within seconds (see the single-node
# config for the per-topic settings this needs).
log.cleaner.enable=true
log.cleaner.threads=1
log.cleaner.backoff.ms=500
log.cleaner.min.compaction.lag.ms=0
log.cleaner.min.cleanable.ratio=0.01
log.cleaner.dedupe.buffer.size=16777216

# Three JVMs on a small machine: fewer threads each.
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
background.threads=4
CONF
  sed 's/^name = snaplog-dev-kafka$/name = snaplog-dev-kafka-node'"$i"'/' <<'CONF' >"$nd/log4j2.properties"
# Broker logging (log4j 2). Files go to ${sys:kafka.logs.dir}.
status = warn
name = snaplog-dev-kafka
appender.server.type = RollingFile
appender.server.name = server
appender.server.fileName = ${sys:kafka.logs.dir}/server.log
appender.server.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 20MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.server.ref = server
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
CONF
}

cl_write_tool_config() {
  mkdir -p "$CL_CONF"
  cat >"$CL_CONF/tools-log4j2.properties" <<'CONF'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
CONF
  cat >"$CL_CONF/admin.properties" <<'CONF'
request.timeout.ms=5000
default.api.timeout.ms=10000
CONF
}

# Runs a Kafka command-line tool class with the cluster's tool config.
cl_tool() {
  timeout 60 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$CL_CONF/tools-log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

cl_new_cluster_id() {
  local cid
  # A node formatted before keeps its id: reuse it for the others.
  cid="$(sed -n 's/^cluster\.id=//p' "$CL_DIR"/node*/data/meta.properties 2>/dev/null | head -n 1 || true)"
  [[ -n "$cid" ]] || cid="$(cl_tool "$STORAGE_TOOL" random-uuid | tail -n 1)"
  [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (got: $cid)"
  mkdir -p "$CL_DIR"
  echo "$cid" >"$CL_DIR/cluster-id"
}

# Formats node $1's storage unless done already; all nodes share the cluster
# id in $CL_DIR/cluster-id (cl_new_cluster_id makes it).
cl_format() {
  local i="$1" nd cid
  nd="$(cl_node_dir "$i")"
  [[ -f "$nd/data/meta.properties" ]] && return 0
  cid="$(cat "$CL_DIR/cluster-id")"
  log "node $i: formatting KRaft storage in $nd/data (cluster id $cid)"
  mkdir -p "$nd/data"
  # controller.quorum.voters is set, so this formats for a static quorum.
  cl_tool "$STORAGE_TOOL" format --config "$nd/server.properties" \
    --cluster-id "$cid" --ignore-formatted >"$nd/logs/format.log" 2>&1 \
    || { cat "$nd/logs/format.log" >&2; die "node $i: kafka-storage format failed"; }
}

# Node ids the cluster metadata reports as live brokers that also answer an
# ApiVersions request (kafka-broker-api-versions), one per line. It prints
# "isFenced: true" for fenced brokers and "-> ERROR" for unreachable ones.
cl_live_brokers() {
  local i up=()
  for i in "${CL_NODES[@]}"; do
    [[ "$(cl_state "$i")" == running ]] && port_open "${CL_PORTS[i]}" && up+=("$i")
  done
  (( ${#up[@]} )) || return 0
  cl_tool org.apache.kafka.tools.BrokerApiVersionsCommand \
    --bootstrap-server "$(cl_bootstrap_list "${up[@]}")" \
    --command-config "$CL_CONF/admin.properties" 2>/dev/null \
    | grep -v 'isFenced: true' \
    | sed -n 's/^[^ ]* (id: \([0-9]*\) rack: [^)]*) -> (.*/\1/p' | sort -u || true
}

# Partitions whose ISR is smaller than their replica set (all topics,
# internal ones included), one line per partition.
cl_under_replicated() {
  cl_tool "$TOPIC_TOOL" --bootstrap-server "$1" --command-config "$CL_CONF/admin.properties" \
    --describe --under-replicated-partitions 2>&1
}

cl_show_log_tail() {
  local i="$1" off="${2:-0}" out_off="${3:-0}" nd
  nd="$(cl_node_dir "$i")"
  log "node $i: last lines of $nd/logs/server.log from this launch:"
  tail -c +"$((off + 1))" "$nd/logs/server.log" 2>/dev/null | tail -n 30 >&2 || true
  if [[ -f "$nd/logs/stdout.log" ]] && (( $(stat -c %s "$nd/logs/stdout.log") > out_off )); then
    log "node $i: last lines of $nd/logs/stdout.log from this launch:"
    tail -c +"$((out_off + 1))" "$nd/logs/stdout.log" | tail -n 20 >&2
  fi
}

# Launch state of the nodes started by this invocation, for cl_wait.
CL_LPID=() CL_LOFF=() CL_LOUT=()

cl_launch() {
  local i="$1" nd pid
  nd="$(cl_node_dir "$i")"
  CL_LOFF[i]="$(size_of "$nd/logs/server.log")"
  CL_LOUT[i]="$(size_of "$nd/logs/stdout.log")"
  # shellcheck disable=SC2086
  nohup java -Xms128m -Xmx"$CL_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.shutdownHookEnabled=false \
    -Dkafka.logs.dir="$nd/logs" -Dlog4j2.configurationFile="$nd/log4j2.properties" \
    ${KAFKA_CLUSTER_JVM_OPTS:-} \
    -cp "$LIBS/*" "$MAIN_CLASS" "$nd/server.properties" \
    >>"$nd/logs/stdout.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$nd/kafka.pid"
  CL_LPID[i]="$pid"
  log "node $i: started pid $pid (client $HOST:${CL_PORTS[i]}, controller $HOST:${CL_CPORTS[i]})"
}

# Stops the given nodes together: SIGTERM (and SIGCONT, in case one is
# paused), wait up to CL_STOP_TIMEOUT, then SIGKILL.
cl_stop_nodes() {
  local i pid pids=() deadline
  for i in "$@"; do
    pid="$(cl_pid "$i")"
    if [[ -z "$pid" ]]; then
      rm -f "$(cl_node_dir "$i")/kafka.pid"
      continue
    fi
    log "node $i: stopping pid $pid ..."
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    pids[i]="$pid"
  done
  deadline=$((SECONDS + CL_STOP_TIMEOUT))
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[i]}" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
  done
  for i in "${!pids[@]}"; do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      log "node $i: pid ${pids[i]} still alive after ${CL_STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "${pids[i]}" 2>/dev/null || true
    fi
  done
  for i in "${!pids[@]}"; do
    while kill -0 "${pids[i]}" 2>/dev/null; do sleep 0.1; done
    rm -f "$(cl_node_dir "$i")/kafka.pid"
    log "node $i: stopped"
  done
}

# Waits until the nodes launched by this invocation serve: each process is
# alive, logged "Kafka Server started" since its launch (it caught up with
# the metadata log and was unfenced) and its client port accepts connections;
# then until the cluster metadata lists each of them as a live broker that
# answers ApiVersions. Then, if all nodes run, waits (KAFKA_CLUSTER_WAIT_ISR)
# until no partition is under-replicated. On failure stops those nodes.
cl_wait() {
  local t0=$SECONDS pending=("$@") left i nd live missing
  local deadline=$((SECONDS + CL_START_TIMEOUT))
  local -A started=()
  while (( ${#pending[@]} )); do
    left=()
    for i in "${pending[@]}"; do
      nd="$(cl_node_dir "$i")"
      if ! kill -0 "${CL_LPID[i]}" 2>/dev/null; then
        rm -f "$nd/kafka.pid"
        cl_show_log_tail "$i" "${CL_LOFF[i]}" "${CL_LOUT[i]}"
        cl_stop_nodes "$@"
        die "node $i: broker process exited during startup"
      fi
      if (( $(size_of "$nd/logs/server.log") < CL_LOFF[i] )); then CL_LOFF[i]=0; fi
      if [[ -z "${started[$i]:-}" ]] && tail -c +"$((CL_LOFF[i] + 1))" "$nd/logs/server.log" 2>/dev/null | grep -q 'Kafka Server started'; then
        started[$i]=1
      fi
      if [[ -n "${started[$i]:-}" ]] && port_open "${CL_PORTS[i]}"; then
        log "node $i: started after $((SECONDS - t0))s"
      else
        left+=("$i")
      fi
    done
    pending=("${left[@]}")
    (( ${#pending[@]} )) || break
    if (( SECONDS >= deadline )); then
      for i in "${pending[@]}"; do cl_show_log_tail "$i" "${CL_LOFF[i]}" "${CL_LOUT[i]}"; done
      log "node(s) ${pending[*]} not started after ${CL_START_TIMEOUT}s; stopping node(s) $*"
      cl_stop_nodes "$@"
      exit 1
    fi
    sleep 0.5
  done

  while :; do
    live="$(cl_live_brokers | tr '\n' ' ')"
    missing=()
    for i in "$@"; do [[ " $live" == *" $i "* ]] || missing+=("$i"); done
    (( ${#missing[@]} )) || break
    if (( SECONDS >= deadline )); then
      log "cluster metadata lists live brokers [ ${live}] after ${CL_START_TIMEOUT}s; missing ${missing[*]}; stopping node(s) $*"
      cl_stop_nodes "$@"
      exit 1
    fi
    sleep 1
  done
  # Errors while starting are shown but not fatal: a quorum that elects its
  # leader while the nodes register logs transient NotControllerExceptions.
  local errs
  for i in "$@"; do
    nd="$(cl_node_dir "$i")"
    errs="$(tail -c +"$((CL_LOFF[i] + 1))" "$nd/logs/server.log" | grep -E '\] (ERROR|FATAL) ' || true)"
    if [[ -n "$errs" ]]; then
      printf '%s\n' "$errs" | head -n 5 | cut -c1-240 >&2
      log "node $i: warning: logged $(printf '%s\n' "$errs" | wc -l) error(s) while starting (first ones above; see $nd/logs/server.log)"
    fi
  done
  log "live brokers: ${live}after $((SECONDS - t0))s"

  [[ "$CL_WAIT_ISR" == 1 ]] || return 0
  for i in "${CL_NODES[@]}"; do
    [[ "$(cl_state "$i")" == running ]] || { log "node $i is not running: not waiting for full ISRs"; return 0; }
  done
  local urp
  while :; do
    if urp="$(cl_under_replicated "$(cl_bootstrap_list)")" && [[ -z "$urp" ]]; then
      log "no under-replicated partitions after $((SECONDS - t0))s"
      return 0
    fi
    if (( SECONDS >= deadline )); then
      printf '%s\n' "$urp" | tail -n 20 >&2
      log "warning: partitions still under-replicated after ${CL_START_TIMEOUT}s (see above)"
      return 0
    fi
    sleep 1
  done
}

cl_prepare() {
  need_tools
  if ! jars_fresh; then
    # The jars are shared with the single node: fetch them under its lock.
    exec 7>"$LOCKFILE"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 300)) 7 || die "could not lock $LOCKFILE"
    fetch_jars
    exec 7>&-
  fi
  cl_write_tool_config
}

# cluster start [N...]: start the given nodes (default all) that are not
# running, wait until they serve, print the bootstrap list.
cl_do_start() {
  (( $# )) || set -- "${CL_NODES[@]}"
  cl_load_ports
  local i todo=() p
  for i in "$@"; do
    case "$(cl_state "$i")" in
      running) log "node $i: already running (pid $(cl_pid "$i")) on $HOST:${CL_PORTS[i]}" ;;
      paused)  log "node $i: warning: running but paused (pid $(cl_pid "$i")); 'cluster resume $i' to continue it" ;;
      stopped) todo+=("$i") ;;
    esac
  done
  if (( ${#todo[@]} )); then
    for i in "${todo[@]}"; do
      for p in "${CL_PORTS[i]}" "${CL_CPORTS[i]}"; do
        port_open "$p" && die "node $i: port $HOST:$p is already in use by another process (set KAFKA_CLUSTER_PORT_BASE / KAFKA_CLUSTER_CONTROLLER_PORT_BASE)"
      done
    done
    cl_prepare
    cl_any_running || cl_save_ports
    [[ -s "$CL_DIR/cluster-id" ]] || cl_new_cluster_id
    local fpids=()
    for i in "${todo[@]}"; do
      rm -f "$(cl_node_dir "$i")/kafka.pid"
      cl_write_config "$i"
      cl_format "$i" & fpids[i]=$!
    done
    for i in "${!fpids[@]}"; do
      wait "${fpids[i]}" || die "node $i: could not format its storage"
    done
    for i in "${todo[@]}"; do cl_launch "$i"; done
    log "waiting up to ${CL_START_TIMEOUT}s for node(s) ${todo[*]} ..."
    cl_wait "${todo[@]}"
  fi
  cl_bootstrap_list
}

cl_do_stop() {
  (( $# )) || set -- "${CL_NODES[@]}"
  cl_any_running || { log "cluster not running"; return 0; }
  cl_stop_nodes "$@"
}

# cluster restart: stop all, start all. cluster restart N...: rolling, one
# node at a time: stop it gracefully, start it, wait until it serves.
cl_do_restart() {
  if (( ! $# )); then
    cl_do_stop
    cl_do_start
    return 0
  fi
  local i
  cl_load_ports
  for i in "$@"; do
    cl_stop_nodes "$i"
    cl_do_start "$i" >/dev/null
  done
  cl_bootstrap_list
}

cl_do_signal() {
  local sig="$1" cmd="$2" what="$3" i pid
  shift 3
  (( $# )) || die "usage: $0 cluster $cmd N..."
  for i in "$@"; do
    pid="$(cl_pid "$i")"
    if [[ -z "$pid" ]]; then log "node $i: not running"; continue; fi
    kill -"$sig" "$pid"
    if [[ "$sig" == KILL ]]; then
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      rm -f "$(cl_node_dir "$i")/kafka.pid"
    fi
    log "node $i: $what (SIG$sig to pid $pid)"
  done
}

cl_do_status() {
  cl_load_ports
  local i st pid rc=0 up=0 live
  for i in "${CL_NODES[@]}"; do
    st="$(cl_state "$i")"
    pid="$(cl_pid "$i")"
    case "$st" in
      stopped) echo "node $i: not running (client $HOST:${CL_PORTS[i]}, controller $HOST:${CL_CPORTS[i]})"; rc=1 ;;
      paused)  echo "node $i: paused (pid $pid) on $HOST:${CL_PORTS[i]}"; rc=1 ;;
      running)
        if port_open "${CL_PORTS[i]}"; then
          echo "node $i: running (pid $pid) on $HOST:${CL_PORTS[i]}"; up=1
        else
          echo "node $i: process $pid is up but $HOST:${CL_PORTS[i]} does not accept connections"; rc=2
        fi ;;
    esac
  done
  if (( up )) && [[ -d "$LIBS" ]]; then
    [[ -f "$CL_CONF/admin.properties" ]] || cl_write_tool_config
    live="$(cl_live_brokers | tr '\n' ' ')"
    echo "cluster: live brokers in metadata: [ ${live}]"
    [[ "$live" == "1 2 3 " ]] || (( rc )) || rc=2
  fi
  echo "bootstrap: $(cl_bootstrap_list)"
  return "$rc"
}

cl_do_logs() {
  local i="${1:-}" follow=0 n=100 f
  [[ "$i" =~ ^[1-3]$ ]] || die "usage: $0 cluster logs N [-f] [LINES]"
  shift
  for a in "$@"; do
    case "$a" in
      -f|--follow) follow=1 ;;
      *[!0-9]*|'') die "usage: $0 cluster logs N [-f] [LINES]" ;;
      *) n="$a" ;;
    esac
  done
  f="$(cl_node_dir "$i")/logs/server.log"
  [[ -f "$f" ]] || die "no log yet ($f)"
  if (( follow )); then exec tail -n "$n" -F "$f"; fi
  tail -n "$n" "$f"
}

cl_do_reset() {
  cl_do_stop
  rm -rf "$CL_DIR"
  log "deleted cluster data, config and logs in $CL_DIR"
}

cl_with_lock() {
  exec 8>"$CL_LOCKFILE"
  flock -w $((CL_START_TIMEOUT + CL_STOP_TIMEOUT + 300)) 8 || die "could not lock $CL_LOCKFILE"
  "$@"
}

cl_usage() {
  echo "usage: $0 cluster start [N...]|stop [N...]|restart [N...]|status|bootstrap|kill N...|pause N...|resume N...|logs N [-f] [LINES]|reset" >&2
  exit 2
}

cluster_main() {
  local sub="${1:-}" a
  [[ $# -gt 0 ]] && shift
  if [[ "$sub" != logs ]]; then
    for a in "$@"; do [[ "$a" =~ ^[1-3]$ ]] || die "bad node number '$a' (nodes are 1, 2, 3)"; done
  fi
  case "$sub" in
    start)     cl_with_lock cl_do_start "$@" ;;
    stop)      cl_with_lock cl_do_stop "$@" ;;
    restart)   cl_with_lock cl_do_restart "$@" ;;
    kill)      cl_with_lock cl_do_signal KILL kill killed "$@" ;;
    pause)     cl_with_lock cl_do_signal STOP pause paused "$@" ;;
    resume)    cl_with_lock cl_do_signal CONT resume resumed "$@" ;;
    status)    cl_do_status ;;
    bootstrap) cl_load_ports; cl_bootstrap_list ;;
    logs)      cl_do_logs "$@" ;;
    reset)     (( ! $# )) || cl_usage; cl_with_lock cl_do_reset ;;
    *)         cl_usage ;;
  esac
}

# ================================================================ secure
#
# `kafka.sh secure ...`: one KRaft node (combined broker+controller) whose
# client listener is SASL_SSL, under .kafka/secure/. Independent of the plain
# single node and of the cluster (all three can run at once): own ports,
# config, data, logs, pid file, cluster id, lock (.kafka/secure.lock), CA
# and credentials; only the jars in .kafka/libs are shared.
#
# Listeners: SASL_SSL on $KAFKA_SECURE_PORT for clients (SCRAM-SHA-256,
# SCRAM-SHA-512 and PLAIN over TLS 1.2+; no client certificates), INTERNAL
# (PLAINTEXT) on $KAFKA_SECURE_INTERNAL_PORT for the broker's own
# inter-broker traffic, CONTROLLER (PLAINTEXT) on
# $KAFKA_SECURE_CONTROLLER_PORT. All bind 127.0.0.1 only.
#
# Made once (kept across restarts, deleted by `secure reset`):
#   tls/ca.pem, tls/ca-key.pem          self-signed CA (openssl)
#   tls/broker.pem, tls/broker-key.pem  broker certificate signed by the CA,
#                                       SAN IP:127.0.0.1, DNS:localhost
#   tls/broker-keystore.pem             key + chain (ssl.keystore.type=PEM)
#   credentials                         user and random password (mode 600)
# The SCRAM credentials are written into the metadata log when the storage
# is formatted (kafka-storage format --add-scram); PLAIN users are listed in
# the listener's JAAS config. A certificate that expires within a day is
# made anew on start.

SEC_DIR="$KDIR/secure"
SEC_CONF="$SEC_DIR/config"
SEC_DATA="$SEC_DIR/data"
SEC_LOGS="$SEC_DIR/logs"
SEC_TLS="$SEC_DIR/tls"
SEC_PIDFILE="$SEC_DIR/kafka.pid"
SEC_PORTSFILE="$SEC_DIR/ports"
SEC_CREDS="$SEC_DIR/credentials"
SEC_LOCKFILE="$KDIR/secure.lock"
SEC_PORT="${KAFKA_SECURE_PORT:-9094}"
SEC_IPORT="${KAFKA_SECURE_INTERNAL_PORT:-9095}"
SEC_CPORT="${KAFKA_SECURE_CONTROLLER_PORT:-9096}"
SEC_HEAP="${KAFKA_SECURE_HEAP:-512m}"
SEC_START_TIMEOUT="${KAFKA_SECURE_START_TIMEOUT:-90}"
SEC_STOP_TIMEOUT="${KAFKA_SECURE_STOP_TIMEOUT:-30}"
SEC_MECHANISMS=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
SEC_USER=snaplog
SEC_PASSWORD=                                     # set by sec_credentials

# Ports from the environment; while the broker runs, the ones it was
# started with (changing the port variables then is an error).
sec_load_ports() {
  local p i c
  for p in "$SEC_PORT" "$SEC_IPORT" "$SEC_CPORT"; do
    [[ "$p" =~ ^[0-9]+$ ]] || die "KAFKA_SECURE_PORT / KAFKA_SECURE_INTERNAL_PORT / KAFKA_SECURE_CONTROLLER_PORT must be numbers"
  done
  [[ -s "$SEC_PORTSFILE" && -n "$(sec_pid)" ]] || return 0
  read -r p i c <"$SEC_PORTSFILE"
  if [[ -n "${KAFKA_SECURE_PORT:-}${KAFKA_SECURE_INTERNAL_PORT:-}${KAFKA_SECURE_CONTROLLER_PORT:-}" ]] \
     && [[ "$p $i $c" != "$SEC_PORT $SEC_IPORT $SEC_CPORT" ]]; then
    die "the secure broker is running on ports $p $i $c; stop it before changing KAFKA_SECURE_PORT / KAFKA_SECURE_INTERNAL_PORT / KAFKA_SECURE_CONTROLLER_PORT"
  fi
  SEC_PORT="$p" SEC_IPORT="$i" SEC_CPORT="$c"
}

# Prints the secure broker's pid if it runs, else nothing: the pid in its
# pid file, or (pid file lost or stale) any process whose command line is
# this checkout's secure broker.
sec_pid() {
  local pid f want="$MAIN_CLASS $SEC_CONF/server.properties"
  if [[ -f "$SEC_PIDFILE" ]]; then
    pid="$(cat "$SEC_PIDFILE" 2>/dev/null || true)"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
       && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want"; then
      echo "$pid"
      return 0
    fi
  fi
  local comm
  for f in /proc/[0-9]*/comm; do
    read -r comm 2>/dev/null <"$f" || continue
    [[ "$comm" == java ]] || continue
    pid="${f#/proc/}"
    pid="${pid%/comm}"
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want "; then
      echo "$pid"
      return 0
    fi
  done
}

# Reads (or, before the storage is first formatted, makes) the user and
# password of $SEC_CREDS.
sec_credentials() {
  if [[ ! -s "$SEC_CREDS" ]]; then
    [[ -f "$SEC_DATA/meta.properties" ]] \
      && die "$SEC_CREDS is missing but $SEC_DATA is formatted with its SCRAM users; run '$0 secure reset'"
    mkdir -p "$SEC_DIR"
    printf 'user=%s\npassword=%s\n' "$SEC_USER" "$(openssl rand -hex 16)" >"$SEC_CREDS.tmp"
    chmod 600 "$SEC_CREDS.tmp"
    mv "$SEC_CREDS.tmp" "$SEC_CREDS"
    log "made credentials for user $SEC_USER in $SEC_CREDS"
  fi
  SEC_USER="$(sed -n 's/^user=//p' "$SEC_CREDS")"
  SEC_PASSWORD="$(sed -n 's/^password=//p' "$SEC_CREDS")"
  [[ "$SEC_USER" =~ ^[A-Za-z0-9_-]+$ && "$SEC_PASSWORD" =~ ^[A-Za-z0-9_-]+$ ]] \
    || die "$SEC_CREDS is damaged; run '$0 secure reset'"
}

# True iff the certificate in $1 exists and is valid for at least one more day.
cert_fresh() { [[ -s "$1" ]] && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1; }

# Makes the CA and the broker certificate unless they exist and are fresh.
sec_tls() {
  local t="$SEC_TLS"
  command -v openssl >/dev/null 2>&1 || die "openssl not found on PATH (needed once to make the CA and broker certificate)"
  mkdir -p "$t"
  if ! cert_fresh "$t/ca.pem" || [[ ! -s "$t/ca-key.pem" ]]; then
    log "making a CA in $t/ca.pem"
    rm -f "$t/broker.pem"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/CN=snaplog development Kafka CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$t/ca-key.pem.tmp" -out "$t/ca.pem.tmp" >"$SEC_LOGS/openssl.log" 2>&1 \
      || { cat "$SEC_LOGS/openssl.log" >&2; die "openssl could not make the CA"; }
    mv "$t/ca-key.pem.tmp" "$t/ca-key.pem"
    mv "$t/ca.pem.tmp" "$t/ca.pem"
  fi
  if ! cert_fresh "$t/broker.pem" || [[ ! -s "$t/broker-key.pem" || ! -s "$t/broker-keystore.pem" ]] \
     || ! openssl verify -CAfile "$t/ca.pem" "$t/broker.pem" >/dev/null 2>&1; then
    log "making a broker certificate for 127.0.0.1 / localhost in $t/broker.pem"
    cat >"$t/broker.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
    { openssl req -new -newkey rsa:2048 -nodes -sha256 -subj "/CN=localhost" \
        -keyout "$t/broker-key.pem.tmp" -out "$t/broker.csr" \
      && openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" \
        -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
        -extfile "$t/broker.ext" -out "$t/broker.pem.tmp"; } >"$SEC_LOGS/openssl.log" 2>&1 \
      || { cat "$SEC_LOGS/openssl.log" >&2; die "openssl could not make the broker certificate"; }
    # Kafka's PEM key store: an unencrypted PKCS#8 key, then the chain.
    cat "$t/broker-key.pem.tmp" "$t/broker.pem.tmp" "$t/ca.pem" >"$t/broker-keystore.pem"
    mv "$t/broker-key.pem.tmp" "$t/broker-key.pem"
    mv "$t/broker.pem.tmp" "$t/broker.pem"
    rm -f "$t/broker.csr"
  fi
}

sec_write_config() {
  mkdir -p "$SEC_CONF"
  {
    cat <<EOF
# Generated by scripts/kafka.sh (secure mode) on every start; edit the
# script, not this file. Holds a password: keep it private.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$SEC_CPORT
listeners=SASL_SSL://$HOST:$SEC_PORT,INTERNAL://$HOST:$SEC_IPORT,CONTROLLER://$HOST:$SEC_CPORT
advertised.listeners=SASL_SSL://$HOST:$SEC_PORT,INTERNAL://$HOST:$SEC_IPORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
log.dirs=$SEC_DATA

# TLS: PEM key and trust stores made by scripts/kafka.sh; no client certificates.
ssl.keystore.type=PEM
ssl.keystore.location=$SEC_TLS/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$SEC_TLS/ca.pem
ssl.client.auth=none
ssl.enabled.protocols=TLSv1.2,TLSv1.3

# SASL: SCRAM users live in the metadata log (added at format time), PLAIN
# users in the JAAS config below.
sasl.enabled.mechanisms=$SEC_MECHANISMS
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SEC_USER="$SEC_PASSWORD";

EOF
    single_node_settings
  } >"$SEC_CONF/server.properties"
  chmod 600 "$SEC_CONF/server.properties"

  broker_log4j2 | sed 's/^name = snaplog-dev-kafka$/name = snaplog-dev-kafka-secure/' >"$SEC_CONF/log4j2.properties"
  tools_log4j2 >"$SEC_CONF/tools-log4j2.properties"

  # Client settings for Kafka's own tools (and anyone who wants them).
  cat >"$SEC_CONF/client.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SEC_USER" password="$SEC_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$SEC_TLS/ca.pem
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
  chmod 600 "$SEC_CONF/client.properties"
}

sec_tool() {
  timeout 60 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$SEC_CONF/tools-log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

# Formats the storage once, with the SCRAM users.
sec_format() {
  [[ -f "$SEC_DATA/meta.properties" ]] && return 0
  local cid
  if [[ -s "$SEC_DIR/cluster-id" ]]; then
    cid="$(cat "$SEC_DIR/cluster-id")"
  else
    cid="$(sec_tool "$STORAGE_TOOL" random-uuid | tail -n 1)"
    [[ "$cid" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a cluster id (got: $cid)"
    echo "$cid" >"$SEC_DIR/cluster-id"
  fi
  log "formatting KRaft storage in $SEC_DATA (cluster id $cid) with SCRAM-SHA-256 and SCRAM-SHA-512 user $SEC_USER"
  mkdir -p "$SEC_DATA"
  sec_tool "$STORAGE_TOOL" format --config "$SEC_CONF/server.properties" \
    --cluster-id "$cid" --ignore-formatted \
    --add-scram "SCRAM-SHA-256=[name=$SEC_USER,password=$SEC_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=$SEC_USER,password=$SEC_PASSWORD]" \
    >"$SEC_LOGS/format.log" 2>&1 \
    || { cat "$SEC_LOGS/format.log" >&2; die "kafka-storage format failed"; }
}

# Asks the broker for its topic list over SASL_SSL (SCRAM-SHA-512).
sec_answers() {
  sec_tool "$TOPIC_TOOL" --bootstrap-server "$HOST:$SEC_PORT" \
    --command-config "$SEC_CONF/client.properties" --list >/dev/null 2>&1
}

sec_show_log_tail() {
  local off="${1:-0}" out_off="${2:-0}"
  log "last lines of $SEC_LOGS/server.log from this launch:"
  tail -c +"$((off + 1))" "$SEC_LOGS/server.log" 2>/dev/null | tail -n 40 >&2 || true
  if [[ -f "$SEC_LOGS/stdout.log" ]] && (( $(stat -c %s "$SEC_LOGS/stdout.log") > out_off )); then
    log "last lines of $SEC_LOGS/stdout.log from this launch:"
    tail -c +"$((out_off + 1))" "$SEC_LOGS/stdout.log" | tail -n 20 >&2
  fi
}

sec_stop_pid() {
  local pid="$1" deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + SEC_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "secure: pid $pid still alive after ${SEC_STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$SEC_PIDFILE"
}

sec_do_start() {
  local pid p
  sec_load_ports
  pid="$(sec_pid)"
  if [[ -n "$pid" ]]; then
    log "secure: already running (pid $pid) on $HOST:$SEC_PORT"
    echo "$HOST:$SEC_PORT"
    return 0
  fi
  rm -f "$SEC_PIDFILE"
  for p in "$SEC_PORT" "$SEC_IPORT" "$SEC_CPORT"; do
    port_open "$p" && die "port $HOST:$p is already in use by another process (set KAFKA_SECURE_PORT / KAFKA_SECURE_INTERNAL_PORT / KAFKA_SECURE_CONTROLLER_PORT)"
  done
  need_tools
  if ! jars_fresh; then
    # The jars are shared with the single node: fetch them under its lock.
    exec 7>"$LOCKFILE"
    flock -w $((START_TIMEOUT + STOP_TIMEOUT + 300)) 7 || die "could not lock $LOCKFILE"
    fetch_jars
    exec 7>&-
  fi
  mkdir -p "$SEC_DIR" "$SEC_LOGS"
  sec_credentials
  sec_tls
  sec_write_config
  sec_format

  local t0=$SECONDS offset out_offset
  offset="$(size_of "$SEC_LOGS/server.log")"
  out_offset="$(size_of "$SEC_LOGS/stdout.log")"
  # shellcheck disable=SC2086
  nohup java -Xms128m -Xmx"$SEC_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.shutdownHookEnabled=false \
    -Dkafka.logs.dir="$SEC_LOGS" -Dlog4j2.configurationFile="$SEC_CONF/log4j2.properties" \
    ${KAFKA_SECURE_JVM_OPTS:-} \
    -cp "$LIBS/*" "$MAIN_CLASS" "$SEC_CONF/server.properties" \
    >>"$SEC_LOGS/stdout.log" 2>&1 </dev/null 6>&- 7>&- 8>&- 9>&- &
  pid=$!
  echo "$pid" >"$SEC_PIDFILE"
  echo "$SEC_PORT $SEC_IPORT $SEC_CPORT" >"$SEC_PORTSFILE"
  log "secure: started pid $pid (SASL_SSL $HOST:$SEC_PORT, internal $HOST:$SEC_IPORT, controller $HOST:$SEC_CPORT), waiting up to ${SEC_START_TIMEOUT}s ..."

  # Ready = process alive, it logged "Kafka Server started", and an admin
  # client that authenticates with SCRAM-SHA-512 over TLS (verifying the
  # broker certificate against the CA) gets a topic list from it.
  local started=0
  while (( SECONDS - t0 < SEC_START_TIMEOUT )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$SEC_PIDFILE"
      sec_show_log_tail "$offset" "$out_offset"
      die "secure broker process exited during startup"
    fi
    if (( $(size_of "$SEC_LOGS/server.log") < offset )); then offset=0; fi
    if (( !started )) && tail -c +"$((offset + 1))" "$SEC_LOGS/server.log" 2>/dev/null | grep -q 'Kafka Server started'; then
      started=1
    fi
    if (( started )) && port_open "$SEC_PORT" && sec_answers; then
      if tail -c +"$((offset + 1))" "$SEC_LOGS/server.log" | grep -E '\] (ERROR|FATAL) ' >&2; then
        log "warning: the secure broker logged errors while starting (see above)"
      fi
      log "secure: ready on $HOST:$SEC_PORT (SASL_SSL: $SEC_MECHANISMS) after $((SECONDS - t0))s (pid $pid)"
      echo "$HOST:$SEC_PORT"
      return 0
    fi
    sleep 0.5
  done
  sec_show_log_tail "$offset" "$out_offset"
  log "secure broker not ready after ${SEC_START_TIMEOUT}s; stopping it"
  sec_stop_pid "$pid"
  exit 1
}

sec_do_stop() {
  local pid
  pid="$(sec_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$SEC_PIDFILE"
    log "secure: not running"
    return 0
  fi
  log "secure: stopping pid $pid ..."
  sec_stop_pid "$pid"
  log "secure: stopped"
}

sec_do_status() {
  local pid
  sec_load_ports
  pid="$(sec_pid)"
  if [[ -z "$pid" ]]; then
    echo "kafka secure: not running (SASL_SSL $HOST:$SEC_PORT)"
    return 1
  fi
  if [[ -d "$LIBS" && -f "$SEC_CONF/client.properties" ]] && port_open "$SEC_PORT" && sec_answers; then
    echo "kafka secure: running (pid $pid) on $HOST:$SEC_PORT (SASL_SSL: $SEC_MECHANISMS)"
    return 0
  fi
  echo "kafka secure: process $pid is up but $HOST:$SEC_PORT does not answer over SASL_SSL"
  return 2
}

# Prints NAME=value lines for clients: `set -a; eval "$(scripts/kafka.sh
# secure env)"; set +a`, or append them to $GITHUB_ENV.
sec_do_env() {
  sec_load_ports
  [[ -s "$SEC_CREDS" && -s "$SEC_TLS/ca.pem" ]] || die "the secure broker was never started here; run '$0 secure start'"
  sec_credentials
  [[ -n "$(sec_pid)" ]] || log "warning: the secure broker is not running; '$0 secure start' starts it"
  env_line SNAPLOG_KAFKA_SECURE_BROKERS "$HOST:$SEC_PORT"
  env_line SNAPLOG_KAFKA_SECURE_CA "$SEC_TLS/ca.pem"
  env_line SNAPLOG_KAFKA_SECURE_USER "$SEC_USER"
  env_line SNAPLOG_KAFKA_SECURE_PASSWORD "$SEC_PASSWORD"
  env_line SNAPLOG_KAFKA_SECURE_MECHANISMS "$SEC_MECHANISMS"
  env_line SNAPLOG_KAFKA_SECURE_CLIENT_CONFIG "$SEC_CONF/client.properties"
}

# NAME=value, the value single-quoted only if the shell would need it.
env_line() {
  if [[ "$2" =~ ^[A-Za-z0-9_./:,=+@-]*$ ]]; then
    printf '%s=%s\n' "$1" "$2"
  else
    printf "%s='%s'\n" "$1" "${2//\'/\'\\\'\'}"
  fi
}

sec_do_logs() {
  local follow=0 n=100 a
  for a in "$@"; do
    case "$a" in
      -f|--follow) follow=1 ;;
      *[!0-9]*|'') die "usage: $0 secure logs [-f] [LINES]" ;;
      *) n="$a" ;;
    esac
  done
  [[ -f "$SEC_LOGS/server.log" ]] || die "no log yet ($SEC_LOGS/server.log)"
  if (( follow )); then exec tail -n "$n" -F "$SEC_LOGS/server.log"; fi
  tail -n "$n" "$SEC_LOGS/server.log"
}

sec_do_restart() {
  sec_do_stop
  sec_do_start
}

sec_do_reset() {
  sec_do_stop
  rm -rf "$SEC_DIR"
  log "deleted the secure broker's data, config, logs, CA and credentials in $SEC_DIR"
}

sec_with_lock() {
  exec 6>"$SEC_LOCKFILE"
  flock -w $((SEC_START_TIMEOUT + SEC_STOP_TIMEOUT + 300)) 6 || die "could not lock $SEC_LOCKFILE"
  "$@"
}

sec_usage() {
  echo "usage: $0 secure start|stop|restart|status|env|bootstrap|logs [-f] [LINES]|reset" >&2
  exit 2
}

secure_main() {
  local sub="${1:-}"
  [[ $# -gt 0 ]] && shift
  # Keys, passwords and the data of this broker are for its owner only.
  umask 077
  case "$sub" in
    start)     (( ! $# )) || sec_usage; sec_with_lock sec_do_start ;;
    stop)      (( ! $# )) || sec_usage; sec_with_lock sec_do_stop ;;
    restart)   (( ! $# )) || sec_usage; sec_with_lock sec_do_restart ;;
    status)    (( ! $# )) || sec_usage; sec_do_status ;;
    env)       (( ! $# )) || sec_usage; sec_do_env ;;
    bootstrap) (( ! $# )) || sec_usage; sec_load_ports; echo "$HOST:$SEC_PORT" ;;
    logs)      sec_do_logs "$@" ;;
    reset)     (( ! $# )) || sec_usage; sec_with_lock sec_do_reset ;;
    *)         sec_usage ;;
  esac
}

mkdir -p "$KDIR" "$LOGS"
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  start)   with_lock do_start ;;
  stop)    with_lock do_stop ;;
  restart) with_lock do_restart ;;
  status)  do_status ;;
  logs)    do_logs "$@" ;;
  reset)   with_lock do_reset ;;
  cluster) cluster_main "$@" ;;
  secure)  secure_main "$@" ;;
  *)
    echo "usage: $0 start|stop|restart|status|logs [-f] [LINES]|reset" >&2
    echo "       $0 cluster start [N...]|stop [N...]|restart [N...]|status|bootstrap|kill N...|pause N...|resume N...|logs N [-f] [LINES]|reset" >&2
    echo "       $0 secure start|stop|restart|status|env|bootstrap|logs [-f] [LINES]|reset" >&2
    exit 2 ;;
esac
