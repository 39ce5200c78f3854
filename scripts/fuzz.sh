#!/usr/bin/env bash
# Builds and runs one libFuzzer target: scripts/fuzz.sh TARGET SECONDS  (e.g. filter_fuzz 120).
#
# Installs clang and the compiler-rt runtimes if missing, configures build/fuzz with clang,
# -DREDRIVE_FUZZ=ON and -DREDRIVE_SANITIZE=ON (ASan+UBSan everywhere), builds TARGET only, and
# runs it for SECONDS on build/fuzz/corpus/TARGET, seeded from src/query/fuzz_seeds/. The corpus
# persists between runs; crashers land in build/fuzz/artifacts/TARGET/. Exits non-zero when
# the fuzzer finds a crash, a leak or a sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 TARGET SECONDS" >&2
  exit 2
fi
target=$1
seconds=$2

"$(dirname "$0")/deps.sh" --fuzz

build=build/fuzz
if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DREDRIVE_FUZZ=ON -DREDRIVE_SANITIZE=ON >/dev/null
fi
cmake --build "$build" -j2 --target "$target"

corpus="$build/corpus/$target"
artifacts="$build/artifacts/$target"
mkdir -p "$corpus" "$artifacts"
cp -n src/query/fuzz_seeds/* "$corpus"/ 2>/dev/null || true

binary=$(find "$build/src" -type f -name "$target" -perm -u+x | head -1)
[ -n "$binary" ] || { echo "no binary for $target under $build/src" >&2; exit 1; }
# max_len a little over kMaxFilterBytes, so that the length limit is exercised too.
exec "$binary" "$corpus" -max_total_time="$seconds" -max_len=4200 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/"
