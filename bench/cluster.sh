#!/usr/bin/env bash
# The cluster benchmark, one command: builds the release binaries, generates about a million
# events, and measures, one after the other on the same events, 1 embedded node, 1 node on a
# standalone NATS JetStream server (R1) and 3 nodes on a 3-server JetStream cluster (R3); then
# the catch-up of a wiped node (whole-stream replay on R1, from a snapshot on R3) and the
# memory of 100 small groups. Needs nats-server (Debian: apt-get install nats-server).
#
#   bench/cluster.sh                            # about 1,000,000 events (3-5 minutes on 2 cores)
#   bench/cluster.sh --events 200000 --keep     # smaller, and keep the work dir (logs, stores)
#   bench/cluster.sh --producers 12 --batch-size 100
#
# Results: target/bench/cluster.md (the report) and target/bench/cluster.json (every number).
# Exit status: 0 every count and answer right, 1 one was wrong, 2 the run failed. No timing is
# asserted.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet -p ocp-metrics -p ocp-metrics-bench
mkdir -p "$TARGET_DIR/bench"
exec "$TARGET_DIR/release/ocp-metrics-bench" cluster \
  --server-bin "$TARGET_DIR/release/ocp-metrics" \
  --json-out "$TARGET_DIR/bench/cluster.json" \
  --markdown-out "$TARGET_DIR/bench/cluster.md" \
  "$@"
