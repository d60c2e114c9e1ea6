#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, Rust tests (unit, integration,
# property, crash) and the real-client suite (confluent-kafka, kafka-python,
# kcat) against the broker binary. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

scripts/setup-test-env.sh
cargo fmt --all -- --check
cargo clippy -j2 --workspace --all-targets -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Doc-tests are skipped (there are none) so the run ends on a real total.
cargo test -j2 --workspace --lib --bins --tests 2>&1 | tee "$log"
cargo build -j2 -p broker -p bench -p tools
.venv/bin/pytest -q -p no:warnings tests/clients 2>&1 | tee -a "$log"

awk '/^test result:/ { p += $4; f += $6 }
     / passed/ && /^[0-9]+ passed|, [0-9]+ passed/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
