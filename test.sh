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
cargo test -j2 --workspace
