#!/usr/bin/env bash
# `make bench-cluster`: redrive on a shared PostgreSQL 15 with 1, 2 and 3 nodes, next to the
# PostgreSQL table used as a queue (the postgres-queue peer of bench/compare.sh) and to one
# redrive node on its embedded SQLite, in the same run on the same machine and disk; then how
# long a redrive job stalls when the node running it is killed.
#
# One private PostgreSQL cluster (bench/peers/postgres.sh: fsync and synchronous_commit on)
# serves the whole run. For each node count it gets a fresh database, the nodes are started on
# it (separate processes and data directories, the same --store URL, free ports), and
# redrive_loadgen runs the end-to-end and dead-letter scenarios with its connections spread
# round-robin over every node (--url u1,u2,...). The CPU of the redrive processes together and
# of the PostgreSQL processes is measured from /proc, as compare.sh does. Then the same two
# scenarios run against postgres-queue (its own database on the same cluster) and against one
# redrive node without --store (SQLite in its data directory).
#
# Failover: two nodes on a fresh database, ~2000 dead letters (published, nacked once with
# maxDeliveries 1), a redrive job at 100 msg/s to another queue; the node holding the job's
# claim (table claims, holder "<host>-<pid>-<suffix>") gets SIGKILL, and the surviving node is
# polled every 100 ms until the job's progress.moved grows again. The claim passes on 6 s
# after its last renewal, so expect 6-7 s.
#
# Prints one table (system, nodes, scenario, msg/s, ratio to postgres-queue, CPU % of one core
# of the redrive processes and of PostgreSQL's) and the failover time; writes every loadgen
# JSON line (and a failover line) to BENCH_OUT/results.jsonl, the table to results.txt and the
# logs to logs/. Everything it started is stopped on exit, also on error or Ctrl-C, the
# PostgreSQL cluster included. Builds nothing: `make bench-cluster` builds first.
#
# Environment (all optional):
#   BENCH_SECONDS     seconds each scenario publishes for (default 15)
#   BENCH_NODES       node counts on PostgreSQL (default "1 2 3")
#   BENCH_FAILOVER    0: skip the failover measurement (default 1)
#   FAILOVER_DEAD_LETTERS  dead letters the failover job moves (default 2000)
#   BENCH_TMPDIR      where PostgreSQL's and redrive's data go (default $TMPDIR or /tmp; as
#                     root its parents must be searchable by the postgres user). Put it on the
#                     disk you mean to measure, not tmpfs.
#   BENCH_OUT         where the results go (default build/bench-results/cluster-<UTC time>)
#   BUILD             build directory (default build/release); REDRIVE, LOADGEN override
#   BENCH_KEEP        1: keep the temporary directory (data and logs) at the end
#   E2E_* DL_*        the scenarios' parameters, bench/run.sh's defaults
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build/release}"
REDRIVE="${REDRIVE:-$BUILD/src/cli/redrive}"
LOADGEN="${LOADGEN:-$BUILD/bench/redrive_loadgen}"
PG="$ROOT/bench/peers/postgres.sh"
SECONDS_EACH="${BENCH_SECONDS:-15}"
read -r -a NODE_COUNTS <<<"${BENCH_NODES:-1 2 3}"
FAILOVER="${BENCH_FAILOVER:-1}"
FAILOVER_DEAD_LETTERS="${FAILOVER_DEAD_LETTERS:-2000}"
BODY_SIZE=1024
OUT="${BENCH_OUT:-$ROOT/build/bench-results/cluster-$(date -u +%Y%m%dT%H%M%SZ)}"

# bench/run.sh's defaults for these two scenarios (docs/benchmarks.md), the same for every
# system and node count, so the rows compare.
E2E_PRODUCERS="${E2E_PRODUCERS:-8}"
E2E_CONSUMERS="${E2E_CONSUMERS:-24}"
E2E_BATCH="${E2E_BATCH:-100}"
E2E_RECEIVE_BATCH="${E2E_RECEIVE_BATCH:-$E2E_BATCH}"
E2E_MAX_BACKLOG="${E2E_MAX_BACKLOG:-40000}"
DL_PRODUCERS="${DL_PRODUCERS:-8}"
DL_CONSUMERS="${DL_CONSUMERS:-32}"
DL_BATCH="${DL_BATCH:-100}"
DL_RECEIVE_BATCH="${DL_RECEIVE_BATCH:-50}"
DL_MAX_BACKLOG="${DL_MAX_BACKLOG:-20000}"
DL_FAIL_SHARE="${DL_FAIL_SHARE:-0.1}"

