#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (docs/testing.md).
#
#   scripts/fuzz.sh TARGET SECONDS   one target, e.g. scripts/fuzz.sh json_fuzz 600
#   scripts/fuzz.sh all SECONDS      every target in turn (FUZZ_PARALLEL at a time, default 1),
#                                    then a summary: executions, speed, corpus, findings
#   scripts/fuzz.sh list             the targets
#
# Installs clang and the compiler-rt runtimes if missing, configures $FUZZ_BUILD (default
# build/fuzz) with clang, -DREDRIVE_FUZZ=ON and -DREDRIVE_SANITIZE=ON (ASan+UBSan everywhere,
# coverage instrumentation everywhere), and builds only the targets it runs. Each target runs
# on $FUZZ_BUILD/corpus/TARGET (kept between runs) plus its seed folder (read only), with its
# own max_len and dictionary. Crashers land in $FUZZ_BUILD/artifacts/TARGET/, logs in
# $FUZZ_BUILD/logs/TARGET.log. Exits non-zero when any target finds a crash, a leak, a timeout
# or a sanitizer report. Run it niced on a shared machine: nice -n 15 scripts/fuzz.sh all 600.
set -euo pipefail
cd "$(dirname "$0")/.."

# name | seed folder | max_len (bytes) | dictionary ("-" for none)
targets=(
  "filter_fuzz|src/query/fuzz_seeds|4200|-"
  # Over the 16 KiB header limit, so that the limit is exercised too.
  "request_fuzz|src/server/fuzz_seeds/request_fuzz|20000|src/server/fuzz_seeds/request_fuzz.dict"
  "json_fuzz|src/server/fuzz_seeds/json_fuzz|8192|src/server/fuzz_seeds/json_fuzz.dict"
  "config_fuzz|src/server/fuzz_seeds/config_fuzz|4096|src/server/fuzz_seeds/config_fuzz.dict"
)

usage() {
  echo "usage: $0 TARGET|all SECONDS   or   $0 list" >&2
  exit 2
}

names() { for t in "${targets[@]}"; do echo "${t%%|*}"; done; }

[ $# -ge 1 ] || usage
if [ "$1" = "list" ]; then
  names
  exit 0
fi
[ $# -eq 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || usage
what=$1
seconds=$2
if [ "$what" = "all" ]; then
  run=$(names)
else
  names | grep -qx "$what" || { echo "unknown target '$what'; targets: $(names | xargs)" >&2; exit 2; }
  run=$what
fi

"$(dirname "$0")/deps.sh" --fuzz

build=${FUZZ_BUILD:-build/fuzz}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DREDRIVE_FUZZ=ON -DREDRIVE_SANITIZE=ON >/dev/null
fi
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc)" --target $run

run_one() {
  local name=$1 seeds=$2 max_len=$3 dict=$4
  local corpus="$build/corpus/$name" artifacts="$build/artifacts/$name" log="$build/logs/$name.log"
  mkdir -p "$corpus" "$artifacts" "$build/logs"
  local binary
  binary=$(find "$build/src" -type f -name "$name" -perm -u+x | head -1)
  [ -n "$binary" ] || { echo "no binary for $name under $build/src" >&2; return 1; }
  local args=("$corpus" "$seeds" -max_total_time="$seconds" -max_len="$max_len" -timeout=30
              -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/")
  [ "$dict" = "-" ] || args+=(-dict="$dict")
  echo "== $name: $seconds s, log $log"
  # The outer timeout only guards against a hung run; libFuzzer stops itself at SECONDS.
  local rc=0
  timeout --kill-after=30 $((seconds + 300)) "$binary" "${args[@]}" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$log.rc"
  return 0
}

summary_line() {
  local name=$1 log="$build/logs/$1.log"
  local execs speed cov findings rc
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  rc=$(cat "$log.rc" 2>/dev/null || echo "?")
  findings=$(grep -cE '^(==[0-9]+==ERROR|SUMMARY: (Address|Undefined|Leak)Sanitizer|fuzz check failed|.*runtime error:|==[0-9]+== ERROR: libFuzzer)' "$log" || true)
  printf '%-14s %12s %9s %8s  %-22s %8s %s\n' "$name" "${execs:-?}" "${speed:-?}" \
    "$(find "$build/corpus/$name" -type f | wc -l)" "${cov:-?}" "$findings" \
    "$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc, see $build/artifacts/$name/)")"
}

parallel=${FUZZ_PARALLEL:-1}
for t in "${targets[@]}"; do
  IFS='|' read -r name seeds max_len dict <<<"$t"
  grep -qx "$name" <<<"$run" || continue
  if [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; then wait -n || true; fi
  run_one "$name" "$seeds" "$max_len" "$dict" &
done
wait

status=0
printf '%-14s %12s %9s %8s  %-22s %8s %s\n' target executions "execs/s" corpus coverage findings result
for name in $run; do
  summary_line "$name"
  [ "$(cat "$build/logs/$name.log.rc" 2>/dev/null || echo 1)" = 0 ] || status=1
done
for name in $run; do
  if [ "$(cat "$build/logs/$name.log.rc" 2>/dev/null || echo 1)" != 0 ]; then
    echo "== $name: the end of $build/logs/$name.log"
    tail -n 40 "$build/logs/$name.log"
  fi
done
exit $status
