#!/usr/bin/env bash
# Builds Sluice and starts the broker on 127.0.0.1:9092 with ./data as its
# data dir. Extra arguments go to the broker, e.g.:
#   ./run.sh --set num.partitions=3
# Stop it with Ctrl-C (it flushes and closes its logs).
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v git >/dev/null 2>&1 || need_apt+=(git)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
    else
        echo "please install: ${need_apt[*]} (glommio's build needs a C compiler and git)" >&2
        exit 1
    fi
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust 1.85+ from https://rustup.rs, then re-run ./run.sh" >&2
    exit 1
fi

cargo build --release -j2 -p broker
exec target/release/broker --listen 127.0.0.1:9092 --data-dir ./data "$@"
