#!/usr/bin/env bash
# Soak: memory and disk under steady load.
#
#   scripts/soak.sh [--rate N] [--duration-seconds S] [--interval-seconds I]
#       Runs the release binary, drives it with `ocp-metrics simulate --rate N` for S seconds
#       (default 2000 events/s for 300 s), and samples the server's RSS, the data dir's size
#       and its own /metrics every I seconds (default 15). Real time, so it shows the log being
#       checkpointed and truncated (disk stays bounded) and how fast memory grows toward the
#       49-hour horizons; it cannot reach them.
#   scripts/soak.sh --accelerated
#       Runs the engine for days of simulated time (SOAK_DAYS, default 4) with a manual clock,
#       which does reach the horizons: real-time data, session spans and the dedupe set level
#       off; batch data grows by a day's worth per day up to its 720-day retention.
set -euo pipefail
cd "$(dirname "$0")/.."

rate=2000
duration=300
interval=15
while [ $# -gt 0 ]; do
  case "$1" in
    --accelerated)
      SOAK_DAYS=${SOAK_DAYS:-4} SOAK_EVENTS_PER_MINUTE=${SOAK_EVENTS_PER_MINUTE:-100} exec cargo test --release -p ocp-metrics-store --test soak -- --nocapture ;;
    --rate) rate="$2"; shift 2 ;;
    --duration-seconds) duration="$2"; shift 2 ;;
    --interval-seconds) interval="$2"; shift 2 ;;
    *) echo "usage: $0 [--accelerated] [--rate N] [--duration-seconds S] [--interval-seconds I]" >&2; exit 2 ;;
  esac
done

cargo build --release -p ocp-metrics --quiet
bin=target/release/ocp-metrics
work=$(mktemp -d)
data="$work/data"
admin=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cleanup() {
  [ -n "${sim_pid:-}" ] && kill "$sim_pid" 2>/dev/null || true
  [ -n "${srv_pid:-}" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Checkpoint every 30 s and use 16 MiB segments, so truncation shows within minutes.
OCP_METRICS_ADMIN_TOKEN=$admin RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" \
  --checkpoint-interval-seconds 30 --log-segment-bytes-max 16777216 \
  --rate-per-second 100000 --rate-burst 100000 >"$work/stdout" 2>"$work/stderr" &
srv_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/stdout" | head -1)
[ -n "$url" ] || { cat "$work/stderr"; exit 1; }
until curl -sf "$url/readyz" >/dev/null; do sleep 0.1; done
token=$(OCP_METRICS_ADMIN_TOKEN=$admin "$bin" token create --server "$url" --name soak --group '*' \
  --scope events:write,metrics:read | sed -n 's/^ *"token": "\(.*\)",\{0,1\}$/\1/p')
[ -n "$token" ] || { echo "could not create a token" >&2; exit 1; }

"$bin" simulate --target "$url" --token "$token" --rate "$rate" --duration-seconds "$duration" \
  >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!

metric() { sed -n "s/^ocp_metrics_$1 //p" "$work/metrics"; }
printf '%6s %10s %9s %10s %10s %8s %9s %6s\n' secs accepted rss_MiB data_MiB wal_MiB dedupe series ckpts
start=$(date +%s)
samples=()
while kill -0 "$sim_pid" 2>/dev/null; do
  sleep "$interval"
  curl -sf -H "Authorization: Bearer $admin" "$url/metrics" >"$work/metrics" || continue
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$srv_pid/status")
  disk=$(du -sb "$data" | awk '{printf "%.1f", $1/1048576}')
  wal=$(du -sb "$data/wal" | awk '{printf "%.1f", $1/1048576}')
  line=$(printf '%6d %10s %9s %10s %10s %8s %9s %6s' $(( $(date +%s) - start )) \
    "$(metric ingest_events_accepted_total)" "$rss" "$disk" "$wal" \
    "$(metric dedupe_entries)" "$(metric series)" "$(metric checkpoints_total)")
  echo "$line"
  samples+=("$line")
done
wait "$sim_pid" || true
cat "$work/sim.out"
echo "data dir at the end:"; ls -la "$data/wal" "$data/checkpoints" | sed 's/^/  /'
