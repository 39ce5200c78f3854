#!/usr/bin/env bash
# Runs redrive's benchmark: starts a fresh server on a temporary data directory and a free
# port, runs the load generator's scenarios one after another, prints one summary table (with
# the server's CPU split between its SQLite writer thread and everything else), the server's
# peak RSS, and cleans up. Builds nothing: build first with
#   cmake --build build/release -j2 --target redrive redrive_loadgen
#
# Environment (all optional):
#   BENCH_SECONDS   seconds each scenario publishes for (default 15; the whole run takes about
#                   4 x BENCH_SECONDS plus ~15 s)
#   BUILD           build directory (default build/release)
#   BENCH_TMPDIR    where the temporary data directory goes (default $TMPDIR or /tmp). Put it on
#                   the disk you want to measure: every publish waits for an fsync.
#   BODY_SIZE       message body bytes (default 1024)
#   BENCH_WAIT_QUIET  on a shared machine: before each scenario, wait up to this many seconds
#                   for the machine to be idle (under 10% busy over a second); default 0
#   PUB_PRODUCERS PUB_BATCH                          publish scenario
#   E2E_PRODUCERS E2E_CONSUMERS E2E_BATCH E2E_RECEIVE_BATCH E2E_MAX_BACKLOG   end-to-end
#   DL_PRODUCERS DL_CONSUMERS DL_BATCH DL_RECEIVE_BATCH DL_MAX_BACKLOG DL_FAIL_SHARE   dead-letter
#   LAT_RATE LAT_PRODUCERS LAT_CONSUMERS LAT_BATCH LAT_RECEIVE_BATCH    latency scenario
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${BUILD:-$ROOT/build/release}"
REDRIVE="$BUILD/src/cli/redrive"
LOADGEN="$BUILD/bench/redrive_loadgen"
SECONDS_EACH="${BENCH_SECONDS:-15}"
BODY_SIZE="${BODY_SIZE:-1024}"

# Defaults are the best settings measured on a 2-core machine (docs/benchmarks.md).
PUB_PRODUCERS="${PUB_PRODUCERS:-4}"
PUB_BATCH="${PUB_BATCH:-1000}"
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
LAT_RATE="${LAT_RATE:-10000}"
LAT_PRODUCERS="${LAT_PRODUCERS:-8}"
LAT_CONSUMERS="${LAT_CONSUMERS:-4}"
LAT_BATCH="${LAT_BATCH:-10}"
LAT_RECEIVE_BATCH="${LAT_RECEIVE_BATCH:-100}"

for bin in "$REDRIVE" "$LOADGEN"; do
  if [ ! -x "$bin" ]; then
    echo "bench/run.sh: $bin is missing; build it first:" >&2
    echo "  cmake --build $BUILD -j2 --target redrive redrive_loadgen" >&2
    exit 2
  fi
done

TMP="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/redrive-bench.XXXXXX")"
SERVER_PID=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fs_type="$(stat -f -c %T "$TMP")"
if [ "$fs_type" = "tmpfs" ]; then
  echo "warning: $TMP is on tmpfs: fsync is free there, so these figures overstate durable throughput" >&2
fi

# ---- server
"$REDRIVE" serve --data-dir "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  [ -s "$TMP/port" ] && [ -s "$TMP/data/operator.token" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$TMP/port" ] || { echo "server did not start" >&2; cat "$TMP/server.log" >&2; exit 1; }
PORT="$(cat "$TMP/port")"
TOKEN_FILE="$TMP/data/operator.token"
URL="http://127.0.0.1:$PORT"
TENANT=bench

