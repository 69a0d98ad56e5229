#!/usr/bin/env bash
# Runs a PostgreSQL server of its own for development and CI: a cluster
# created with the initdb of the machine's PostgreSQL (Debian's postgresql
# package: /usr/lib/postgresql/N/bin), listening on 127.0.0.1 only, with its
# data under .postgres/ at the repository root. It leaves any other cluster
# of the machine alone.
#
#   scripts/postgres.sh start     create the cluster (once), start it, wait
#                                 until it accepts connections, create the
#                                 database (once); print the URL as the last
#                                 line of stdout
#   scripts/postgres.sh stop      stop it (fast shutdown), wait
#   scripts/postgres.sh restart
#   scripts/postgres.sh status    exit 0 iff running and accepting connections
#   scripts/postgres.sh url       print the URL
#   scripts/postgres.sh logs [-f] [LINES]
#   scripts/postgres.sh reset     stop and delete the cluster's data
#
# start and stop are idempotent. Everything (data, logs, password file)
# lives under .postgres/, which holds a .gitignore of its own.
#
# PostgreSQL refuses to run as root: run as root (CI), the script runs
# initdb, pg_ctl and the server as the user POSTGRES_OS_USER (default
# postgres, the user Debian's package creates), who owns .postgres/data. If
# that user cannot reach the repository (a checkout under /root), the data
# and logs go to /var/tmp/snaplog-postgres-<hash of the repository path>/
# instead, and .postgres/run names that directory.
#
# Environment:
#   POSTGRES_PORT           TCP port on 127.0.0.1, default 55432
#   POSTGRES_BIN            directory of initdb, pg_ctl and pg_isready
#                           (default: the newest /usr/lib/postgresql/*/bin,
#                           else the PATH)
#   POSTGRES_OS_USER        the user the server runs as when the script runs
#                           as root, default postgres
#   POSTGRES_START_TIMEOUT  seconds to wait for readiness, default 60
#   POSTGRES_STOP_TIMEOUT   seconds to wait for shutdown, default 60
#
# The URL is postgres://snaplog:snaplog@127.0.0.1:$POSTGRES_PORT/snaplog?sslmode=disable:
# superuser snaplog (password snaplog, scram-sha-256 over TCP), database
# snaplog. The cluster trades durability for speed (fsync=off,
# synchronous_commit=off, full_page_writes=off): it is for tests only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PDIR="$ROOT/.postgres"
LOCKFILE="$PDIR/lock"
# RUN holds the data directory and the logs: $PDIR, unless the server's user
# cannot reach it (see choose_run).
RUN="$PDIR"

HOST=127.0.0.1
PORT="${POSTGRES_PORT:-55432}"
START_TIMEOUT="${POSTGRES_START_TIMEOUT:-60}"
STOP_TIMEOUT="${POSTGRES_STOP_TIMEOUT:-60}"
OS_USER="${POSTGRES_OS_USER:-postgres}"
DB_USER=snaplog
DB_PASSWORD=snaplog
DB_NAME=snaplog

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The directory of initdb and pg_ctl.
find_bin() {
  if [[ -n "${POSTGRES_BIN:-}" ]]; then
    [[ -x "$POSTGRES_BIN/initdb" ]] || die "POSTGRES_BIN=$POSTGRES_BIN has no initdb"
    echo "$POSTGRES_BIN"
    return 0
  fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V | tail -n 1 || true)"
  if [[ -n "$d" && -x "$d/initdb" ]]; then
    echo "$d"
    return 0
  fi
  if command -v initdb >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  die "no PostgreSQL server binaries (initdb) found: install them (Debian: apt-get install -y postgresql) or set POSTGRES_BIN"
}

# Sets RUN, DATA, LOGS and LOGFILE. As root, the server's user must be able
# to reach the data directory: under /root, say, it cannot.
choose_run() {
  if [[ -s "$PDIR/run" ]]; then
    RUN="$(cat "$PDIR/run")"
  elif (( EUID == 0 )) && ! runuser -u "$OS_USER" -- test -x "$PDIR" 2>/dev/null; then
    RUN="/var/tmp/snaplog-postgres-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    log "user $OS_USER cannot reach $PDIR: the cluster lives in $RUN"
    mkdir -p "$RUN"
    chmod 755 "$RUN"
    echo "$RUN" >"$PDIR/run"
  fi
  DATA="$RUN/data"
  LOGS="$RUN/logs"
  LOGFILE="$LOGS/postgres.log"
  PWFILE="$RUN/pwfile"
}

