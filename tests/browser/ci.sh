#!/usr/bin/env bash
# Browser test against a real demo server: installs Debian's chromium and the test's npm
# packages when missing, starts `ocp-metrics serve --demo` on a free port with a fresh data dir,
# waits until real-time and batch data are visible, then drives the page (run.mjs).
# Screenshots land in tests/browser/out/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/out"
mkdir -p "$out"

if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

# Always build: cargo rebuilds only what changed, and a binary left over from an older
# checkout would test stale code.
(cd "$root" && cargo build --release -p ocp-metrics)
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
bin="$target/release/ocp-metrics"

data=$(mktemp -d)
"$bin" serve --demo --demo-days 31 --listen 127.0.0.1:0 --data-dir "$data" >"$out/server.out" 2>"$out/server.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT

for _ in $(seq 1 100); do grep -q '^  token:' "$out/server.out" 2>/dev/null && break; sleep 0.2; done
base=$(grep -oE 'listening on http://[0-9.:]+' "$out/server.out" | sed 's/listening on //')
token=$(grep -oE '^  token: +[^ ]+' "$out/server.out" | awk '{print $2}')
[ -n "$base" ] && [ -n "$token" ] || { echo "demo server did not start"; cat "$out/server.err"; exit 1; }

# Wait until the backfill has reached the last two hours (it runs oldest first).
now_body() {
  python3 - "$1" <<'PY'
import json, sys, datetime
now = datetime.datetime.now(datetime.timezone.utc)
f = lambda t: t.strftime("%Y/%m/%d %H:%M:%S")
print(json.dumps({"metrics": ["session.initiated"], "filters": {}, "group": "ocp-qa", "downsampling": "hour",
                  "start": f(now - datetime.timedelta(hours=2)), "end": f(now + datetime.timedelta(minutes=5))}))
PY
}
for i in $(seq 1 180); do
  answer=$(curl -s -X POST "$base/metrics-api/v3/realtime/metrics/sessions" -H "Authorization: Bearer $token" -d "$(now_body x)" || true)
  if echo "$answer" | python3 -c 'import json,sys; a=json.load(sys.stdin); sys.exit(0 if sum(a[0]["dps"].values())>0 else 1)' 2>/dev/null; then
    echo "demo data ready after ${i} s"
    break
  fi
  sleep 1
done

node "$here/run.mjs" "$base" "$token" "$out"
