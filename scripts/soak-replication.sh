#!/usr/bin/env bash
# The replication soak, outside CI: the leader-SIGKILL test with ROUNDS
# kill/restart rounds under an idempotent acks=all producer (Jepsen-style
# checker: nothing acknowledged lost, no duplicates, per-key order, offsets
# as acknowledged, replicas byte-identical), then REPEAT runs each of the
# paused-follower test and the cut-off-leader test (network namespaces the
# test creates; needs root). Prints one line per run and a summary.
#
#   scripts/soak-replication.sh [ROUNDS] [REPEAT]     (default 200 5)
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}; repeat=${2:-5}
scripts/setup-test-env.sh >/dev/null
cargo build -j2 -p broker -p tools >&2 || exit 1
pytest=(.venv/bin/pytest -q -p no:warnings)
failed=0; runs=0
run() { # label, pytest args...
    local label=$1; shift
    local started=$SECONDS
    if "${pytest[@]}" "$@" >"target/soak-$label.log" 2>&1; then
        echo "ok   $label ($((SECONDS - started)) s)"
    else
        echo "FAIL $label ($((SECONDS - started)) s): target/soak-$label.log"
        failed=$((failed + 1))
    fi
    runs=$((runs + 1))
}
SLUICE_JEPSEN_ROUNDS=$rounds run "leader-killed-x$rounds" tests/clients/test_replication.py -k leader_killed
for i in $(seq "$repeat"); do
    run "paused-follower-$i" tests/clients/test_replication.py -k paused_follower
    run "isolated-leader-$i" tests/clients/test_isolated_leader.py
done
echo "soak: $runs runs, $failed failed (leader rounds: $rounds)"
[ "$failed" -eq 0 ]
