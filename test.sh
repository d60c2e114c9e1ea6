#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit,
# integration, property, crash). Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
fi

cargo fmt --all -- --check
cargo clippy -j2 --workspace --all-targets -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Doc-tests are skipped (there are none) so the run ends on a real total.
cargo test -j2 --workspace --lib --bins --tests 2>&1 | tee "$log"
awk '/^test result:/ { p += $4; f += $6 } END { printf "total: %d passed, %d failed\n", p, f }' "$log"
