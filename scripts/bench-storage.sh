#!/usr/bin/env bash
# Storage benchmark (not part of CI): raw disk O_DIRECT + fdatasync append
# bandwidth with fio, then Sluice's durable log appends on the same disk in
# the same run, so each result is also a ratio to the disk.
#
#   scripts/bench-storage.sh [DIR] [TOTAL_MIB]
#
# DIR must be on the disk you care about (default: ./target/bench-storage).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-storage}
total_mib=${2:-512}
mkdir -p "$dir"

if ! command -v fio >/dev/null 2>&1; then
    echo "installing fio (Debian package)" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq fio >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq fio >/dev/null; fi
fi
cargo build --release -j2 -p storage --example log_bench >&2
bench=target/release/examples/log_bench

# fio terse v3: field 48 is write bandwidth in KiB/s.
fio_mib() {
    rm -f "$dir"/fio.*
    fio --name=append --filename="$dir/fio.0" --rw=write --bs="$1" --size="${total_mib}m" \
        --direct=1 --fdatasync=1 --ioengine=psync --fallocate=none \
        --output-format=terse --terse-version=3 2>/dev/null |
        awk -F';' '{printf "%.1f", $48/1024}'
    rm -f "$dir"/fio.*
}

printf '%-10s %-9s %12s %12s %7s %10s %12s %12s\n' batch appenders "log MiB/s" "fio MiB/s" ratio fsyncs "cache MiB/s" "disk MiB/s"
for batch in 16384 131072 1048576; do
    raw=$(fio_mib "$batch")
    for appenders in 1 16; do
        out=$("$bench" "$dir/log" "$batch" "$appenders" "$total_mib")
        log=$(echo "$out" | grep durable_append | sed 's/.*"mib_per_s":\([0-9.]*\).*/\1/')
        fsyncs=$(echo "$out" | grep durable_append | sed 's/.*"fdatasyncs":\([0-9]*\).*/\1/')
        cache=$(echo "$out" | grep read_cache | sed 's/.*"mib_per_s":\([0-9.]*\).*/\1/')
        disk=$(echo "$out" | grep read_disk | sed 's/.*"mib_per_s":\([0-9.]*\).*/\1/')
        ratio=$(awk -v a="$log" -v b="$raw" 'BEGIN { printf "%.0f%%", 100 * a / b }')
        printf '%-10s %-9s %12s %12s %7s %10s %12s %12s\n' "$batch" "$appenders" "$log" "$raw" "$ratio" "$fsyncs" "$cache" "$disk"
    done
done
rm -rf "$dir"
