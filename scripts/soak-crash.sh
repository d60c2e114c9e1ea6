#!/usr/bin/env bash
# The single-node crash soak, outside CI: tests/clients/test_crash_soak.py
# with ROUNDS SIGKILL/restart rounds (CI runs 20) against the release
# broker, with `bench produce` (acks=all, its own topic) as extra load in
# every round. The checker: every acknowledged record of the idempotent
# producer read once at its offset, per-key order, committed group offsets
# never going backwards. SEED repeats a run's kill points.
#
#   scripts/soak-crash.sh [ROUNDS]        (default 1000)
#   SEED=123 scripts/soak-crash.sh 50
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1000}
scripts/setup-test-env.sh >/dev/null
cargo build --release -j2 -p broker -p bench >&2
log=target/soak-crash.log
started=$SECONDS
if env SLUICE_BROKER_BIN=target/release/broker SLUICE_CRASH_BENCH=target/release/bench \
    SLUICE_CRASH_ROUNDS=$rounds ${SEED:+SLUICE_CRASH_SEED=$SEED} \
    .venv/bin/pytest -q -s -p no:warnings tests/clients/test_crash_soak.py >"$log" 2>&1; then
    result=ok
else
    result=FAILED
fi
grep -E "^seed|^round" "$log" | tail -3 || true
echo "crash soak: $rounds rounds, $result in $((SECONDS - started)) s (log: $log)"
[ "$result" = ok ]