BIN=""
need_tools() {
  [[ -n "$BIN" ]] || BIN="$(find_bin)"
  if (( EUID == 0 )); then
    getent passwd "$OS_USER" >/dev/null || die "running as root, and user $OS_USER does not exist (PostgreSQL refuses to run as root; set POSTGRES_OS_USER)"
  fi
  local t
  for t in initdb pg_ctl pg_isready postgres psql; do
    [[ -x "$BIN/$t" ]] || die "$BIN/$t not found"
  done
}

# Runs a PostgreSQL program as the cluster's user.
as_pg() {
  if (( EUID == 0 )); then
    # From /: the server's user may not be allowed into the current directory.
    (cd / && runuser -u "$OS_USER" -- "$@")
  else
    "$@"
  fi
}

url() { echo "postgres://$DB_USER:$DB_PASSWORD@$HOST:$(running_port)/$DB_NAME?sslmode=disable"; }

# The port of the running cluster: POSTGRES_PORT if set, else the port it was
# started with.
running_port() {
  if [[ -z "${POSTGRES_PORT:-}" && -s "$PDIR/port" ]]; then cat "$PDIR/port"; else echo "$PORT"; fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# True iff our cluster's postmaster runs (pg_ctl status reads its pid file
# and checks the process).
running() { [[ -f "$DATA/postmaster.pid" ]] && as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

accepts() { "$BIN/pg_isready" -q -h "$HOST" -p "$1" -t 5; }

init_cluster() {
  if [[ -f "$DATA/PG_VERSION" ]]; then
    return 0
  fi
  log "creating a cluster in $DATA ($("$BIN/postgres" --version))"
  rm -rf "$DATA"
  mkdir -p "$DATA"
  chmod 700 "$DATA"
  (umask 077; printf '%s\n' "$DB_PASSWORD" >"$PWFILE")
  if (( EUID == 0 )); then
    chown "$OS_USER" "$DATA" "$PWFILE"
  fi
  # --auth-local: nothing listens on a Unix socket (see write_config).
  if ! as_pg "$BIN/initdb" -D "$DATA" -U "$DB_USER" --pwfile="$PWFILE" \
        --auth-host=scram-sha-256 --auth-local=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 --no-instructions >"$LOGS/initdb.log" 2>&1; then
    cat "$LOGS/initdb.log" >&2
    rm -rf "$DATA"
    die "initdb failed (full output: $LOGS/initdb.log)"
  fi
  rm -f "$PWFILE"
  echo "include_if_exists = 'snaplog.conf'" >>"$DATA/postgresql.conf"
}

# Settings rewritten on every start (the port may change between starts).
write_config() {
  cat >"$DATA/snaplog.conf" <<CONF
# Generated by scripts/postgres.sh on every start; edit the script, not
# this file.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
log_min_error_statement = panic
log_line_prefix = '%m [%p] '
CONF
  if (( EUID == 0 )); then chown "$OS_USER" "$DATA/snaplog.conf"; fi
}

create_db() {
  local have
  have="$(PGPASSWORD="$DB_PASSWORD" "$BIN/psql" -X -q -t -A -h "$HOST" -p "$PORT" -U "$DB_USER" -d postgres \
    -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" 2>&1)" || die "psql: $have"
  if [[ "$have" != 1 ]]; then
    PGPASSWORD="$DB_PASSWORD" "$BIN/psql" -X -q -h "$HOST" -p "$PORT" -U "$DB_USER" -d postgres \
      -c "CREATE DATABASE $DB_NAME" >&2 || die "could not create database $DB_NAME"
    log "created database $DB_NAME"
  fi
}

do_start() {
  need_tools
  if running; then
    log "already running (pid $(head -n 1 "$DATA/postmaster.pid")) on $HOST:$(running_port)"
    url
    return 0
  fi
  port_open "$PORT" && die "port $HOST:$PORT is already in use by another process (set POSTGRES_PORT)"
  mkdir -p "$LOGS"
  if (( EUID == 0 )); then chown "$OS_USER" "$LOGS"; fi
  init_cluster
  write_config
  echo "$PORT" >"$PDIR/port"
  local t0=$SECONDS offset
  offset="$(if [[ -f "$LOGFILE" ]]; then stat -c %s "$LOGFILE"; else echo 0; fi)"
  log "starting on $HOST:$PORT, waiting up to ${START_TIMEOUT}s ..."
  if ! as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t "$START_TIMEOUT" -s </dev/null 9>&-; then
    tail -c +"$((offset + 1))" "$LOGFILE" 2>/dev/null | tail -n 40 >&2 || true
    die "the server did not start (log: $LOGFILE)"
  fi
  while ! accepts "$PORT"; do
    if (( SECONDS - t0 >= START_TIMEOUT )); then
      tail -c +"$((offset + 1))" "$LOGFILE" | tail -n 40 >&2 || true
      as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -s || true
      die "the server does not accept connections on $HOST:$PORT after ${START_TIMEOUT}s; stopped it"
    fi
    sleep 0.2
  done
  create_db
  log "ready on $HOST:$PORT after $((SECONDS - t0))s (pid $(head -n 1 "$DATA/postmaster.pid"))"
  url
}

do_stop() {
  need_tools
  if ! running; then
    log "not running"
    return 0
  fi
  log "stopping pid $(head -n 1 "$DATA/postmaster.pid") ..."
  if ! as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t "$STOP_TIMEOUT" -s; then
    log "not stopped after ${STOP_TIMEOUT}s; immediate shutdown"
    as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -s || die "could not stop the server"
  fi
  log "stopped"
}

do_status() {
  need_tools
  local port
  port="$(running_port)"
  if ! running; then
    echo "postgres: not running"
    return 1
  fi
  if accepts "$port"; then
    echo "postgres: running (pid $(head -n 1 "$DATA/postmaster.pid")) on $HOST:$port"
    return 0
  fi
  echo "postgres: server is up but $HOST:$port does not accept connections"
  return 2
}

do_logs() {
  local follow=0 n=100 a
  for a in "$@"; do
    case "$a" in
      -f|--follow) follow=1 ;;
      *[!0-9]*|'') die "usage: $0 logs [-f] [LINES]" ;;
      *) n="$a" ;;
    esac
  done
  [[ -f "$LOGFILE" ]] || die "no log yet ($LOGFILE)"
  if (( follow )); then exec tail -n "$n" -F "$LOGFILE"; fi
  tail -n "$n" "$LOGFILE"
}

