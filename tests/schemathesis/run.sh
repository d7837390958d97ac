#!/usr/bin/env bash
# Schemathesis against a running server: every operation of GET /openapi.json gets a bounded
# number of generated requests (valid and invalid), and every answer is checked: no 5xx, a
# status the document lists for that operation, its content type, and its body against the
# schema. Exits non-zero on any failure.
#
# Builds and starts the debug binary on a free port
# with a fresh data dir, creates a personal access token through the admin API, then runs
# schemathesis twice: the operations that take a bearer token (with that token), and the admin
# operations and /metrics (with the admin token, which also opens /metrics). Schemathesis is installed with pip into a venv under the
# cargo target dir.
#
# Environment: OCP_METRICS_ADMIN_TOKEN (at least 32 characters; a random one when unset),
# SCHEMATHESIS_MAX_EXAMPLES (generated cases per operation, default 25).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out="$target/schemathesis"
mkdir -p "$out"

# Pinned so that a new release's checks cannot change the verdict unannounced.
schemathesis_version=4.32.5
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}
venv="$target/schemathesis-venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

# Always built, so a stale binary is never the one tested (a no-op after `cargo test`).
(cd "$root" && cargo build --quiet -p ocp-metrics)
bin="$target/debug/ocp-metrics"

admin_token=${OCP_METRICS_ADMIN_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')}
export OCP_METRICS_ADMIN_TOKEN="$admin_token"
data=$(mktemp -d)
"$bin" serve --listen 127.0.0.1:0 --data-dir "$data" >"$out/server.out" 2>"$out/server.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT

base=""
for _ in $(seq 1 100); do
  base=$(grep -oE 'listening on http://[0-9.:]+' "$out/server.out" 2>/dev/null | sed 's/listening on //' || true)
  [ -n "$base" ] && break
  sleep 0.1
done
[ -n "$base" ] || { echo "the server did not start:"; cat "$out/server.err"; exit 1; }
for _ in $(seq 1 100); do
  curl -fs "$base/readyz" >/dev/null && break
  sleep 0.1
done

token=$(curl -fsS -X POST "$base/admin/v1/tokens" \
  -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
  -d '{"name": "schemathesis", "groups": ["*"], "scopes": ["metrics:read", "events:write"]}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

# NDJSON bodies need a serializer of their own.
export SCHEMATHESIS_HOOKS="$here/hooks.py"
# An admin change writes and fsyncs the credentials file; on a CI machine busy with builds one
# fsync has taken over 10 s, which is slow, not wrong: the bound is generous so that only a hang
# fails the run.
request_timeout_s=30
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
# One worker: with two, schemathesis on CPython 3.11 once died of its own thread-unsafe AST
# compilation ("SystemError: AST constructor recursion depth mismatch"), which says nothing
# about the server.
run() {
  local name=$1 credential=$2
  shift 2
  echo "--- schemathesis: $name"
  "$venv/bin/st" run "$base/openapi.json" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --phases examples,coverage,fuzzing \
    --seed 1 \
    --workers 1 \
    --request-timeout "$request_timeout_s" \
    --no-color \
    -H "Authorization: Bearer $credential" \
    "$@"
}

# Schemathesis keeps a cache in its working directory: keep it out of the work tree.
cd "$out"
status=0
run "bearer-token operations" "$token" --exclude-path-regex '^/(admin/|metrics$)' || status=1
run "admin operations" "$admin_token" --include-path-regex '^/(admin/|metrics$)' || status=1
if [ "$status" -ne 0 ]; then
  echo "schemathesis found failures (server log: $out/server.err)"
fi
exit "$status"