log() { echo "$*" >&2; }
die() {
  log "bench/cluster.sh: $*"
  exit 1
}
calc() { awk "BEGIN {print ($1)}"; }  # floating-point arithmetic and comparisons (1 or 0)

for bin in "$REDRIVE" "$LOADGEN"; do
  [ -x "$bin" ] ||
    die "$bin is missing; build first: cmake --build $BUILD -j2 --target redrive redrive_loadgen"
done
[ -x "$PG" ] || die "$PG is missing"
for tool in psql jq curl; do
  command -v "$tool" >/dev/null || die "$tool is missing: scripts/deps.sh --bench"
done

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
JSONL="$OUT/results.jsonl"
: >"$JSONL"
TMP="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/redrive-cluster.XXXXXX")"
# The PostgreSQL cluster runs as the postgres user when we are root: it must reach its DIR.
chmod 755 "$TMP"
FS_TYPE="$(stat -f -c %T "$TMP")"
if [ "$FS_TYPE" = tmpfs ]; then
  log "warning: $TMP is on tmpfs: fsync is free there, so every figure overstates durable throughput"
fi

# ------------------------------------------------------------------ starting and stopping

PG_DIR="$TMP/pg"
PG_STARTED=0
NODE_PIDS=()   # the running redrive nodes
NODE_URLS=()   # their base URLs, in the same order
NODE_DIRS=()

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_nodes || true
  if [ "$PG_STARTED" = 1 ]; then "$PG" stop "$PG_DIR" >/dev/null 2>&1 || true; fi
  # The logs, for a look afterwards (the data directories go with $TMP).
  mkdir -p "$OUT/logs"
  local f
  for f in "$TMP"/*/node*/server.log; do
    [ -f "$f" ] && cp "$f" "$OUT/logs/$(basename "$(dirname "$(dirname "$f")")").$(basename "$(dirname "$f")").log"
  done
  [ -f "$PG_DIR/postgres.log" ] && cp "$PG_DIR/postgres.log" "$OUT/logs/"
  find "$TMP" -maxdepth 1 -name '*.err' -exec cp {} "$OUT/logs/" \;
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$PG" start "$PG_DIR" >"$TMP/pg.started" || die "PostgreSQL did not start (log: $PG_DIR/postgres.log)"
PG_STARTED=1
PG_PORT="$(cat "$PG_DIR/port")"
sql() {  # sql DATABASE STATEMENT: runs one statement, prints the rows unaligned
  # client_min_messages: no NOTICE for DROP DATABASE IF EXISTS of a database not there yet.
  PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 \
    "host=127.0.0.1 port=$PG_PORT dbname=$1 user=postgres" -c "$2"
}
fresh_db() {  # fresh_db NAME: an empty database (what a first node expects)
  sql postgres "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null
  sql postgres "CREATE DATABASE \"$1\"" >/dev/null
}

