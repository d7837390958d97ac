#!/usr/bin/env bash
# Where the time of one benchmark query goes: the server's time to the first byte of its answer
# (planning, scanning, writing the JSON) against the whole request (plus moving the answer over
# loopback and reading it), measured with curl, one request at a time, with nothing else
# running. Runs on the data directory of a kept benchmark run:
#
#   bench/run.sh --scale 0.3 --no-clickhouse --no-duckdb --no-footprint --keep --work-dir W
#   bench/query_ttfb.sh target/release/ocp-metrics W/ocp-data [RUNS] [QUERY]
#
# QUERY is any query of the benchmark's suite (`ocp-metrics-bench query NAME` prints it), e.g.
# batch_day_drill (default: 720 local days drilled by name x language, a ~19 MB answer) or
# batch_week (sessions by week over 720 days). Prints the median, 90th and 99th percentile of
# both, over RUNS (default 30) sequential requests. Nothing is asserted: this is a measurement.
set -euo pipefail
usage="usage: query_ttfb.sh SERVER_BINARY DATA_DIR [RUNS] [QUERY]"
bin=${1:?$usage}
data=${2:?$usage}
runs=${3:-30}
query=${4:-batch_day_drill}
port=${DRILL_TTFB_PORT:-18777}
# The benchmark harness, built next to the server binary.
bench=${BENCH_BIN:-$(dirname "$bin")/ocp-metrics-bench}
base="http://127.0.0.1:$port"
export OCP_METRICS_ADMIN_TOKEN=bench-admin-token-0123456789abcdef0123

"$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" \
  --rate-per-second 1000000 --rate-burst 1000000 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -sf "$base/readyz" >/dev/null; do sleep 0.2; done

token=$(curl -sf -X POST -H "Authorization: Bearer $OCP_METRICS_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"name":"query-ttfb","groups":["*"],"scopes":["metrics:read"],"expires_at":null}' \
  "$base/admin/v1/tokens" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# The query exactly as the benchmark sends it (crates/ocp-metrics-bench/src/queries.rs).
IFS=$'\t' read -r path body < <("$bench" query "$query")

for _ in $(seq 1 "$runs"); do
  curl -sf -o /dev/null -w '%{time_starttransfer} %{time_total} %{size_download}\n' \
    -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "$body" "$base$path"
done | python3 -c '
import sys
rows = [tuple(float(x) for x in line.split()) for line in sys.stdin]
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
ttfb, total = [r[0] for r in rows], [r[1] for r in rows]
print(f"{sys.argv[1]} over {len(rows)} runs, answer {int(rows[0][2]):,} bytes")
for name, xs in (("server, to first byte", ttfb), ("whole request", total)):
    label = name + ":"
    print(f"  {label:22} p50 {q(xs, 0.5):.2f} ms, p90 {q(xs, 0.9):.2f} ms, p99 {q(xs, 0.99):.2f} ms")
' "$query"
