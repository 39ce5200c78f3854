#!/usr/bin/env bash
# `make bench`: redrive side by side with RabbitMQ (a durable classic queue and a quorum queue)
# and a PostgreSQL table used as a queue, in the same run on the same machine and disk.
#
# For each system in turn (only one runs at a time) it starts a private instance on 127.0.0.1
# under a temporary directory, runs every scenario against it with redrive_loadgen using the SAME
# parameters for every system, stops it, and goes on to the next. At the end it prints one
# table (scenario, redrive, each peer, and how many times better redrive is than each peer), how
# each system is configured, and the verdicts on the targets of issue 4; it writes the table as
# JSON and a chart of throughput and latency (gnuplot), and prints their paths. Everything it
# started is stopped on exit, also on error or Ctrl-C. Builds nothing: `make bench` builds first.
#
# Scenarios (1 KiB bodies; docs/benchmarks.md has the details):
#   publish       producers only, for BENCH_SECONDS
#   end-to-end    producers and consumers at once, every message acked
#   dead-letter   as end-to-end, 10% of the messages fail on every delivery until the system
#                 dead-letters them after 3 deliveries
#   latency-p99   publish-to-receive latency at a fixed 10,000 msg/s (p50/p99/p99.9 reported)
#   rss-1m        peak memory of the system's processes while 1,000,000 messages are published
#                 into a fresh queue on a freshly started instance, and once they are queued
#   restart-1m    with those 1,000,000 queued: clean stop, then the seconds from the start
#                 command until a receive returns a message (redrive_probe)
#   redrive-1m    1,000,000 dead letters moved back to their origin queue: redrive's redrive
#                 job; RabbitMQ's shovel (bench/peers/rabbitmq.sh shovel-move); for PostgreSQL
#                 one DELETE ... RETURNING feeding an INSERT. Putting the dead letters there
#                 first (redrive_fill) is set-up, not measured.
#
# Environment (all optional):
#   BENCH_SYSTEMS     systems to run (default: redrive rabbitmq-classic rabbitmq-quorum
#                     postgres-queue)
#   BENCH_SCENARIOS   scenarios to run (default: all seven above)
#   BENCH_SECONDS     seconds each timed scenario publishes for (default 15)
#   BENCH_1M          messages for the *-1m scenarios (default 1000000; e.g. 20000 to test)
#   BENCH_TMPDIR      where the systems' data go (default $TMPDIR or /tmp). Every system
#                     fsyncs, so put it on the disk you mean to measure, not tmpfs.
#   BENCH_OUT         where the results go (default build/bench-results/<UTC time>)
#   BUILD             build directory (default build/release); REDRIVE, LOADGEN, FILL, PROBE
#                     override single binaries
#   BENCH_KEEP        1: keep the temporary directory (data and logs) at the end
#   PUB_* E2E_* DL_* LAT_*   the scenarios' parameters (below), the same for every system
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build/release}"
REDRIVE="${REDRIVE:-$BUILD/src/cli/redrive}"
LOADGEN="${LOADGEN:-$BUILD/bench/redrive_loadgen}"
FILL="${FILL:-$BUILD/bench/redrive_fill}"
PROBE="${PROBE:-$BUILD/bench/redrive_probe}"
PEERS="$ROOT/bench/peers"
ALL_SYSTEMS="redrive rabbitmq-classic rabbitmq-quorum postgres-queue"
ALL_SCENARIOS="publish end-to-end dead-letter latency-p99 rss-1m restart-1m redrive-1m"
read -r -a SYSTEMS <<<"${BENCH_SYSTEMS:-$ALL_SYSTEMS}"
read -r -a SCENARIOS <<<"${BENCH_SCENARIOS:-$ALL_SCENARIOS}"
SECONDS_EACH="${BENCH_SECONDS:-15}"
N_1M="${BENCH_1M:-1000000}"
BODY_SIZE=1024
OUT="${BENCH_OUT:-$ROOT/build/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"

# One setting per scenario, the same for every system. They are redrive's best measured
# settings on 2 cores (docs/benchmarks.md) and reasonable for the peers too: batched publishes
# (one confirm wait / one commit per batch), tens of consumers, a bounded backlog.
PUB_PRODUCERS="${PUB_PRODUCERS:-4}"
PUB_BATCH="${PUB_BATCH:-1000}"
E2E_PRODUCERS="${E2E_PRODUCERS:-8}"
E2E_CONSUMERS="${E2E_CONSUMERS:-24}"
E2E_BATCH="${E2E_BATCH:-100}"
E2E_RECEIVE_BATCH="${E2E_RECEIVE_BATCH:-100}"
E2E_MAX_BACKLOG="${E2E_MAX_BACKLOG:-40000}"
DL_PRODUCERS="${DL_PRODUCERS:-8}"
DL_CONSUMERS="${DL_CONSUMERS:-32}"
DL_BATCH="${DL_BATCH:-100}"
DL_RECEIVE_BATCH="${DL_RECEIVE_BATCH:-50}"
DL_MAX_BACKLOG="${DL_MAX_BACKLOG:-20000}"
DL_FAIL_SHARE="${DL_FAIL_SHARE:-0.1}"
LAT_RATE="${LAT_RATE:-10000}"
LAT_PRODUCERS="${LAT_PRODUCERS:-8}"
LAT_CONSUMERS="${LAT_CONSUMERS:-4}"
LAT_BATCH="${LAT_BATCH:-10}"
LAT_RECEIVE_BATCH="${LAT_RECEIVE_BATCH:-100}"

# A node that recovers 1,000,000 messages may take minutes to boot: give the peer scripts time
# (restart-1m measures it; the probe gives up after 600 s).
export RABBITMQ_START_TIMEOUT="${RABBITMQ_START_TIMEOUT:-900}" PG_START_TIMEOUT="${PG_START_TIMEOUT:-900}"

