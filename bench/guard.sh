#!/usr/bin/env bash
# The benchmark's regression guard, for CI (ctest label bench-guard; `make test` runs it). A
# few seconds of redrive's publish and end-to-end scenarios, judged as a ratio to a yardstick
# measured in the same job on the same disk, before and after: raw batched SQLite inserts with
# redrive's durability (bench/reference.cc: WAL, synchronous=FULL, 1000 rows of 1 KiB per
# commit, as the publish scenario's batches). A slow machine or disk slows both and leaves the
# ratio roughly alone; an absolute time is never judged.
#
# It fails only on a gross regression: a ratio below a floor of about a quarter of the lowest
# ratio measured when the guard was written, or a run that loses a message. Measured on the
# development VM (2 vCPUs, ext4 on a virtio disk, other builds running; docs/benchmarks.md,
# "Regression guard"):
#                           on disk (the default)   on tmpfs (fsync free)   floor
#   end-to-end / reference  0.13-0.19               0.044-0.058             0.011
#   publish / reference     0.33-0.54               0.115-0.166             0.03
# The ratio is lowest where fsync is cheapest (the reference gains more from it than redrive),
# so there the floor is nearest: a redrive slowed 7x fails on tmpfs; on a slow or busy disk
# only a larger slowdown does (28x failed, 7x passed). Takes about 20 s.
#
# Usage: bench/guard.sh [BUILD_DIR]   (default build/release)
# Environment (all optional): REDRIVE, LOADGEN, REFERENCE (binaries; default from BUILD_DIR),
#   GUARD_TMPDIR (where the data goes; default BUILD_DIR: put it on a real disk, not tmpfs),
#   GUARD_FLOOR_E2E, GUARD_FLOOR_PUBLISH (override the floors), GUARD_SECONDS (end-to-end
#   seconds, default 5).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build/release}" && pwd)"
REDRIVE="${REDRIVE:-$BUILD/src/cli/redrive}"
LOADGEN="${LOADGEN:-$BUILD/bench/redrive_loadgen}"
REFERENCE="${REFERENCE:-$BUILD/bench/redrive_reference}"
FLOOR_E2E="${GUARD_FLOOR_E2E:-0.011}"
FLOOR_PUBLISH="${GUARD_FLOOR_PUBLISH:-0.03}"
E2E_SECONDS="${GUARD_SECONDS:-5}"

for bin in "$REDRIVE" "$LOADGEN" "$REFERENCE"; do
  [ -x "$bin" ] || { echo "bench/guard.sh: $bin is missing; build it first" >&2; exit 2; }
done

TMP="$(mktemp -d "${GUARD_TMPDIR:-$BUILD}/redrive-guard.XXXXXX")"
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

if [ "$(stat -f -c %T "$TMP")" = tmpfs ]; then
  echo "bench/guard.sh: note: $TMP is on tmpfs: fsync is free there, so the guard does not see the disk" >&2
fi

jget() {  # jget FILE KEY: a top-level scalar of a flat JSON line
  sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$1" | tr -d '"'
}
calc() { awk "BEGIN {print ($1)}"; }

reference() {  # reference OUT
  "$REFERENCE" --dir "$TMP" --seconds 3 --batch 1000 --body-size 1024 --json >"$1"
}

reference "$TMP/ref1.json"

"$REDRIVE" serve --data-dir "$TMP/data" --listen 127.0.0.1:0 --port-file "$TMP/port" \
  >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  [ -s "$TMP/port" ] && [ -s "$TMP/data/operator.token" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$TMP/port" ]; then
  echo "bench/guard.sh: the server did not start" >&2
  cat "$TMP/server.log" >&2
  exit 1
fi
URL="http://127.0.0.1:$(cat "$TMP/port")"

loadgen() {  # loadgen OUT QUEUE ARGS...
  local out="$1" queue="$2"
  shift 2
  local rc=0
  "$LOADGEN" --url "$URL" --token-file "$TMP/data/operator.token" --tenant guard --queue "$queue" \
    --create --body-size 1024 --json "$@" >"$out" || rc=$?
  if [ "$rc" -ne 0 ] || [ "$(jget "$out" accounted)" != true ]; then
    echo "bench/guard.sh: FAIL: the $queue run did not account for every message (exit $rc):" >&2
    cat "$out" >&2
    exit 1
  fi
}

loadgen "$TMP/publish.json" publish --scenario publish --seconds 3 --producers 4 --batch 1000
loadgen "$TMP/e2e.json" end-to-end --scenario end-to-end --seconds "$E2E_SECONDS" \
  --producers 8 --consumers 24 --batch 100 --max-backlog 40000

reference "$TMP/ref2.json"

ref1="$(jget "$TMP/ref1.json" rowsPerSecond)"
ref2="$(jget "$TMP/ref2.json" rowsPerSecond)"
ref="$(calc "($ref1 + $ref2) / 2")"
pub="$(jget "$TMP/publish.json" messagesPerSecond)"
e2e="$(jget "$TMP/e2e.json" messagesPerSecond)"
ratio_pub="$(calc "$pub / $ref")"
ratio_e2e="$(calc "$e2e / $ref")"

printf 'reference (sqlite batched inserts): %.0f rows/s (%.0f before, %.0f after)\n' \
  "$ref" "$ref1" "$ref2"
printf 'publish:    %7.0f msg/s  ratio %.3f  floor %s\n' "$pub" "$ratio_pub" "$FLOOR_PUBLISH"
printf 'end-to-end: %7.0f msg/s  ratio %.3f  floor %s\n' "$e2e" "$ratio_e2e" "$FLOOR_E2E"
failed=0
if [ "$(calc "$ratio_pub < $FLOOR_PUBLISH")" = 1 ]; then
  echo "FAIL: publish fell to $ratio_pub of the reference (floor $FLOOR_PUBLISH): a gross regression"
  failed=1
fi
if [ "$(calc "$ratio_e2e < $FLOOR_E2E")" = 1 ]; then
  echo "FAIL: end-to-end fell to $ratio_e2e of the reference (floor $FLOOR_E2E): a gross regression"
  failed=1
fi
[ "$failed" = 0 ] && echo "ok: no gross regression"
exit "$failed"
