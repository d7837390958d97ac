#!/usr/bin/env bash
# The warehouse benchmark, one command: builds the release binaries, then for 1, 10 and 100
# tenants of 720-day history (20,000 events each by default) runs one cluster node on one
# nats-server twice, with the batch history in memory and in ClickHouse, and reports the node's
# memory and the 720-day batch queries (a ~1,000-series drilldown by day, and a total by day)
# from each. Needs nats-server and clickhouse-server (Debian packages; bench/deps.sh installs
# the latter).
#
#   bench/warehouse.sh                                   # about 10 minutes on 2 cores
#   bench/warehouse.sh --tenants 1,10 --events-per-tenant 5000 --iterations 20
#
# Results: target/bench/warehouse.md. Exit status: 0 the two modes answered alike, 1 they did
# not, 2 the run failed. No timing is asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_NO_DUCKDB=1 source bench/deps.sh

TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p ocp-metrics -p ocp-metrics-bench
mkdir -p "$TARGET_DIR/bench"
exec "$TARGET_DIR/release/ocp-metrics-bench" warehouse \
  --server-bin "$TARGET_DIR/release/ocp-metrics" \
  --report "$TARGET_DIR/bench/warehouse.md" \
  "$@"
