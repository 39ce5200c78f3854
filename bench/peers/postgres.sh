#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for the side-by-side benchmark (redrive_loadgen --system
# postgres-queue). Everything the cluster owns lives under DIR: its data directory (DIR/data),
# its Unix socket (DIR/run), its log (DIR/postgres.log) and its port (DIR/port). It listens on
# 127.0.0.1 only, on a free port chosen at the first start and reused afterwards (a new one only
# if another process took it meanwhile). The Debian system cluster (/var/lib/postgresql,
# pg_ctlcluster) is never touched.
#
#   postgres.sh start DIR     initdb on first use, else restart the same data; returns once the
#                             server accepts connections; prints the libpq connection string
#   postgres.sh stop DIR      fast shutdown (pg_ctl -m fast); returns once the server exited
#   postgres.sh pids DIR      PIDs of the postmaster and all its children, one a line
#   postgres.sh conninfo DIR  the libpq connection string (host=127.0.0.1 port=... ...)
#
# Configuration: PostgreSQL's defaults (shared_buffers 128MB, max_connections 100, autovacuum
# on, checkpoint_timeout 5min, max_wal_size 1GB, wal_level replica), except:
#   - listen_addresses = '127.0.0.1' (default 'localhost'), port = the one picked, and
#     unix_socket_directories = DIR/run (default /var/run/postgresql);
#   - authentication: trust, for local connections only (initdb --auth=trust): the cluster is
#     reachable from this machine's loopback and its private socket only;
#   - fsync, synchronous_commit and full_page_writes are written out as `on`: they are the
#     defaults, stated so that nobody wonders (the load generator also checks them with SHOW).
#
# Runs as root (the CI norm) or any user. As root, DIR is chowned to the `postgres` user and the
# server runs as that user (PostgreSQL refuses to run as root); DIR's parents must then be
# searchable by it (e.g. under /tmp, not under /root).
#
# Environment: PG_START_TIMEOUT (seconds, default 60), PG_STOP_TIMEOUT (default 60).
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
START_TIMEOUT="${PG_START_TIMEOUT:-60}"
STOP_TIMEOUT="${PG_STOP_TIMEOUT:-60}"

die() {
  echo "postgres.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '9,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ -x "$PG_BIN/postgres" ] || die "PostgreSQL 15 is not installed ($PG_BIN); run scripts/deps.sh --bench"

[ $# -eq 2 ] || usage
CMD="$1"
case "$CMD" in
  start) mkdir -p "$2" 2>/dev/null || die "cannot create $2" ;;
  stop | pids | conninfo) [ -d "$2" ] || die "$2 is not a directory" ;;
  *) usage ;;
esac
DIR="$(cd "$2" && pwd)"
DATA="$DIR/data"
SOCK="$DIR/run"

# Runs a PostgreSQL program as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

running() {
  [ -f "$DATA/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

port_in_use() {  # something accepts TCP connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
  local p
  for _ in $(seq 1 200); do
    # Below Linux's ephemeral range (32768-60999), where outgoing connections take theirs.
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "no free TCP port found on 127.0.0.1"
}

conninfo() {
  [ -s "$DIR/port" ] || die "$DIR/port is missing: start the cluster first (postgres.sh start $DIR)"
  echo "host=127.0.0.1 port=$(cat "$DIR/port") dbname=postgres user=postgres"
}

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  if [ -e "$DATA" ] && [ -n "$(ls -A "$DATA" 2>/dev/null)" ]; then
    die "$DATA exists but is not a PostgreSQL data directory; remove it or pick another DIR"
  fi
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "there is no postgres user (install postgresql-15)"
    chown postgres: "$DIR"
    runuser -u postgres -- test -w "$DIR" ||
      die "the postgres user cannot write to $DIR (are its parent directories searchable by it?)"
  fi
  as_owner "$PG_BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C \
    --no-instructions >"$DIR/initdb.log" 2>&1 || {
    cat "$DIR/initdb.log" >&2
    die "initdb failed (log: $DIR/initdb.log)"
  }
  cat >>"$DATA/postgresql.conf" <<EOF

# ---- bench/peers/postgres.sh (the rest is PostgreSQL's defaults)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
}

start() {
  if running; then
    conninfo
    return 0
  fi
  init_cluster
  mkdir -p "$SOCK"
  [ "$(id -u)" = 0 ] && chown postgres: "$SOCK" "$DIR"
  local port log_size
  port="$(cat "$DIR/port" 2>/dev/null || true)"
  for _ in 1 2 3; do
    if [ -z "$port" ] || port_in_use "$port"; then port="$(pick_port)"; fi
    echo "$port" >"$DIR/port"
    log_size="$(stat -c %s "$DIR/postgres.log" 2>/dev/null || echo 0)"
    # -w: pg_ctl returns once the server accepts connections (or after -t seconds).
    if as_owner "$PG_BIN/pg_ctl" start -D "$DATA" -l "$DIR/postgres.log" -w -t "$START_TIMEOUT" \
      -o "-p $port" >/dev/null 2>&1; then
      as_owner "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 ||
        die "the server started but does not answer on 127.0.0.1:$port (log: $DIR/postgres.log)"
      conninfo
      return 0
    fi
    # The port may have been taken between the check and the bind: try another one. Anything
    # else fails the same way again, and the log says what.
    running && die "pg_ctl start failed but a server runs on $DATA (log: $DIR/postgres.log)"
    port=""
    tail -c +"$((log_size + 1))" "$DIR/postgres.log" 2>/dev/null |
      grep -q 'could not bind\|could not create any TCP/IP sockets' || break
  done
  tail -c +"$((log_size + 1))" "$DIR/postgres.log" 2>/dev/null | tail -20 >&2 || true
  die "the server did not start within ${START_TIMEOUT} s (log: $DIR/postgres.log)"
}

stop() {
  running || return 0
  as_owner "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t "$STOP_TIMEOUT" >/dev/null ||
    die "the server did not stop within ${STOP_TIMEOUT} s (log: $DIR/postgres.log)"
}

pids() {
  running || die "the cluster in $DIR is not running"
  local pm
  pm="$(head -1 "$DATA/postmaster.pid")"
  echo "$pm"
  ps -o pid= --ppid "$pm" | tr -d ' '
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  pids) pids ;;
  conninfo) conninfo ;;
  *) usage ;;
esac