# start_node DIR [STORE-URL]: one redrive node on a free port, appended to NODE_*; returns once
# it listens. The first node of an empty database writes the operator token to its data dir, so
# the nodes start one after another and the first one's token is used for everything.
start_node() {
  local dir="$1" store="${2:-}" args=()
  mkdir -p "$dir"
  [ -n "$store" ] && args=(--store "$store")
  "$REDRIVE" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --port-file "$dir/port" \
    "${args[@]}" >>"$dir/server.log" 2>&1 &
  local pid=$! i
  NODE_PIDS+=("$pid")
  NODE_DIRS+=("$dir")
  for i in $(seq 1 600); do
    [ -s "$dir/port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -s "$dir/port" ] || { tail -20 "$dir/server.log" >&2; die "redrive did not start ($dir)"; }
  NODE_URLS+=("http://127.0.0.1:$(cat "$dir/port")")
}

# start_nodes N DIR [STORE-URL]: N nodes under DIR/node1..N; sets TOKEN_FILE and URLS.
start_nodes() {
  local n="$1" dir="$2" store="${3:-}" i
  for i in $(seq 1 "$n"); do
    start_node "$dir/node$i" "$store"
    if [ "$i" = 1 ]; then
      for _ in $(seq 1 100); do [ -s "$dir/node1/data/operator.token" ] && break; sleep 0.1; done
      [ -s "$dir/node1/data/operator.token" ] || die "the first node wrote no operator.token"
    fi
  done
  TOKEN_FILE="$dir/node1/data/operator.token"
  URLS="$(IFS=,; echo "${NODE_URLS[*]}")"
}

stop_pid() {  # stop_pid PID: a clean stop; returns once it is down
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

stop_nodes() {
  local pid
  for pid in "${NODE_PIDS[@]}"; do stop_pid "$pid"; done
  NODE_PIDS=()
  NODE_URLS=()
  NODE_DIRS=()
}

# ------------------------------------------------------------------ CPU accounting

CLK_TCK="$(getconf CLK_TCK)"
# Ticks (user + system) of the redrive nodes together.
redrive_ticks() {
  local pid total=0 t
  for pid in "${NODE_PIDS[@]}"; do
    t="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')"
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
# Ticks of the PostgreSQL cluster: the postmaster with its reaped children (postgres-queue's
# backends exit when the load generator disconnects) plus every child still running (the
# redrive nodes' backends, the checkpointer, the WAL writer). A child that exits between two
# readings moves its ticks into the postmaster's, so the difference stays exact.
pg_ticks() {
  local first=1 pid total=0 t
  for pid in $("$PG" pids "$PG_DIR" 2>/dev/null); do
    if [ "$first" = 1 ]; then
      t="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}')"
      first=0
    else
      t="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')"
    fi
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# ------------------------------------------------------------------ runs

ROWS="$TMP/rows.tsv"  # system nodes scenario msg/s redrive% postgres% accounted
: >"$ROWS"
FAILED=()
NOISY=()

# run_loadgen SYSTEM-LABEL NODES SCENARIO LOADGEN-ARGS...: one run; appends its JSON line (with
# the label, the node count and the CPU shares added) to results.jsonl and a row to the table.
run_loadgen() {
  local label="$1" nodes="$2" scenario="$3"
  shift 3
  local params=()
  case "$scenario" in
    end-to-end)
      params=(--producers "$E2E_PRODUCERS" --consumers "$E2E_CONSUMERS" --batch "$E2E_BATCH"
        --receive-batch "$E2E_RECEIVE_BATCH" --max-backlog "$E2E_MAX_BACKLOG")
      ;;
    dead-letter)
      params=(--producers "$DL_PRODUCERS" --consumers "$DL_CONSUMERS" --batch "$DL_BATCH"
        --receive-batch "$DL_RECEIVE_BATCH" --max-backlog "$DL_MAX_BACKLOG"
        --fail-share "$DL_FAIL_SHARE")
      ;;
  esac
  local out="$TMP/$label.n$nodes.$scenario.json" rc=0
  local r0 p0 m0 t0 r1 p1 m1 t1
  log "== $label, $nodes node(s), $scenario"
  r0="$(redrive_ticks)"
  p0="$(pg_ticks)"
  m0="$(machine_ticks)"
  t0="$(date +%s.%N)"
  "$LOADGEN" "$@" --queue "$scenario" --scenario "$scenario" --seconds "$SECONDS_EACH" \
    --body-size "$BODY_SIZE" --json "${params[@]}" >"$out" 2>"$out.err" || rc=$?
  sleep 0.2  # let the postmaster reap the backends that just closed
  r1="$(redrive_ticks)"
  p1="$(pg_ticks)"
  m1="$(machine_ticks)"
  t1="$(date +%s.%N)"
  if [ ! -s "$out" ]; then
    log "   no result (exit $rc): $(tail -3 "$out.err" | tr '\n' ' ')"
    FAILED+=("$label $nodes $scenario")
    return 0
  fi
  local wall redrive_pct pg_pct lg_pct others_pct
  wall="$(calc "$t1 - $t0")"
  redrive_pct="$(calc "($r1 - $r0) / $CLK_TCK / $wall * 100")"
  pg_pct="$(calc "($p1 - $p0) / $CLK_TCK / $wall * 100")"
  lg_pct="$(calc "$(jq -r .loadgenCpuSeconds "$out") / $wall * 100")"
  others_pct="$(calc "(($m1 - $m0) - ($r1 - $r0) - ($p1 - $p0)) / $CLK_TCK / $wall * 100 - $lg_pct")"
  [ "$(calc "$others_pct < 0")" = 1 ] && others_pct=0
  local accounted rate
  accounted="$(jq -r .accounted "$out")"
  rate="$(jq -r .messagesPerSecond "$out")"
  [ "$rc" -eq 0 ] && [ "$accounted" = true ] || FAILED+=("$label $nodes $scenario")
  printf '   %.0f msg/s; CPU %% of one core: redrive %.0f, postgres %.0f, loadgen %.0f, others %.0f\n' \
    "$rate" "$redrive_pct" "$pg_pct" "$lg_pct" "$others_pct" >&2
  log "   $(jq -r .verdict "$out")"
  [ "$(jq -r '.firstError // ""' "$out")" = "" ] || log "   first error: $(jq -r .firstError "$out")"
  if [ "$(calc "$others_pct > 20")" = 1 ]; then
    NOISY+=("$label $nodes $scenario: other processes used $(printf '%.0f' "$others_pct")% of a core")
  fi
  # "store" says where redrive keeps its data: the driver's "describe" cannot tell, and always
  # names SQLite.
  local store=null
  case "$label" in
    redrive-postgresql) store='"postgresql"' ;;
    redrive-sqlite) store='"sqlite"' ;;
  esac
  jq -c --arg sys "$label" --argjson nodes "$nodes" --argjson store "$store" \
    --argjson r "$redrive_pct" --argjson p "$pg_pct" --argjson l "$lg_pct" --argjson o "$others_pct" \
    '{benchSystem: $sys, nodes: $nodes, store: $store} + . +
     {redriveCpuPercent: $r, postgresCpuPercent: $p, loadgenCpuPercent: $l, othersCpuPercent: $o}' \
    "$out" >>"$JSONL"
  # Only the processes that take part are shown; the idle PostgreSQL cluster is not.
  case "$label" in
    postgres-queue) redrive_pct=- ;;
    redrive-sqlite) pg_pct=- ;;
  esac
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$nodes" "$scenario" "$rate" "$redrive_pct" \
    "$pg_pct" "$accounted" >>"$ROWS"
}

