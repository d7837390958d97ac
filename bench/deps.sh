#!/usr/bin/env bash
# Installs what the benchmark's baselines need, if missing: Debian's clickhouse-server (18.16 in
# bookworm) and the duckdb Python package. Sourced by run.sh and smoke.sh; safe to run twice.
set -euo pipefail

bench_sudo() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "bench/deps.sh: need root (or sudo) for: $*" >&2; return 1; fi
}

if [ "${BENCH_NO_CLICKHOUSE:-0}" != 1 ] && ! command -v clickhouse-server >/dev/null \
   && [ ! -x /usr/sbin/clickhouse-server ] && [ ! -x /usr/bin/clickhouse-server ]; then
  echo "bench: installing clickhouse-server (apt)" >&2
  bench_sudo apt-get update -qq
  # The package's service is never started here (no init system needed); the bench starts its
  # own server with a config in a temporary directory.
  bench_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server >/dev/null
fi

PYTHON=${BENCH_PYTHON:-python3}
if [ "${BENCH_NO_DUCKDB:-0}" != 1 ] && ! "$PYTHON" -c 'import duckdb' 2>/dev/null; then
  echo "bench: installing the duckdb Python package (pip)" >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check duckdb 2>/dev/null \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages duckdb
fi