do_reset() {
  do_stop
  rm -rf "$DATA" "$LOGS" "$PDIR/port"
  if [[ "$RUN" != "$PDIR" ]]; then rm -rf "$RUN" "$PDIR/run"; fi
  log "deleted the cluster's data in $DATA"
}

# Serialise start/stop/restart/reset so that concurrent callers do not start
# two servers.
with_lock() {
  exec 9>"$LOCKFILE"
  flock -w $((START_TIMEOUT + STOP_TIMEOUT + 60)) 9 || die "could not lock $LOCKFILE"
  "$@"
}

mkdir -p "$PDIR"
# Keeps the cluster's files out of version control without a line in the
# repository's .gitignore.
[[ -f "$PDIR/.gitignore" ]] || printf '# Created by scripts/postgres.sh: the test cluster, never committed.\n*\n' >"$PDIR/.gitignore"
if (( EUID == 0 )); then chmod 755 "$PDIR"; fi
choose_run

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  start)   with_lock do_start ;;
  stop)    with_lock do_stop ;;
  restart) with_lock do_stop; with_lock do_start ;;
  status)  do_status ;;
  url)     url ;;
  logs)    do_logs "$@" ;;
  reset)   with_lock do_reset ;;
  *)
    echo "usage: $0 start|stop|restart|status|url|logs [-f] [LINES]|reset" >&2
    exit 2 ;;
esac
