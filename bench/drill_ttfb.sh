#!/usr/bin/env bash
# Where the time of the 720-day drilldown goes: the server's time to the first byte of its answer
# (planning, scanning, writing the JSON) against the whole request (plus moving ~19 MB over
# loopback and reading it). Runs on the data directory of a kept benchmark run:
#
#   bench/run.sh --scale 0.3 --no-clickhouse --no-duckdb --no-footprint --keep --work-dir W
#   bench/drill_ttfb.sh target/release/ocp-metrics W/ocp-data [RUNS]
#
# Prints the median and the 90th percentile of both, over RUNS (default 30) sequential requests
# with curl. Nothing is asserted: this is a measurement.
set -euo pipefail
bin=${1:?usage: drill_ttfb.sh SERVER_BINARY DATA_DIR [RUNS]}
data=${2:?usage: drill_ttfb.sh SERVER_BINARY DATA_DIR [RUNS]}
runs=${3:-30}
port=${DRILL_TTFB_PORT:-18777}
base="http://127.0.0.1:$port"
export OCP_METRICS_ADMIN_TOKEN=bench-admin-token-0123456789abcdef0123

"$bin" serve --listen "127.0.0.1:$port" --data-dir "$data" \
  --rate-per-second 1000000 --rate-burst 1000000 >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
until curl -sf "$base/readyz" >/dev/null; do sleep 0.2; done

token=$(curl -sf -X POST -H "Authorization: Bearer $OCP_METRICS_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"name":"drill-ttfb","groups":["*"],"scopes":["metrics:read"],"expires_at":null}' \
  "$base/admin/v1/tokens" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# The benchmark's batch_day_drill: 720 local days of Asia/Kolkata, drilled by name x language.
start="$(TZ=Asia/Kolkata date -d 'today -719 days' +%Y/%m/%d) 00:00:00"
end="$(TZ=Asia/Kolkata date -d 'tomorrow' +%Y/%m/%d) 00:00:00"
body="{\"metrics\":[\"totalinvocations\"],\"filters\":{\"miniapp_name\":[],\"language\":[]},\
\"start\":\"$start\",\"end\":\"$end\",\"group\":\"globex-telco\",\"downsampling\":\"day\",\
\"drilldown\":true,\"timezone\":\"Asia/Kolkata\"}"

for _ in $(seq 1 "$runs"); do
  curl -sf -o /dev/null -w '%{time_starttransfer} %{time_total} %{size_download}\n' \
    -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d "$body" "$base/metrics-api/v3/batch/metrics/miniapps"
done | python3 -c '
import sys
rows = [tuple(float(x) for x in line.split()) for line in sys.stdin]
def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
ttfb, total = [r[0] for r in rows], [r[1] for r in rows]
print(f"batch_day_drill over {len(rows)} runs, answer {int(rows[0][2]):,} bytes")
print(f"  server, to first byte: p50 {q(ttfb, 0.5):.1f} ms, p90 {q(ttfb, 0.9):.1f} ms")
print(f"  whole request:         p50 {q(total, 0.5):.1f} ms, p90 {q(total, 0.9):.1f} ms")
'