log() { echo "$*" >&2; }
die() {
  log "bench/compare.sh: $*"
  exit 1
}
calc() { awk "BEGIN {print ($1)}"; }  # floating-point arithmetic and comparisons (1 or 0)
jget() {  # jget FILE KEY: the first scalar value of KEY in a one-line JSON document
  sed -n "s/^[^\"]*\(\"[^\"]*\"[^\"]*\)*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\2/p;T;q" "$1" 2>/dev/null |
    sed 's/^"\(.*\)"$/\1/'
}
has() {  # has WORD LIST...: WORD is one of LIST
  local w="$1"
  shift
  local x
  for x in "$@"; do [ "$x" = "$w" ] && return 0; done
  return 1
}

# shellcheck disable=SC2086  # the lists are split into words on purpose
for s in "${SYSTEMS[@]}"; do
  has "$s" $ALL_SYSTEMS || die "unknown system '$s' in BENCH_SYSTEMS (known: $ALL_SYSTEMS)"
done
for i in "${!SCENARIOS[@]}"; do
  [ "${SCENARIOS[$i]}" = latency ] && SCENARIOS[i]=latency-p99
  # shellcheck disable=SC2086
  has "${SCENARIOS[$i]}" $ALL_SCENARIOS ||
    die "unknown scenario '${SCENARIOS[$i]}' in BENCH_SCENARIOS (known: $ALL_SCENARIOS)"
done
for bin in "$REDRIVE" "$LOADGEN" "$FILL" "$PROBE"; do
  [ -x "$bin" ] || die "$bin is missing; build first: cmake --build $BUILD -j2 (or make bench)"
done
for s in "${SYSTEMS[@]}"; do
  case "$s" in
    rabbitmq-*) [ -x "$PEERS/rabbitmq.sh" ] || die "$PEERS/rabbitmq.sh is missing" ;;
    postgres-queue)
      [ -x "$PEERS/postgres.sh" ] || die "$PEERS/postgres.sh is missing"
      command -v psql >/dev/null || die "psql is missing: scripts/deps.sh --bench"
      ;;
  esac
done
has rss-1m "${SCENARIOS[@]}" || has restart-1m "${SCENARIOS[@]}" || has redrive-1m "${SCENARIOS[@]}" ||
  N_1M=0

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TMP="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/redrive-compare.XXXXXX")"
# The PostgreSQL cluster runs as the postgres user when we are root: it must reach its DIR.
chmod 755 "$TMP"
FS_TYPE="$(stat -f -c %T "$TMP")"
if [ "$FS_TYPE" = tmpfs ]; then
  log "warning: $TMP is on tmpfs: fsync is free there, so every system's figures overstate durable throughput"
fi

# ------------------------------------------------------------------ starting and stopping

STARTED=()        # "system dir" of every instance started and not yet stopped
REDRIVE_PID=""    # the running redrive server
SAMPLER_PID=""    # the running memory sampler
CONN=()           # the loadgen / probe / fill flags that reach the running system

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  local entry
  for entry in "${STARTED[@]}"; do
    # shellcheck disable=SC2086
    stop_system $entry || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget() {  # forget SYSTEM DIR: no longer running
  local keep=() e
  for e in "${STARTED[@]}"; do [ "$e" = "$1 $2" ] || keep+=("$e"); done
  STARTED=("${keep[@]}")
}

# start_system SYSTEM DIR [PORT]: starts an instance on DIR (a fresh one if DIR is new) and sets
# CONN. redrive listens on PORT (default: a free one).
start_system() {
  local sys="$1" dir="$2" port="${3:-0}"
  mkdir -p "$dir"
  STARTED+=("$sys $dir")
  case "$sys" in
    redrive)
      rm -f "$dir/port"
      "$REDRIVE" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" --port-file "$dir/port" \
        >>"$dir/server.log" 2>&1 &
      REDRIVE_PID=$!
      local i
      for i in $(seq 1 600); do
        [ -s "$dir/port" ] && [ -s "$dir/data/operator.token" ] && break
        kill -0 "$REDRIVE_PID" 2>/dev/null || break
        sleep 0.1
      done
      [ -s "$dir/port" ] || { tail -20 "$dir/server.log" >&2; die "redrive did not start"; }
      CONN=(--url "http://127.0.0.1:$(cat "$dir/port")" --token-file "$dir/data/operator.token"
        --tenant bench)
      ;;
    # The start scripts' answers go through a file, not $(...): a process they leave running
    # may hold on to their standard output, and $(...) would wait for it to close.
    rabbitmq-*)
      "$PEERS/rabbitmq.sh" start "$dir" >"$dir.started" || die "RabbitMQ did not start (logs: $dir/log)"
      CONN=(--amqp-port "$(tail -1 "$dir.started")")
      ;;
    postgres-queue)
      "$PEERS/postgres.sh" start "$dir" >"$dir.started" ||
        die "PostgreSQL did not start (log: $dir/postgres.log)"
      CONN=(--pg-conninfo "$(tail -1 "$dir.started")")
      ;;
  esac
}

stop_system() {  # stop_system SYSTEM DIR: a clean stop; returns once it is down
  local sys="$1" dir="$2"
  case "$sys" in
    redrive)
      if [ -n "$REDRIVE_PID" ] && kill -0 "$REDRIVE_PID" 2>/dev/null; then
        kill -TERM "$REDRIVE_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 600); do kill -0 "$REDRIVE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$REDRIVE_PID" 2>/dev/null || true
        wait "$REDRIVE_PID" 2>/dev/null || true
      fi
      REDRIVE_PID=""
      ;;
    rabbitmq-*) "$PEERS/rabbitmq.sh" stop "$dir" ;;
    postgres-queue) "$PEERS/postgres.sh" stop "$dir" ;;
  esac
  forget "$sys" "$dir"
}