# ---- redrive on PostgreSQL, 1..N nodes
for n in "${NODE_COUNTS[@]}"; do
  db="redrive_n$n"
  fresh_db "$db"
  start_nodes "$n" "$TMP/pg-n$n" "postgresql://postgres@127.0.0.1:$PG_PORT/$db"
  log "-- $n node(s) on PostgreSQL ($db): $URLS"
  for scenario in end-to-end dead-letter; do
    run_loadgen redrive-postgresql "$n" "$scenario" --system redrive --url "$URLS" \
      --token-file "$TOKEN_FILE" --tenant bench --create
  done
  stop_nodes
  # The next node count starts from an empty database; this one's tables would only cost
  # checkpoints and autovacuum during the next runs.
  sql postgres "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
done

# ---- the PostgreSQL queue on the same cluster (its own database; it makes its own tables)
fresh_db pgqueue
for scenario in end-to-end dead-letter; do
  run_loadgen postgres-queue 1 "$scenario" --system postgres-queue \
    --pg-conninfo "host=127.0.0.1 port=$PG_PORT dbname=pgqueue user=postgres"
done
sql postgres "DROP DATABASE pgqueue WITH (FORCE)" >/dev/null

# ---- one redrive node on its embedded SQLite
start_nodes 1 "$TMP/sqlite"
for scenario in end-to-end dead-letter; do
  run_loadgen redrive-sqlite 1 "$scenario" --system redrive --url "$URLS" \
    --token-file "$TOKEN_FILE" --tenant bench --create
