#!/usr/bin/env bash
# The private PostgreSQL 15 cluster of the test run (ctest's `postgres` fixture; docs/testing.md).
#
#   test-postgres.sh start DIR   a fresh cluster in DIR (any old one there is removed first),
#                                tuned for tests; returns once it accepts connections
#   test-postgres.sh stop DIR    stops it and removes DIR
#
# The cluster is bench/peers/postgres.sh's (initdb in DIR as an unprivileged user, 127.0.0.1
# only, a free port, no system service touched), with what makes tests fast and many:
# fsync, synchronous_commit and full_page_writes off (a test never survives a power cut, and
# the durability of a commit is PostgreSQL's, not redrive's, to test), and 400 connections
# (tests run side by side, each node with its pool). Tests make a database each
# (store/postgres/pg_test_database.h).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pg="$here/../bench/peers/postgres.sh"
[ $# -eq 2 ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
DIR="$2"

psql_as_owner() {
  local port
  port="$(cat "$DIR/port")"
  /usr/lib/postgresql/15/bin/psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"
}

case "$1" in
  start)
    if [ -d "$DIR" ]; then
      "$pg" stop "$DIR" >/dev/null 2>&1 || true
      rm -rf "$DIR"
    fi
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    "$pg" start "$DIR" >/dev/null
    psql_as_owner -c "ALTER SYSTEM SET fsync = off" -c "ALTER SYSTEM SET synchronous_commit = off" \
      -c "ALTER SYSTEM SET full_page_writes = off" -c "ALTER SYSTEM SET max_connections = 400" \
      -c "ALTER SYSTEM SET shared_buffers = '256MB'"
    "$pg" stop "$DIR"
    "$pg" start "$DIR"
    ;;
  stop)
    [ -d "$DIR" ] || exit 0
    "$pg" stop "$DIR"
    rm -rf "$DIR"
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