system_pids() {  # system_pids SYSTEM DIR: every process of the running instance, one a line
  case "$1" in
    redrive) echo "$REDRIVE_PID" ;;
    rabbitmq-*) "$PEERS/rabbitmq.sh" pids "$2" 2>/dev/null ;;
    postgres-queue) "$PEERS/postgres.sh" pids "$2" 2>/dev/null ;;
  esac
}

# Memory of the running instance in KiB, as compare.sh measures it for each system:
#   redrive           VmRSS of the server (one process)
#   rabbitmq-*        the sum of VmRSS of beam.smp, its children and the node's epmd
#   postgres-queue    the sum of PSS of the postmaster and every child: RSS would count the
#                     shared buffers once per backend that touched them
memory_kib() {  # memory_kib SYSTEM PID...
  local sys="$1" pid total=0 v
  shift
  for pid in "$@"; do
    if [ "$sys" = postgres-queue ]; then
      v="$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || true)"
    else
      v="$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)"
    fi
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
MEMORY_MEASURE_redrive="peak RSS of the server process (VmHWM)"
MEMORY_MEASURE_rabbitmq="peak of the summed RSS of beam.smp, its children and epmd (sampled every 0.5 s; at least beam.smp's VmHWM)"
MEMORY_MEASURE_postgres="peak of the summed PSS of the postmaster and all its children (sampled every 0.5 s)"

# start_sampler SYSTEM DIR FILE: the instance's memory (memory_kib) every 0.5 s into FILE; the
# list of its processes is refreshed every 2 s (asking the peer scripts costs CPU too).
start_sampler() {
  (
    i=0
    pids=""
    while :; do
      [ $((i % 4)) = 0 ] && pids="$(system_pids "$1" "$2" | tr '\n' ' ')"
      # shellcheck disable=SC2086
      memory_kib "$1" $pids
      i=$((i + 1))
      sleep 0.5
    done
  ) >"$3" 2>/dev/null &
  SAMPLER_PID=$!
}
stop_sampler() {
  if [ -n "$SAMPLER_PID" ]; then
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
  fi
  SAMPLER_PID=""
}

# CPU ticks (user + system, with reaped children: PostgreSQL's backends exit when the load
# generator disconnects) of the instance's main processes.
cpu_ticks() {
  local pid total=0 t
  for pid in $(system_pids "$1" "$2" | head -1); do
    t="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}')"
    total=$((total + ${t:-0}))
  done
  echo "$total"
}
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
CLK_TCK="$(getconf CLK_TCK)"

# ------------------------------------------------------------------ results

RESULTS="$TMP/results.tsv"  # scenario system value unit extra-json-members
: >"$RESULTS"
FAILED=()
NOISY=()
record() {  # record SCENARIO SYSTEM VALUE UNIT [EXTRA JSON MEMBERS]
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$RESULTS"
}
value_of() {  # value_of SCENARIO SYSTEM: the recorded value, or nothing
  awk -F'\t' -v s="$1" -v y="$2" '$1 == s && $2 == y {print $3}' "$RESULTS" | tail -1
}
declare -A DESCRIBE=()

# run_loadgen SYSTEM DIR NAME OUT ARGS...: one load generator run against the running system.
# Returns non-zero (and records a failure) when it could not account for every message.
run_loadgen() {
  local sys="$1" dir="$2" name="$3" out="$4"
  shift 4
  local create=()
  [ "$sys" = redrive ] && create=(--create)
  local c0 m0 t0 c1 m1 t1 rc=0
  c0="$(cpu_ticks "$sys" "$dir")"
  m0="$(machine_ticks)"
  t0="$(date +%s.%N)"
  "$LOADGEN" --system "$sys" "${CONN[@]}" "${create[@]}" --body-size "$BODY_SIZE" --json "$@" \
    >"$out" 2>"$out.err" || rc=$?
  sleep 0.2  # let the postmaster reap the backends that just closed
  c1="$(cpu_ticks "$sys" "$dir")"
  m1="$(machine_ticks)"
  t1="$(date +%s.%N)"
  if [ ! -s "$out" ]; then
    log "   $sys $name: no result (exit $rc): $(tail -3 "$out.err" | tr '\n' ' ')"
    FAILED+=("$sys $name")
    return 1
  fi
  local wall sys_pct lg_pct others_pct
  wall="$(calc "$t1 - $t0")"
  sys_pct="$(calc "($c1 - $c0) / $CLK_TCK / $wall * 100")"
  lg_pct="$(calc "$(jget "$out" loadgenCpuSeconds) / $wall * 100")"
  others_pct="$(calc "(($m1 - $m0) - ($c1 - $c0)) / $CLK_TCK / $wall * 100 - $lg_pct")"
  [ "$(calc "$others_pct < 0")" = 1 ] && others_pct=0
  printf '   %s: %.0f msg/s%s; CPU %% of one core: system %.0f, loadgen %.0f, others %.0f\n' \
    "$name" "$(jget "$out" messagesPerSecond)" \
    "$([ -n "$(jget "$out" p99Ms)" ] && printf ', latency p50 %.1f / p99 %.1f / p99.9 %.1f ms' \
      "$(jget "$out" p50Ms)" "$(jget "$out" p99Ms)" "$(jget "$out" p999Ms)")" \
    "$sys_pct" "$lg_pct" "$others_pct" >&2
  log "   $(jget "$out" verdict)"
  [ -z "$(jget "$out" firstError)" ] || log "   first error: $(jget "$out" firstError)"
  if [ "$(calc "$others_pct > 20")" = 1 ]; then
    NOISY+=("$sys $name: other processes used $(printf '%.0f' "$others_pct")% of a core")
  fi
  # How the system is configured, from the run that exercises the most of it.
  local d
  d="$(jget "$out" describe)"
  if [ -n "$d" ] && { [ -z "${DESCRIBE[$sys]:-}" ] || [ "$name" = dead-letter ]; }; then
    DESCRIBE[$sys]="$d"
  fi
  if [ "$rc" -ne 0 ] || [ "$(jget "$out" accounted)" != true ]; then
    log "   $sys $name: NOT every message was accounted for (exit $rc)"
    FAILED+=("$sys $name")
    return 1
  fi
  printf '%.0f\n' "$sys_pct" >"$out.cpu"
  return 0
}

# ------------------------------------------------------------------ the timed scenarios

timed_scenarios() {  # timed_scenarios SYSTEM
  local sys="$1" dir="$TMP/$1-timed" out
  local any=0 s
  for s in publish end-to-end dead-letter latency-p99; do has "$s" "${SCENARIOS[@]}" && any=1; done
  [ "$any" = 1 ] || return 0
  log "== $sys: timed scenarios, ${SECONDS_EACH} s each"
  start_system "$sys" "$dir"
  # publish goes last: the backlog it leaves must not slow the other scenarios down.
  if has end-to-end "${SCENARIOS[@]}"; then
    out="$TMP/$sys.end-to-end.json"
    if run_loadgen "$sys" "$dir" end-to-end "$out" --queue end-to-end --scenario end-to-end \
      --seconds "$SECONDS_EACH" --producers "$E2E_PRODUCERS" --consumers "$E2E_CONSUMERS" \
      --batch "$E2E_BATCH" --receive-batch "$E2E_RECEIVE_BATCH" --max-backlog "$E2E_MAX_BACKLOG"; then
      record end-to-end "$sys" "$(jget "$out" messagesPerSecond)" msg/s \
        "\"p50Ms\": $(jget "$out" p50Ms), \"p99Ms\": $(jget "$out" p99Ms), \"systemCpuPercent\": $(cat "$out.cpu")"
    fi
  fi
  if has dead-letter "${SCENARIOS[@]}"; then
    out="$TMP/$sys.dead-letter.json"
    if run_loadgen "$sys" "$dir" dead-letter "$out" --queue dead-letter --scenario dead-letter \
      --seconds "$SECONDS_EACH" --producers "$DL_PRODUCERS" --consumers "$DL_CONSUMERS" \
      --batch "$DL_BATCH" --receive-batch "$DL_RECEIVE_BATCH" --max-backlog "$DL_MAX_BACKLOG" \
      --fail-share "$DL_FAIL_SHARE" --max-deliveries 3; then
      record dead-letter "$sys" "$(jget "$out" messagesPerSecond)" msg/s \
        "\"deadLettered\": $(jget "$out" deadLettered), \"systemCpuPercent\": $(cat "$out.cpu")"
    fi
  fi
  if has latency-p99 "${SCENARIOS[@]}"; then
    out="$TMP/$sys.latency.json"
    if run_loadgen "$sys" "$dir" latency "$out" --queue latency --scenario latency \
      --seconds "$SECONDS_EACH" --rate "$LAT_RATE" --producers "$LAT_PRODUCERS" \
      --consumers "$LAT_CONSUMERS" --batch "$LAT_BATCH" --receive-batch "$LAT_RECEIVE_BATCH"; then
      record latency-p99 "$sys" "$(jget "$out" p99Ms)" ms \
        "\"p50Ms\": $(jget "$out" p50Ms), \"p999Ms\": $(jget "$out" p999Ms), \"targetRate\": $LAT_RATE, \"publishRate\": $(jget "$out" publishRate)"
    fi
  fi
  if has publish "${SCENARIOS[@]}"; then
    out="$TMP/$sys.publish.json"
    if run_loadgen "$sys" "$dir" publish "$out" --queue publish --scenario publish \
      --seconds "$SECONDS_EACH" --producers "$PUB_PRODUCERS" --batch "$PUB_BATCH"; then
      record publish "$sys" "$(jget "$out" messagesPerSecond)" msg/s \
        "\"systemCpuPercent\": $(cat "$out.cpu")"
    fi
  fi
  stop_system "$sys" "$dir"
}

# ------------------------------------------------------------------ rss-1m and restart-1m

backlog_scenarios() {  # backlog_scenarios SYSTEM
  local sys="$1" dir="$TMP/$1-backlog"
  has rss-1m "${SCENARIOS[@]}" || has restart-1m "${SCENARIOS[@]}" || return 0
  log "== $sys: $N_1M messages queued (rss-1m, restart-1m)"
  start_system "$sys" "$dir"
  local mem="$TMP/$sys.memory"
  start_sampler "$sys" "$dir" "$mem"
  local out="$TMP/$sys.backlog.json"
  if ! run_loadgen "$sys" "$dir" "publish $N_1M" "$out" --queue backlog-1m --scenario publish \
    --messages "$N_1M" --producers "$PUB_PRODUCERS" --batch "$PUB_BATCH" --timeout 3600; then
    stop_sampler
    stop_system "$sys" "$dir"
    return 0
  fi
  sleep 3  # what the system holds once the publishing is over
  stop_sampler
  local peak queued hwm measure
  peak="$(sort -n "$mem" | tail -1)"
  queued="$(tail -1 "$mem")"
  case "$sys" in
    redrive)
      hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$REDRIVE_PID/status")"
      peak="$hwm"
      measure="$MEMORY_MEASURE_redrive"
      ;;
    rabbitmq-*)
      hwm="$(awk '/^VmHWM:/ {print $2}' "/proc/$(system_pids "$sys" "$dir" | head -1)/status")"
      [ "${hwm:-0}" -gt "${peak:-0}" ] && peak="$hwm"
      measure="$MEMORY_MEASURE_rabbitmq"
      ;;
    postgres-queue) measure="$MEMORY_MEASURE_postgres" ;;
  esac
  log "   memory: peak $((peak / 1024)) MiB, $((queued / 1024)) MiB with $N_1M queued ($measure)"
  if has rss-1m "${SCENARIOS[@]}"; then
    record rss-1m "$sys" "$(calc "int($peak / 1024 + 0.5)")" MiB \
      "\"queuedMiB\": $(calc "int($queued / 1024 + 0.5)"), \"messages\": $N_1M, \"publishMessagesPerSecond\": $(jget "$out" messagesPerSecond), \"measure\": \"$measure\""
  fi
  if has restart-1m "${SCENARIOS[@]}"; then
    local t0 t1 port="" max_deliveries=0 probe_out="$TMP/$sys.restart.json" start_pid
    t0="$(date +%s.%N)"
    stop_system "$sys" "$dir"
    t1="$(date +%s.%N)"
    log "   clean stop: $(printf '%.1f' "$(calc "$t1 - $t0")") s"
    [ "$sys" = redrive ] && port="$(cat "$dir/port")"
    # The probe starts with the start command and retries until it receives a message.
    # --listen-port: the probe connects only once the port listens (see bench/probe.cc).
    local probe_conn=()
    case "$sys" in
      redrive) probe_conn=(--url "http://127.0.0.1:$port" --token-file "$dir/data/operator.token"
        --tenant bench --listen-port "$port") ;;
      rabbitmq-*) probe_conn=(--amqp-port "$(cat "$dir/amqp.port")"
        --listen-port "$(cat "$dir/amqp.port")") ;;
      postgres-queue) probe_conn=(--pg-conninfo "$("$PEERS/postgres.sh" conninfo "$dir")"
        --listen-port "$(cat "$dir/port")") ;;
    esac
    t0="$(date +%s.%N)"
    STARTED+=("$sys $dir")
    case "$sys" in
      redrive)
        "$REDRIVE" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" \
          --port-file "$dir/port" >>"$dir/server.log" 2>&1 &
        REDRIVE_PID=$!
        start_pid=""
        ;;
      rabbitmq-*) "$PEERS/rabbitmq.sh" start "$dir" >/dev/null & start_pid=$! ;;
      postgres-queue) "$PEERS/postgres.sh" start "$dir" >/dev/null & start_pid=$! ;;
    esac
    local rc=0
    "$PROBE" --system "$sys" "${probe_conn[@]}" --queue backlog-1m \
      --max-deliveries "$max_deliveries" --timeout 600 >"$probe_out" 2>"$probe_out.err" || rc=$?
    t1="$(date +%s.%N)"
    if [ -n "$start_pid" ]; then wait "$start_pid" || rc=1; fi
    if [ "$rc" -ne 0 ]; then
      log "   restart: no message received: $(tail -2 "$probe_out.err" | tr '\n' ' ')"
      FAILED+=("$sys restart-1m")
    else
      local seconds ready
      seconds="$(calc "$t1 - $t0")"
      ready="$(jget "$probe_out" ready)"
      log "   restart: first message after $(printf '%.2f' "$seconds") s; $ready ready after it"
      # The probe holds one message; RabbitMQ's ready count leaves it out, redrive's and
      # PostgreSQL's count it as in flight.
      if [ "$(calc "$ready + $(jget "$probe_out" inFlight) < $N_1M - 1")" = 1 ]; then
        log "   restart: messages are missing after the restart (expected $N_1M)"
        FAILED+=("$sys restart-1m (messages missing)")
      fi
      record restart-1m "$sys" "$(calc "int($seconds * 1000 + 0.5) / 1000")" s \
        "\"messages\": $N_1M, \"readyAfter\": $ready"
    fi
  fi
  stop_system "$sys" "$dir"
}

