#!/usr/bin/env bash
# Three ocp-metrics nodes on a three-server NATS JetStream cluster, all on this machine's
# loopback, as docs/cluster.md describes step by step. It ingests a few events through node 1,
# queries them on node 3, and leaves everything running until Ctrl-C (then stops it all).
#
#   scripts/cluster-local.sh                  # state under ./cluster-local (kept between runs)
#   CLUSTER_DIR=/tmp/c scripts/cluster-local.sh
#   BIN=target/debug/ocp-metrics scripts/cluster-local.sh   # another build
#
# Needs Debian's nats-server (`apt-get install -y nats-server`) and a release build
# (`cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/ocp-metrics}
DIR=${CLUSTER_DIR:-./cluster-local}
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$NATS_SERVER" ] || { echo "install nats-server: apt-get install -y nats-server" >&2; exit 2; }
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
mkdir -p "$DIR"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT

# 1. Three NATS servers: clients on 4221-4223, cluster routes on 6221-6223.
for i in 1 2 3; do
  cat > "$DIR/nats-$i.conf" <<EOF
server_name: "nats-$i"
listen: "127.0.0.1:422$i"
jetstream { store_dir: "$DIR/nats-$i" }
cluster {
  name: "ocpm"
  listen: "127.0.0.1:622$i"
  routes: ["nats-route://127.0.0.1:6221", "nats-route://127.0.0.1:6222", "nats-route://127.0.0.1:6223"]
}
EOF
  "$NATS_SERVER" -c "$DIR/nats-$i.conf" > "$DIR/nats-$i.log" 2>&1 &
  pids+=($!)
done

# 2. Three nodes on ports 8081-8083, sharing one admin token (from a file: never in argv).
[ -s "$DIR/admin-token" ] || (umask 077; head -c 32 /dev/urandom | base64 | tr -d '/+=' > "$DIR/admin-token")
NATS=nats://127.0.0.1:4221,nats://127.0.0.1:4222,nats://127.0.0.1:4223
for i in 1 2 3; do
  "$BIN" serve --listen "127.0.0.1:808$i" --data-dir "$DIR/node-$i" --nats "$NATS" \
    --admin-token-file "$DIR/admin-token" > "$DIR/node-$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  until curl -sf "http://127.0.0.1:808$i/readyz" > /dev/null; do sleep 0.5; done
done
echo "three nodes ready: http://127.0.0.1:8081 http://127.0.0.1:8082 http://127.0.0.1:8083"

# 3. A token created through node 1 works on every node.
TOKEN=$(curl -sf -X POST "http://127.0.0.1:8081/admin/v1/tokens" \
  -H "Authorization: Bearer $(cat "$DIR/admin-token")" -H 'Content-Type: application/json' \
  -d '{"name":"demo","groups":["acme"],"scopes":["events:write","metrics:read"],"expires_at":null}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# 4. Ingest through node 1 ...
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for s in 1 2 3; do
  echo "{\"type\":\"session_start\",\"id\":\"demo-$s-$NOW\",\"time\":\"$NOW\",\"group\":\"acme\",\"session_id\":\"demo-$s-$NOW\",\"channel\":\"ivr\",\"region\":\"eu\"}"
done | curl -sf -X POST "http://127.0.0.1:8081/ingest/v1/events" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/x-ndjson' --data-binary @-
echo

# 5. ... and query node 3 (it applies the stream within a second).
sleep 1
curl -s -X POST "http://127.0.0.1:8083/metrics-api/v3/realtime/metrics/sessions" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"group\":\"acme\",\"metrics\":[\"session.initiated\"],\"downsampling\":\"hour\",
       \"start\":\"$(date -u -d '-1 hour' '+%Y/%m/%d %H:00:00')\",\"end\":\"$(date -u -d '+1 hour' '+%Y/%m/%d %H:00:00')\"}"
echo
echo "the token: $TOKEN"
echo "Ctrl-C stops the nodes and the NATS servers; state stays in $DIR."
wait
