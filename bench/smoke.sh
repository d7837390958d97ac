#!/usr/bin/env bash
# The benchmark's smoke mode, for CI: small data (~150,000 events), few repetitions, every
# phase of bench/run.sh, and the check that ClickHouse's and DuckDB's answers equal ours.
# No timing is asserted. Uses the debug build (which CI's `cargo test` has already compiled)
# unless BENCH_PROFILE=release. Installs clickhouse-server and duckdb if missing.
#
# Exit status: 0 everything ran and every answer agrees; non-zero otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/deps.sh

TARGET_DIR=${CARGO_TARGET_DIR:-target}
PROFILE=${BENCH_PROFILE:-dev}
if [ "$PROFILE" = release ]; then OUT=release; else OUT=debug; fi
cargo build --profile "$PROFILE" --quiet -p ocp-metrics -p ocp-metrics-bench
mkdir -p "$TARGET_DIR/bench"
EXTRA=()
[ "${BENCH_NO_CLICKHOUSE:-0}" = 1 ] && EXTRA+=(--no-clickhouse)
[ "${BENCH_NO_DUCKDB:-0}" = 1 ] && EXTRA+=(--no-duckdb)
exec "$TARGET_DIR/$OUT/ocp-metrics-bench" \
  --mode smoke \
  --server-bin "$TARGET_DIR/$OUT/ocp-metrics" \
  --python "${BENCH_PYTHON:-python3}" \
  --duckdb-script bench/duckdb_baseline.py \
  --json-out "$TARGET_DIR/bench/smoke.json" \
  --markdown-out "$TARGET_DIR/bench/smoke.md" \
  "${EXTRA[@]}" "$@"