# ------------------------------------------------------------------ redrive-1m

redrive_scenario() {  # redrive_scenario SYSTEM
  local sys="$1" dir="$TMP/$1-redrive"
  has redrive-1m "${SCENARIOS[@]}" || return 0
  log "== $sys: redrive-1m ($N_1M dead letters back to their queue)"
  local t0 t1 seconds="" fill_out="$TMP/$sys.fill.log"
  # Set-up: N dead letters of queue redrive-1m (not measured).
  if [ "$sys" = redrive ]; then
    "$FILL" --system redrive --data-dir "$dir/data" --queue redrive-1m \
      --dead-letters "$N_1M" --max-deliveries 3 >"$fill_out" 2>&1 || {
      log "   set-up failed: $(tail -2 "$fill_out" | tr '\n' ' ')"
      FAILED+=("$sys redrive-1m (set-up)")
      return 0
    }
    start_system "$sys" "$dir"
  else
    start_system "$sys" "$dir"
    "$FILL" --system "$sys" "${CONN[@]}" --queue redrive-1m --dead-letters "$N_1M" \
      --max-deliveries 3 >"$fill_out" 2>&1 || {
      log "   set-up failed: $(tail -2 "$fill_out" | tr '\n' ' ')"
      FAILED+=("$sys redrive-1m (set-up)")
      stop_system "$sys" "$dir"
      return 0
    }
  fi
  log "   set-up: $(tail -1 "$fill_out")"

  local how rc=0
  case "$sys" in
    redrive)
      how="a redrive job (POST /v1/tenants/bench/redrive-jobs, rate 0), polled every 0.1 s until completed"
      local url token job="$TMP/job.json" code id state=""
      url="${CONN[1]}/v1/tenants/bench/redrive-jobs"
      token="$(cat "$dir/data/operator.token")"
      t0="$(date +%s.%N)"
      code="$(curl -sS -o "$job" -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{"deadLetterQueue": "dead-letters"}' "$url")"
      if [ "$code" != 201 ]; then
        log "   POST redrive-jobs answered $code: $(cat "$job")"
        rc=1
      else
        id="$(jget "$job" id)"
        local deadline=$((SECONDS + 3600))
        while [ "$SECONDS" -lt "$deadline" ]; do
          curl -sS -o "$job" -H "Authorization: Bearer $token" "$url/$id" || true
          state="$(jget "$job" state)"
          case "$state" in completed | failed | cancelled) break ;; esac
          sleep 0.1
        done
        t1="$(date +%s.%N)"
        if [ "$state" != completed ] || [ "$(jget "$job" moved)" != "$N_1M" ]; then
          log "   the job ended $state, moved $(jget "$job" moved) of $N_1M: $(cat "$job")"
          rc=1
        fi
      fi
      ;;
    rabbitmq-*)
      how="a dynamic shovel from redrive-1m.dlq to redrive-1m (bench/peers/rabbitmq.sh shovel-move: ack-mode on-confirm, timed inside the node)"
      local move_out="$TMP/$sys.shovel"
      if "$PEERS/rabbitmq.sh" shovel-move "$dir" redrive-1m.dlq redrive-1m >"$move_out" \
        2>"$move_out.err"; then
        log "   $(tail -1 "$move_out.err")"
        t0=0
        t1="$(tail -1 "$move_out")"
      else
        log "   shovel-move failed: $(tail -2 "$move_out.err" | tr '\n' ' ')"
        rc=1
      fi
      ;;
    postgres-queue)
      how="one statement in one transaction: WITH moved AS (DELETE FROM \"redrive-1m_dead\" RETURNING ...) INSERT INTO \"redrive-1m\" SELECT ... FROM moved"
      local conninfo="${CONN[1]}"
      t0="$(date +%s.%N)"
      psql "$conninfo" -X -q -v ON_ERROR_STOP=1 -c '
        WITH moved AS (DELETE FROM "redrive-1m_dead" RETURNING id, body, n, sent_us, enqueued_at)
        INSERT INTO "redrive-1m" (id, body, n, sent_us, deliveries, visible_at, enqueued_at)
        SELECT id, body, n, sent_us, 0, now(), enqueued_at FROM moved' >"$TMP/psql.out" 2>&1 ||
        { log "   $(cat "$TMP/psql.out")"; rc=1; }
      t1="$(date +%s.%N)"
      ;;
  esac
  if [ "$rc" = 0 ]; then
    # Every dead letter must be back in the queue.
    local depth="$TMP/$sys.redrive-depth.json"
    "$PROBE" --system "$sys" "${CONN[@]}" --queue redrive-1m --max-deliveries 3 --depth-only \
      --timeout 60 >"$depth" 2>&1 || true
    if [ "$(jget "$depth" ready)" != "$N_1M" ] || [ "$(jget "$depth" deadLettered)" != 0 ]; then
      log "   after the move: $(cat "$depth") (expected $N_1M ready, 0 dead-lettered)"
      rc=1
    fi
  fi
  if [ "$rc" = 0 ]; then
    seconds="$(calc "$t1 - $t0")"
    log "   moved $N_1M in $(printf '%.2f' "$seconds") s with $how"
    record redrive-1m "$sys" "$(calc "int($seconds * 1000 + 0.5) / 1000")" s \
      "\"messages\": $N_1M, \"messagesPerSecond\": $(calc "int($N_1M / $seconds)"), \"how\": \"${how//\"/\\\"}\""
  else
    FAILED+=("$sys redrive-1m")
  fi
  stop_system "$sys" "$dir"
}

