#!/usr/bin/env bash
# How cost grows (issue 11, item 3): ocp-metrics alone (no baselines) at about 1, 3 and 10
# million events (full mode x0.1, x0.3, x1), then the drilldowns at about 100, 1,000 and 2,700
# series (x0.1 with 5, 50 and 135 long-tail miniApp names x 20 locales; 50 is the default, so
# the x0.1 run of the first table is the 1,000-series point). For each: ingest rate,
# query p99, resident memory right after loading, and restart to ready after SIGTERM and
# kill -9. The table is printed and written to target/bench/scaling.md; each run's results to
# target/bench/scaling-*.json.
#
#   bench/scaling.sh                 # about 15 minutes on 2 cores
#   bench/scaling.sh --sizes "0.1 0.3" --names "5 50"   # fewer points
#   BENCH_QUIET_WAIT=10 bench/scaling.sh   # wait at most 10 s for a quiet machine per phase
#   bench/scaling.sh --perf-at 0.3   # also record perf profiles at that size (ingest D, the
#                                    # queries, both restarts) into target/bench/scaling-perf/
#
# 10,000 series are not measured: a drilldown over 10,000 series x 720 days is 7.2 million
# points, which the API refuses by design (ANSWER_POINTS_MAX = 2,000,000 per answer;
# ANSWER_SERIES_MAX = 10,000); 135 names (about 2,700 series x 720 days) is the largest point
# under that limit.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES="0.1 0.3 1"
NAMES="5 135"
PERF_AT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --sizes) SIZES=$2; shift 2 ;;
    --names) NAMES=$2; shift 2 ;;
    --perf-at) PERF_AT=$2; shift 2 ;;
    *) echo "bench/scaling.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p ocp-metrics -p ocp-metrics-bench
mkdir -p "$TARGET_DIR/bench"
run() { # name, extra args...
  local name=$1; shift
  "$TARGET_DIR/release/ocp-metrics-bench" --mode full --no-clickhouse --no-duckdb \
    --no-footprint --quiet-wait "${BENCH_QUIET_WAIT:-120}" \
    --server-bin "$TARGET_DIR/release/ocp-metrics" \
    --json-out "$TARGET_DIR/bench/scaling-$name.json" \
    --markdown-out "$TARGET_DIR/bench/scaling-$name.md" "$@" >/dev/null
}
JSONS=()
for s in $SIZES; do
  PERF=()
  if [ "$s" = "$PERF_AT" ]; then
    rm -rf "$TARGET_DIR/bench/scaling-perf"
    PERF=(--perf --keep --work-dir "$TARGET_DIR/bench/scaling-perf")
  fi
  run "events-x$s" --scale "$s" "${PERF[@]}"
  JSONS+=("events:$TARGET_DIR/bench/scaling-events-x$s.json")
  if [ "$s" = 0.1 ]; then JSONS+=("series:$TARGET_DIR/bench/scaling-events-x$s.json"); fi
done
for n in $NAMES; do
  run "names-$n" --scale 0.1 --tail-names "$n"
  JSONS+=("series:$TARGET_DIR/bench/scaling-names-$n.json")
done
python3 bench/scaling_table.py "${JSONS[@]}" | tee "$TARGET_DIR/bench/scaling.md"
