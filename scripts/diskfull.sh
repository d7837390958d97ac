#!/usr/bin/env bash
# A real full disk: runs the server over a 6 MB tmpfs, fills it while events flow, checks for
# 503s that accept nothing, then frees space and checks the server recovers by itself and the
# answers equal exactly the acknowledged events. Needs root to mount the tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test -p ocp-metrics --test diskfull -- --nocapture