done
stop_nodes

# ------------------------------------------------------------------ failover

FAILOVER_SECONDS=""
FAILOVER_NOTE=""
api() {  # api METHOD URL [JSON]: prints the answer; fails on anything but 2xx
  local args=(-sS -o "$TMP/api.out" -w '%{http_code}' -X "$1"
    -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -H 'Content-Type: application/json')
  [ $# -ge 3 ] && args+=(-d "$3")
  local code
  code="$(curl "${args[@]}" "$2")"
  [ "${code:0:1}" = 2 ] || die "$1 $2 answered $code: $(cat "$TMP/api.out")"
  cat "$TMP/api.out"
}

failover() {
  fresh_db redrive_failover
  start_nodes 2 "$TMP/failover" "postgresql://postgres@127.0.0.1:$PG_PORT/redrive_failover"
  log "-- failover: 2 nodes on PostgreSQL: $URLS"
  local a="${NODE_URLS[0]}" t=/v1/tenants/failover
  api POST "$a/v1/tenants" '{"name":"failover"}' >/dev/null
  api POST "$a$t/queues" \
    '{"name":"work","attributes":{"deadLetterQueue":"work-dlq","retryPolicy":{"maxDeliveries":1,"backoff":{"initial":"0s","jitter":0}}}}' \
    >/dev/null
  api POST "$a$t/queues" '{"name":"target"}' >/dev/null
  # The dead letters: every message published is nacked on its first (and last) delivery; the
  # load generator accounts for each one (dead-letter scenario, every message failing).
  "$LOADGEN" --system redrive --url "$URLS" --token-file "$TOKEN_FILE" --tenant failover \
    --queue work --scenario dead-letter --messages "$FAILOVER_DEAD_LETTERS" --fail-share 1 \
    --max-deliveries 1 --producers 2 --consumers 4 --batch 100 --body-size "$BODY_SIZE" \
    --json >"$TMP/failover-fill.json" 2>"$TMP/failover-fill.err" ||
    die "filling the dead letters failed: $(cat "$TMP/failover-fill.json" "$TMP/failover-fill.err")"
  local job
  job="$(api POST "$a$t/redrive-jobs" '{"deadLetterQueue":"work-dlq","destination":"target","rate":100}' |
    jq -r .id)"
  moved() { api GET "$1$t/redrive-jobs/$job" | jq -r .progress.moved; }
  # Let it get going, so the kill interrupts a job that is moving.
  local i
  for i in $(seq 1 100); do [ "$(moved "$a")" -ge 100 ] && break; sleep 0.1; done
  # Which node runs it: the holder of the job's claim is "<host>-<pid>-<suffix>".
  local holder pid victim="" survivor=""
  holder="$(sql redrive_failover "SELECT holder FROM claims WHERE name = 'job/$job'")"
  pid="$(echo "$holder" | awk -F- '{print $(NF - 1)}')"
  for i in 0 1; do
    if [ "${NODE_PIDS[$i]}" = "$pid" ]; then victim="$i"; else survivor="$i"; fi
  done
  [ -n "$victim" ] || die "the job's claim holder '$holder' is none of the nodes (${NODE_PIDS[*]})"
  local s="${NODE_URLS[$survivor]}" t_kill before after now
  kill -KILL "$pid"
  t_kill="$(date +%s.%N)"
  wait "$pid" 2>/dev/null || true
  # A chunk whose COMMIT was already on its way commits after the kill: take the baseline a
  # moment later (the claim cannot pass on within 5 s).
  sleep 0.5
  before="$(moved "$s")"
  log "   job $job on node $((victim + 1)) (pid $pid), SIGKILL at moved=$before; polling node $((survivor + 1))"
  after="$before"
  while [ "$after" -le "$before" ]; do
    now="$(date +%s.%N)"
    [ "$(calc "$now - $t_kill > 60")" = 1 ] && break
    sleep 0.1
    after="$(moved "$s")"
  done
  now="$(date +%s.%N)"
  if [ "$after" -gt "$before" ]; then
    FAILOVER_SECONDS="$(calc "$now - $t_kill")"
    FAILOVER_NOTE="job $job: moved $before at the kill, $after when it moved again"
  else
    FAILOVER_NOTE="job $job: moved stayed at $before for 60 s after the kill"
    FAILED+=("failover")
  fi
  log "   $FAILOVER_NOTE"
  jq -nc --arg job "$job" --argjson before "$before" --argjson after "$after" \
    --arg seconds "$FAILOVER_SECONDS" \
    '{benchSystem: "redrive-postgresql", nodes: 2, scenario: "failover", job: $job,
      movedAtKill: $before, movedAfter: $after, rate: 100,
      secondsUntilMovedAgain: (if $seconds == "" then null else ($seconds | tonumber) end)}' \
    >>"$JSONL"
  stop_nodes
}
[ "$FAILOVER" = 1 ] && failover

