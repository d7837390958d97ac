#!/usr/bin/env bash
# The benchmark's smoke mode, for CI: small data (~150,000 events), few repetitions, every
# phase of bench/run.sh, and the check that ClickHouse's and DuckDB's answers equal ours.
# No timing is asserted. Uses the debug build (which CI's `cargo test` has already compiled)
# unless BENCH_PROFILE=release. Installs clickhouse-server and duckdb if missing.
#
# Then it proves that the answer check can fail: a small run with --inject-disagreement must
# exit 1 with every baseline answer reported as differing.
#
# Exit status: 0 everything ran, every answer agrees, and the injected disagreement was
# caught; non-zero otherwise.
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
BIN=("$TARGET_DIR/$OUT/ocp-metrics-bench" --mode smoke
  --server-bin "$TARGET_DIR/$OUT/ocp-metrics"
  --python "${BENCH_PYTHON:-python3}"
  --duckdb-script bench/duckdb_baseline.py)
"${BIN[@]}" --json-out "$TARGET_DIR/bench/smoke.json" \
  --markdown-out "$TARGET_DIR/bench/smoke.md" "${EXTRA[@]}" "$@"

# The check must be able to fail: the same harness, on a fifth of the data, with one bucket of
# every baseline answer perturbed (--inject-disagreement), has to exit 1 and report every
# query of every baseline as differing. Anything else fails the smoke run.
BASELINES=0
[ "${BENCH_NO_CLICKHOUSE:-0}" = 1 ] || BASELINES=$((BASELINES + 2))  # rollup and raw
[ "${BENCH_NO_DUCKDB:-0}" = 1 ] || BASELINES=$((BASELINES + 2))
if [ "$BASELINES" = 0 ]; then
  echo "smoke: no baseline, so the answer check cannot be shown to fail" >&2
  exit 0
fi
LOG="$TARGET_DIR/bench/smoke-inject.log"
set +e
"${BIN[@]}" --scale 0.2 --no-footprint --inject-disagreement "${EXTRA[@]}" >"$LOG" 2>&1
RC=$?
set -e
DIFFERS=$(grep -c "DIFFERS from" "$LOG" || true)
if [ "$RC" != 1 ] || [ "$DIFFERS" != $((7 * BASELINES)) ]; then
  echo "smoke: FAILED: with --inject-disagreement the run exited $RC (want 1) and reported" \
    "$DIFFERS differing answers (want $((7 * BASELINES))): the answer check does not catch" \
    "a disagreement; see $LOG" >&2
  exit 1
fi
echo "smoke: --inject-disagreement was caught ($DIFFERS answers differ, exit status 1)" >&2