# ------------------------------------------------------------------ the run

START_TIME="$(date +%s)"
log "bench/compare.sh: systems: ${SYSTEMS[*]}; scenarios: ${SCENARIOS[*]}"
log "  ${SECONDS_EACH} s per timed scenario, $N_1M messages for the 1m scenarios; data in $TMP ($FS_TYPE)"
for sys in "${SYSTEMS[@]}"; do
  timed_scenarios "$sys"
  backlog_scenarios "$sys"
  redrive_scenario "$sys"
done
ELAPSED=$(($(date +%s) - START_TIME))

# ------------------------------------------------------------------ the report

higher_is_better() { case "$1" in publish | end-to-end | dead-letter) return 0 ;; *) return 1 ;; esac; }
unit_of() {
  case "$1" in
    publish | end-to-end | dead-letter) echo msg/s ;;
    latency-p99) echo ms ;;
    rss-1m) echo MiB ;;
    *) echo s ;;
  esac
}
fmt_value() {  # fmt_value SCENARIO VALUE
  [ -n "$2" ] || { echo "-"; return; }
  case "$1" in
    publish | end-to-end | dead-letter | rss-1m)
      awk -v v="$2" 'BEGIN {v = sprintf("%.0f", v); s = ""; while (length(v) > 3) {
        s = "," substr(v, length(v) - 2) s; v = substr(v, 1, length(v) - 3)}; print v s}' ;;
    *) printf '%.2f' "$2" ;;
  esac
}
# How many times better redrive is than PEER at SCENARIO (above 1: better, below 1: worse), or
# nothing when either was not measured.
ratio() {  # ratio SCENARIO PEER
  local r p
  r="$(value_of "$1" redrive)"
  p="$(value_of "$1" "$2")"
  [ -n "$r" ] && [ -n "$p" ] || return 0
  if higher_is_better "$1"; then
    [ "$(calc "$p > 0")" = 1 ] && calc "$r / $p"
  else
    [ "$(calc "$r > 0")" = 1 ] && calc "$p / $r"
  fi
  return 0
}
fmt_ratio() {
  [ -n "$1" ] || { echo "-"; return; }
  if [ "$(calc "$1 >= 10")" = 1 ]; then printf '%.0fx' "$1"; else printf '%.2gx' "$1"; fi
}

