#!/usr/bin/env bash
# Fails when a tracked C++ file is not clang-formatted (see .clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h' 2>/dev/null || true)
[ -z "$files" ] && exit 0
if ! out=$(echo "$files" | xargs clang-format --dry-run --Werror 2>&1); then
  echo "$out" | head -40
  echo "clang-format: files above need 'make format'" >&2
  exit 1
fi
