#!/usr/bin/env bash
# Fuzzes the storage batch parser with cargo-fuzz (libFuzzer). Not part of
# CI: it needs a nightly toolchain and runs for as long as you ask.
#
#   scripts/fuzz-storage.sh [SECONDS]     # default 60
#
# Crashes land in storage/fuzz/artifacts/batch_parse/; reproduce one with
#   (cd storage && cargo +nightly fuzz run batch_parse fuzz/artifacts/batch_parse/<file>)
set -euo pipefail
cd "$(dirname "$0")/../storage"
seconds=${1:-60}
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
cargo +nightly fuzz run batch_parse -j1 -- -max_total_time="$seconds" -max_len=4096