PEERS_RUN=()
for sys in "${SYSTEMS[@]}"; do [ "$sys" = redrive ] || PEERS_RUN+=("$sys"); done
has redrive "${SYSTEMS[@]}" && HAVE_REDRIVE=1 || HAVE_REDRIVE=0

report() {
  echo
  echo "redrive side by side  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM  data on $FS_TYPE  ${SECONDS_EACH} s per timed scenario  ${BODY_SIZE}-byte bodies  run took $((ELAPSED / 60)) min"
  echo
  local header sys sc
  header="$(printf '%-12s %-6s' scenario unit)"
  for sys in "${SYSTEMS[@]}"; do header+="$(printf ' %16s' "$sys")"; done
  if [ "$HAVE_REDRIVE" = 1 ]; then
    for sys in "${PEERS_RUN[@]}"; do header+="$(printf ' %16s' "vs $sys")"; done
  fi
  echo "$header"
  for sc in $ALL_SCENARIOS; do
    has "$sc" "${SCENARIOS[@]}" || continue
    local line
    line="$(printf '%-12s %-6s' "$sc" "$(unit_of "$sc")")"
    for sys in "${SYSTEMS[@]}"; do
      line+="$(printf ' %16s' "$(fmt_value "$sc" "$(value_of "$sc" "$sys")")")"
    done
    if [ "$HAVE_REDRIVE" = 1 ]; then
      for sys in "${PEERS_RUN[@]}"; do
        line+="$(printf ' %16s' "$(fmt_ratio "$(ratio "$sc" "$sys")")")"
      done
    fi
    echo "$line"
  done
  echo
  if [ "$HAVE_REDRIVE" = 1 ] && [ ${#PEERS_RUN[@]} -gt 0 ]; then
    echo "vs <peer>: how many times better redrive is (msg/s: redrive / peer, higher is better;"
    echo "ms, MiB, s: peer / redrive, lower is better); below 1x redrive is worse."
  fi
  if has latency-p99 "${SCENARIOS[@]}"; then
    echo "latency at $LAT_RATE msg/s, p50 / p99 / p99.9 ms (publish rate reached):"
    for sys in "${SYSTEMS[@]}"; do
      local f="$TMP/$sys.latency.json"
      [ -s "$f" ] || continue
      printf '  %-17s %.1f / %.1f / %.1f  (%.0f msg/s)\n' "$sys" "$(jget "$f" p50Ms)" \
        "$(jget "$f" p99Ms)" "$(jget "$f" p999Ms)" "$(jget "$f" publishRate)"
    done
  fi
  echo
  echo "parameters, the same for every system: publish ${PUB_PRODUCERS} producers, batch ${PUB_BATCH};" \
    "end-to-end ${E2E_PRODUCERS} producers, ${E2E_CONSUMERS} consumers, batch ${E2E_BATCH}, receive ${E2E_RECEIVE_BATCH}, backlog ${E2E_MAX_BACKLOG};" \
    "dead-letter ${DL_PRODUCERS} producers, ${DL_CONSUMERS} consumers, batch ${DL_BATCH}, receive ${DL_RECEIVE_BATCH}, backlog ${DL_MAX_BACKLOG}, ${DL_FAIL_SHARE} failing, 3 deliveries;" \
    "latency ${LAT_RATE} msg/s, ${LAT_PRODUCERS} producers, ${LAT_CONSUMERS} consumers, batch ${LAT_BATCH}, receive ${LAT_RECEIVE_BATCH}"
  echo
  echo "how each system is configured (every publish is acknowledged only once it is durable):"
  for sys in "${SYSTEMS[@]}"; do
    case "$sys" in
      redrive) echo "  redrive           ${DESCRIBE[$sys]:-redrive serve, default configuration: SQLite WAL, synchronous=FULL, group commit; a 2xx only after fsync}" ;;
      *) printf '  %-17s %s\n' "$sys" "${DESCRIBE[$sys]:-(no run reported its configuration)}" ;;
    esac
  done
  if has rss-1m "${SCENARIOS[@]}"; then
    echo "how rss-1m measures memory:"
    for sys in "${SYSTEMS[@]}"; do
      case "$sys" in
        redrive) printf '  %-17s %s\n' "$sys" "$MEMORY_MEASURE_redrive" ;;
        rabbitmq-*) printf '  %-17s %s\n' "$sys" "$MEMORY_MEASURE_rabbitmq" ;;
        postgres-queue) printf '  %-17s %s\n' "$sys" "$MEMORY_MEASURE_postgres" ;;
      esac
    done
  fi
  if has redrive-1m "${SCENARIOS[@]}"; then
    echo "redrive-1m, how each moves its dead letters back:"
    for sys in "${SYSTEMS[@]}"; do
      local how
      how="$(awk -F'\t' -v y="$sys" '$1 == "redrive-1m" && $2 == y {print $5}' "$RESULTS" |
        sed -n 's/.*"how": "\(.*\)"$/\1/p' | sed 's/\\"/"/g')"
      [ -z "$how" ] || printf '  %-17s %s\n' "$sys" "$how"
    done
  fi
  echo
  targets
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