api() {  # api METHOD PATH [JSON]
  local args=(-sS -o "$TMP/api.out" -w '%{http_code}' -X "$1"
    -H "Authorization: Bearer $(cat "$TOKEN_FILE")" -H 'Content-Type: application/json')
  [ $# -ge 3 ] && args+=(-d "$3")
  local code
  code="$(curl "${args[@]}" "$URL$2")"
  if [ "${code:0:1}" != 2 ]; then
    echo "bench/run.sh: $1 $2 answered $code: $(cat "$TMP/api.out")" >&2
    exit 1
  fi
}

api POST /v1/tenants "{\"name\":\"$TENANT\"}"
api POST /v1/tenants/$TENANT/queues '{"name":"publish"}'
api POST /v1/tenants/$TENANT/queues '{"name":"end-to-end"}'
api POST /v1/tenants/$TENANT/queues \
  '{"name":"dead-letter","attributes":{"retryPolicy":{"maxDeliveries":3,"backoff":{"initial":"0s","jitter":0}}}}'
api POST /v1/tenants/$TENANT/queues '{"name":"latency"}'

# ---- per-thread CPU of the server, from /proc (clock ticks)
CLK_TCK="$(getconf CLK_TCK)"
# The SQLite writer is the server's second thread: the store is opened (and its writer thread
# started) before the HTTP acceptor and the sweeper.
# shellcheck disable=SC2012  # task directory names are thread ids
WRITER_TID="$(ls /proc/"$SERVER_PID"/task | sort -n | sed -n 2p)"
proc_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
# Busy ticks of the whole machine: what is neither the server nor the load generator is other
# people's work on a shared machine, and makes the figures lower than they should be.
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
writer_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/task/$WRITER_TID/stat"; }

route_times() {  # sum and count of the server's request durations for the message routes
  curl -sS -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "$URL/metrics" |
    sed -n 's/^redrive_http_request_duration_seconds_\(sum\|count\){route="\(publish\|receive\|ack\|nack\)"} \(.*\)$/\2 \1 \3/p'
}

calc() { awk "BEGIN {print ($1)}"; }  # floating-point arithmetic and comparisons (1 or 0)

jget() {  # jget FILE KEY: a top-level scalar of the loadgen's flat JSON line
  sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$1" | tr -d '"'
}

wait_quiet() {
  local limit="${BENCH_WAIT_QUIET:-0}" start b0 b1 t0 t1
  [ "$limit" -gt 0 ] || return 0
  start="$(date +%s)"
  while [ $(( $(date +%s) - start )) -lt "$limit" ]; do
    b0="$(machine_ticks)"; t0="$(awk '/^cpu / {s = 0; for (i = 2; i <= 9; i++) s += $i; print s}' /proc/stat)"
    sleep 1
    b1="$(machine_ticks)"; t1="$(awk '/^cpu / {s = 0; for (i = 2; i <= 9; i++) s += $i; print s}' /proc/stat)"
    [ $(( (b1 - b0) * 100 / (t1 - t0 + 1) )) -lt 10 ] && return 0
  done
  echo "   the machine did not go quiet within ${limit} s; running anyway" >&2
}

ROWS=()
FAILED=0
NOISY=0
run_scenario() {  # run_scenario NAME QUEUE LOADGEN-ARGS...
  local name="$1" queue="$2"
  shift 2
  local out="$TMP/$name.json"
  wait_quiet
  echo "== $name: $*" >&2
  local p0 w0 m0 t0 t1 p1 w1 m1 rc=0
  route_times >"$TMP/$name.routes0"
  m0="$(machine_ticks)"
  p0="$(proc_ticks)"
  # Peak resident memory of the server during the scenario, sampled twice a second.
  (while :; do awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; sleep 0.5; done) \
    >"$TMP/$name.rss" 2>/dev/null &
  local sampler=$!
  w0="$(writer_ticks)"
  t0="$(date +%s.%N)"
  "$LOADGEN" --url "$URL" --token-file "$TOKEN_FILE" --tenant "$TENANT" --queue "$queue" \
    --body-size "$BODY_SIZE" --seconds "$SECONDS_EACH" --scenario "$name" --json "$@" \
    >"$out" || rc=$?
  t1="$(date +%s.%N)"
  p1="$(proc_ticks)"
  w1="$(writer_ticks)"
  m1="$(machine_ticks)"
  route_times >"$TMP/$name.routes1"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  local rss_mib
  rss_mib="$(sort -n "$TMP/$name.rss" | tail -1)"
  rss_mib="$(( ${rss_mib:-0} / 1024 ))"
  if [ ! -s "$out" ]; then
    echo "bench/run.sh: the $name scenario produced no result (exit $rc)" >&2
    FAILED=1
    return
  fi
  [ "$rc" -eq 0 ] || FAILED=1
  local wall writer_pct other_pct loadgen_pct others_pct
  wall="$(calc "$t1 - $t0")"
  writer_pct="$(calc "($w1 - $w0) / $CLK_TCK / $wall * 100")"
  other_pct="$(calc "(($p1 - $p0) - ($w1 - $w0)) / $CLK_TCK / $wall * 100")"
  loadgen_pct="$(calc "$(jget "$out" loadgenCpuSeconds) / $wall * 100")"
  others_pct="$(calc "(($m1 - $m0) - ($p1 - $p0)) / $CLK_TCK / $wall * 100 - $loadgen_pct")"
  # Tick accounting is coarse: a small negative share is zero.
  [ "$(calc "$others_pct < 0")" = 1 ] && others_pct=0
  if [ "$(calc "$others_pct > 20")" = 1 ]; then
    NOISY=1
    printf '   warning: other processes used %.0f%% of a core during this scenario\n' "$others_pct" >&2
  fi
  local lat="-"
  if [ -n "$(jget "$out" p50Ms)" ]; then
    lat="$(printf '%.1f / %.1f / %.1f / %.1f' "$(jget "$out" p50Ms)" "$(jget "$out" p90Ms)" \
      "$(jget "$out" p99Ms)" "$(jget "$out" p999Ms)")"
  fi
  local params
  params="p$(jget "$out" producers) c$(jget "$out" consumers) b$(jget "$out" batch)"
  [ "$(jget "$out" receiveBatch)" != "$(jget "$out" batch)" ] && params+="/r$(jget "$out" receiveBatch)"
  [ "$(jget "$out" maxBacklog)" != 0 ] && params+=" backlog $(jget "$out" maxBacklog)"
  [ "$name" = latency ] && params+=" @$(jget "$out" targetRate | cut -d. -f1)/s"
  [ "$name" = dead-letter ] && params+=" fail $(jget "$out" failShare)"
  ROWS+=("$(printf '%-12s %9.0f %9s %7.1f  %-27s %4.0f%% %5.0f%% %5.0f%% %5.0f%% %5s  %-4s %s' \
    "$name" "$(jget "$out" messagesPerSecond)" "$(jget "$out" messages)" "$(jget "$out" seconds)" \
    "$lat" "$writer_pct" "$other_pct" "$loadgen_pct" "$others_pct" "$rss_mib" \
    "$([ "$(jget "$out" accounted)" = true ] && echo yes || echo NO)" "$params")")
  echo "   $(jget "$out" verdict)" >&2
  # Mean time the server spent on each kind of request during the scenario.
  awk 'FNR == NR {before[$1 " " $2] = $3; next} {d[$1 " " $2] = $3 - before[$1 " " $2]}
       END {line = "";
            split("publish receive ack nack", r, " ");
            for (i = 1; i <= 4; i++) if (d[r[i] " count"] > 0)
              line = line sprintf(" %s %.1f ms", r[i], 1000 * d[r[i] " sum"] / d[r[i] " count"]);
            if (line != "") print "   server time per request:" line}' \
    "$TMP/$name.routes0" "$TMP/$name.routes1" >&2
  local err
  err="$(jget "$out" firstError)"
  [ -z "$err" ] || echo "   first error: $err" >&2
}

run_scenario publish publish --producers "$PUB_PRODUCERS" --batch "$PUB_BATCH"
# Delete the publish queue, so the next scenarios start from a small database (a backlog of
# ~1 GB in one queue slows every other queue down; docs/benchmarks.md). The footer reports the
# server's peak RSS before and after: deleting a large queue once raised it by the size of the
# queue. BENCH_DELETE_PUBLISHED=0 keeps the messages instead.
HWM_BEFORE_DELETE="$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")"
if [ "${BENCH_DELETE_PUBLISHED:-1}" = 1 ]; then
  t0="$(date +%s.%N)"
  api DELETE /v1/tenants/$TENANT/queues/publish
  printf '   deleted the publish queue in %.1f s; server RSS now %s MiB\n' \
    "$(calc "$(date +%s.%N) - $t0")" \
    "$(( $(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status") / 1024 ))" >&2