# ------------------------------------------------------------------ report

report() {
  echo "redrive on PostgreSQL  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  body ${BODY_SIZE} B" \
    " ${SECONDS_EACH} s per scenario  data on ${FS_TYPE}"
  echo "CPU: % of one core during the run, the redrive nodes together and every PostgreSQL process."
  echo "vs pg-queue: msg/s / postgres-queue's msg/s in the same scenario (above 1x redrive is faster)."
  printf '%-19s %5s  %-12s %9s  %10s  %8s  %8s  %s\n' system nodes scenario "msg/s" "vs pg-queue" \
    "redrive" "postgres" ok
  awk -F'\t' '
    NR == FNR {if ($1 == "postgres-queue") base[$3] = $4; next}
    {ratio = (base[$3] > 0) ? sprintf("%.2fx", $4 / base[$3]) : "-"
     r = ($5 == "-") ? "-" : sprintf("%.0f%%", $5)
     p = ($6 == "-") ? "-" : sprintf("%.0f%%", $6)
     printf "%-19s %5s  %-12s %9.0f  %10s  %8s  %8s  %s\n", $1, $2, $3, $4, ratio, r, p,
       ($7 == "true" ? "yes" : "NO")}' "$ROWS" "$ROWS"
  echo
  echo "parameters, the same for every row: end-to-end ${E2E_PRODUCERS} producers, ${E2E_CONSUMERS} consumers," \
    "batch ${E2E_BATCH}, receive ${E2E_RECEIVE_BATCH}, backlog ${E2E_MAX_BACKLOG};" \
    "dead-letter ${DL_PRODUCERS} producers, ${DL_CONSUMERS} consumers, batch ${DL_BATCH}," \
    "receive ${DL_RECEIVE_BATCH}, backlog ${DL_MAX_BACKLOG}, ${DL_FAIL_SHARE} failing, 3 deliveries;" \
    "redrive's connections round-robin over the nodes"
  if [ "$FAILOVER" = 1 ]; then
    echo
    if [ -n "$FAILOVER_SECONDS" ]; then
      printf 'failover: a redrive job (rate 100/s) moved again %.1f s after SIGKILL of its node (%s)\n' \
        "$FAILOVER_SECONDS" "$FAILOVER_NOTE"
    else
      echo "failover: NOT measured ($FAILOVER_NOTE)"
    fi
  fi
  if [ ${#NOISY[@]} -gt 0 ]; then
    echo
    echo "warning: other processes competed for the CPU (rerun on a quiet machine before quoting):"
    printf '  %s\n' "${NOISY[@]}"
  fi
  if [ ${#FAILED[@]} -gt 0 ]; then
    echo
    echo "FAILED (no figure, or not every message accounted for):"
    printf '  %s\n' "${FAILED[@]}"
  fi
}

echo
report | tee "$OUT/results.txt"
echo
echo "results: $OUT/results.txt"
echo "json:    $JSONL"
[ ${#FAILED[@]} -eq 0 ]
