#!/usr/bin/env bash
# Crash torture: SIGKILL the server at random moments under load, restart it, repeat; then check
# that every query endpoint equals a from-scratch recomputation of the acknowledged events.
#
#   scripts/torture.sh            long mode: 60 cycles, release build (a few minutes)
#   scripts/torture.sh --short    CI mode: 5 cycles, debug build (seconds once built)
#
# Environment: TORTURE_CYCLES, TORTURE_EVENTS_PER_CYCLE, TORTURE_SEED, TORTURE_PRODUCERS override
# the mode's defaults. The test prints cycles, events, acknowledged, lost and duplicated.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=long
case "${1:-}" in
  --short) mode=short ;;
  --long | "") mode=long ;;
  *) echo "usage: $0 [--short|--long]" >&2; exit 2 ;;
esac

if [ "$mode" = short ]; then
  # Fixed inputs in CI (the kill moments still vary with timing).
  export TORTURE_CYCLES="${TORTURE_CYCLES:-5}"
  export TORTURE_SEED="${TORTURE_SEED:-1}"
  profile=()
else
  export TORTURE_CYCLES="${TORTURE_CYCLES:-60}"
  export TORTURE_EVENTS_PER_CYCLE="${TORTURE_EVENTS_PER_CYCLE:-5000}"
  export TORTURE_SEED="${TORTURE_SEED:-$(date +%s)}"
  profile=(--release)
fi
echo "torture: mode $mode, $TORTURE_CYCLES cycles, seed $TORTURE_SEED (rerun with TORTURE_SEED=$TORTURE_SEED)"
exec cargo test "${profile[@]}" -p ocp-metrics --test torture -- --nocapture
