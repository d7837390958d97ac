#!/usr/bin/env bash
# The full benchmark, one command: builds the release binaries, installs the baselines if
# missing, generates 10 million events, runs ocp-metrics, ClickHouse and DuckDB on them one
# after the other, checks that every baseline answer equals ours, and prints the ratio table.
#
#   bench/run.sh                      # full mode (about 8-10 minutes on 2 cores, more while
#                                     # it waits for other processes to leave the CPUs)
#   bench/run.sh --scale 0.1          # a tenth of the events
#   bench/run.sh --perf --keep        # also record perf profiles of the server into the work dir
#
# Results: target/bench/full.md (the report) and target/bench/full.json (every number).
# Exit status: 0 all answers equal, 1 an answer disagrees, 2 the run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/deps.sh

TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p ocp-metrics -p ocp-metrics-bench
mkdir -p "$TARGET_DIR/bench"
EXTRA=()
[ "${BENCH_NO_CLICKHOUSE:-0}" = 1 ] && EXTRA+=(--no-clickhouse)
[ "${BENCH_NO_DUCKDB:-0}" = 1 ] && EXTRA+=(--no-duckdb)
exec "$TARGET_DIR/release/ocp-metrics-bench" \
  --mode "${BENCH_MODE:-full}" \
  --server-bin "$TARGET_DIR/release/ocp-metrics" \
  --python "${BENCH_PYTHON:-python3}" \
  --duckdb-script bench/duckdb_baseline.py \
  --json-out "$TARGET_DIR/bench/${BENCH_MODE:-full}.json" \
  --markdown-out "$TARGET_DIR/bench/${BENCH_MODE:-full}.md" \
  "${EXTRA[@]}" "$@"