fi
run_scenario end-to-end end-to-end --producers "$E2E_PRODUCERS" --consumers "$E2E_CONSUMERS" \
  --batch "$E2E_BATCH" --receive-batch "$E2E_RECEIVE_BATCH" --max-backlog "$E2E_MAX_BACKLOG"
run_scenario dead-letter dead-letter --producers "$DL_PRODUCERS" --consumers "$DL_CONSUMERS" \
  --batch "$DL_BATCH" --receive-batch "$DL_RECEIVE_BATCH" --max-backlog "$DL_MAX_BACKLOG" \
  --fail-share "$DL_FAIL_SHARE"
run_scenario latency latency --rate "$LAT_RATE" --producers "$LAT_PRODUCERS" \
  --consumers "$LAT_CONSUMERS" --batch "$LAT_BATCH" --receive-batch "$LAT_RECEIVE_BATCH"

HWM="$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")"
RSS="$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")"
DB_BYTES="$(du -cb "$TMP/data"/redrive.db* 2>/dev/null | tail -1 | cut -f1)"

echo
echo "redrive benchmark  $(date -u +%Y-%m-%dT%H:%MZ)  $(nproc) cores  body ${BODY_SIZE} B  ${SECONDS_EACH} s per scenario  data on ${fs_type}"
echo "CPU columns: % of one core during the scenario. writer: the server's SQLite writer thread;"
echo "server: every other server thread; loadgen: redrive_loadgen; others: the rest of the machine."
echo "RSS: the server's peak resident memory during the scenario, MiB."
printf '%-12s %9s %9s %7s  %-27s %5s %6s %6s %6s %5s  %-4s %s\n' scenario "msg/s" messages seconds \
  "latency ms p50/p90/p99/p99.9" writer server loadgen others "RSS" ok parameters
for row in "${ROWS[@]}"; do echo "$row"; done
echo
if [ "$NOISY" = 1 ]; then
  echo "warning: other processes competed for the CPU during at least one scenario (column others);"
  echo "         rerun on a quiet machine before quoting these figures."
fi
echo "server peak RSS (VmHWM): $((HWM / 1024)) MiB at the end (now $((RSS / 1024)) MiB);" \
  "$((HWM_BEFORE_DELETE / 1024)) MiB before the publish queue was deleted"
echo "database files: $((DB_BYTES / 1024 / 1024)) MiB"
exit "$FAILED"