verdict() {  # verdict OK-EXPRESSION TEXT-WITH-FIGURE: "met" or "not met" (1/0 from calc)
  if [ -z "$1" ]; then echo "not measured"; elif [ "$1" = 1 ]; then echo "met ($2)"; else echo "NOT met ($2)"; fi
}
target_ratio() {  # target_ratio SCENARIO PEER OP LIMIT
  local r
  r="$(ratio "$1" "$2")"
  [ -n "$r" ] || { echo "not measured"; return; }
  verdict "$(calc "$r $3 $4")" "$(fmt_ratio "$r")"
}
targets() {
  [ "$HAVE_REDRIVE" = 1 ] || return 0
  local any=0 sc
  for sc in end-to-end dead-letter latency-p99 rss-1m restart-1m; do
    has "$sc" "${SCENARIOS[@]}" && any=1
  done
  [ "$any" = 1 ] || return 0
  echo "targets (issue 4; ratios from this run):"
  for sc in end-to-end dead-letter; do
    has "$sc" "${SCENARIOS[@]}" || continue
    echo "  $sc: >= 3x rabbitmq-classic: $(target_ratio "$sc" rabbitmq-classic '>=' 3);" \
      "above rabbitmq-quorum: $(target_ratio "$sc" rabbitmq-quorum '>' 1);" \
      ">= 5x postgres-queue: $(target_ratio "$sc" postgres-queue '>=' 5)"
  done
  if has latency-p99 "${SCENARIOS[@]}"; then
    local p
    p="$(value_of latency-p99 redrive)"
    echo "  latency-p99 at $LAT_RATE msg/s <= 10 ms: $(verdict "$([ -n "$p" ] && calc "$p <= 10")" "${p} ms")"
  fi
  if has rss-1m "${SCENARIOS[@]}"; then
    echo "  rss-1m <= 1/5 of RabbitMQ's: classic: $(target_ratio rss-1m rabbitmq-classic '>=' 5);" \
      "quorum: $(target_ratio rss-1m rabbitmq-quorum '>=' 5)"
  fi
  if has restart-1m "${SCENARIOS[@]}"; then
    local t
    t="$(value_of restart-1m redrive)"
    echo "  restart-1m ready in under 2 s: $(verdict "$([ -n "$t" ] && calc "$t < 2")" "${t} s")"
  fi
}

