#!/usr/bin/env bash
# Installs the Debian packages redrive needs to build and test, and only those missing.
# Idempotent: a second run installs nothing. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  g++ make cmake ninja-build pkg-config ccache
  libsqlite3-dev libssl-dev libboost-dev libspdlog-dev libfmt-dev libcli11-dev
  libtomlplusplus-dev liblua5.4-dev nlohmann-json3-dev libsimdjson-dev libcurl4-openssl-dev
  libpq-dev librabbitmq-dev zlib1g-dev jq python3-aiosmtpd postgresql-15
  libgtest-dev
  clang-format curl ca-certificates sqlite3 procps python3
)
# --fuzz: also what scripts/fuzz.sh needs (clang and its sanitizer/libFuzzer runtime).
# PostgreSQL 15 is always installed: the tests start a private cluster of it (the second
# backend, scripts/test-postgres.sh); its Debian package also creates a system cluster, which
# nothing here uses.
# --bench: also the peers `make bench` runs side by side with redrive (RabbitMQ 3.10) and
# gnuplot for the chart.
for arg in "$@"; do
  case "$arg" in
    --fuzz) packages+=(clang libclang-rt-14-dev) ;;
    --bench) packages+=(rabbitmq-server gnuplot-nox) ;;
    *) echo "usage: $0 [--fuzz] [--bench]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "run as root, or install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