write_json() {  # the results as a JSON list of {scenario, system, value, unit, ...}
  awk -F'\t' 'BEGIN {print "["}
    {printf "%s  {\"scenario\": \"%s\", \"system\": \"%s\", \"value\": %s, \"unit\": \"%s\"%s}",
       (NR > 1 ? ",\n" : ""), $1, $2, $3, $4, ($5 != "" ? ", " $5 : "")}
    END {print "\n]"}' "$RESULTS"
}

write_chart_data() {
  local sys sc
  {
    printf 'scenario'
    for sys in "${SYSTEMS[@]}"; do printf ' %s' "$sys"; done
    echo
    for sc in publish end-to-end dead-letter; do
      printf '%s' "$sc"
      for sys in "${SYSTEMS[@]}"; do
        local v
        v="$(value_of "$sc" "$sys")"
        printf ' %s' "${v:--}"
      done
      echo
    done
  } >"$OUT/throughput.dat"
  {
    printf 'percentile'
    for sys in "${SYSTEMS[@]}"; do printf ' %s' "$sys"; done
    echo
    local key label
    for key in p50Ms p99Ms p999Ms; do
      case "$key" in p50Ms) label=p50 ;; p99Ms) label=p99 ;; *) label=p99.9 ;; esac
      printf '%s' "$label"
      for sys in "${SYSTEMS[@]}"; do
        local f="$TMP/$sys.latency.json" v=""
        if [ -s "$f" ] && [ -n "$(value_of latency-p99 "$sys")" ]; then v="$(jget "$f" "$key")"; fi
        printf ' %s' "${v:--}"
      done
      echo
    done
  } >"$OUT/latency.dat"
}

# The load generator's answers and errors, the set-up logs and the servers' logs, for a look
# afterwards (the data directories go with $TMP).
mkdir -p "$OUT/logs"
find "$TMP" -maxdepth 1 -type f -exec cp {} "$OUT/logs/" \;
for f in "$TMP"/*/server.log "$TMP"/*/postgres.log; do
  [ -f "$f" ] && cp "$f" "$OUT/logs/$(basename "$(dirname "$f")").$(basename "$f")"
done
for d in "$TMP"/rabbitmq-*/log; do
  [ -d "$d" ] && cp -r "$d" "$OUT/logs/$(basename "$(dirname "$d")").log"
done

report | tee "$OUT/results.txt"
write_json >"$OUT/results.json"
CHART=""
PANELS=0  # 1: throughput, 2: latency, 3: both
awk -F'\t' '$1 ~ /^(publish|end-to-end|dead-letter)$/ {f = 1} END {exit !f}' "$RESULTS" &&
  PANELS=$((PANELS + 1))
awk -F'\t' '$1 == "latency-p99" {f = 1} END {exit !f}' "$RESULTS" && PANELS=$((PANELS + 2))
if [ "$PANELS" = 0 ]; then
  log "no throughput or latency figures: no chart"
elif command -v gnuplot >/dev/null; then
  write_chart_data
  if gnuplot -e "dir='$OUT'; out='$OUT/chart.png'; nsys=${#SYSTEMS[@]}; rate='$LAT_RATE'; panels=$PANELS" \
    "$ROOT/bench/chart.gp" 2>"$OUT/gnuplot.log"; then
    CHART="$OUT/chart.png"
  else
    log "gnuplot failed: $(tail -3 "$OUT/gnuplot.log")"
  fi
else
  log "gnuplot is missing (scripts/deps.sh --bench installs gnuplot-nox): no chart"
fi
echo
echo "results: $OUT/results.txt"
echo "json:    $OUT/results.json"
[ -z "$CHART" ] || echo "chart:   $CHART"
[ ${#FAILED[@]} -eq 0 ]
