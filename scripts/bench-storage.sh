#!/usr/bin/env bash
# Storage benchmark (not part of CI): raw disk O_DIRECT + fdatasync append
# bandwidth with fio, then Sluice's durable log appends on the same disk, in
# alternating rounds, so every log number has a fio number taken a minute
# earlier and each result is a ratio. This VM's disk moves by tens of percent
# from minute to minute, so the summary is the median of the rounds' ratios.
#
#   scripts/bench-storage.sh [DIR] [TOTAL_MIB] [ROUNDS]
#
# DIR must be on the disk you care about (default: ./target/bench-storage).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/bench-storage}
total_mib=${2:-512}
rounds=${3:-3}
mkdir -p "$dir"

if ! command -v fio >/dev/null 2>&1; then
    echo "installing fio (Debian package)" >&2
    if [ "$(id -u)" -eq 0 ]; then apt-get update -qq && apt-get install -y -qq fio >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq fio >/dev/null; fi
fi
cargo build --release -j2 -p storage --example log_bench --example dma_source_memory >&2
bench=target/release/examples/log_bench
# The least a log that copies must do: a DMA write + fdatasync of a buffer
# memcpy'd just before (storage/examples/dma_source_memory.rs). On this VM it
# is well below fio's reused buffer at 1 MiB, so the log is shown against both.
floor_mib() {
    target/release/examples/dma_source_memory "$dir/floor" "$1" "$total_mib" |
        grep '"dma_copied"' | sed 's/.*"mib_per_s":\([0-9.]*\).*/\1/'
    rm -rf "$dir/floor"
}

# fio terse v3: field 48 is write bandwidth in KiB/s.
fio_mib() {
    rm -f "$dir"/fio.*
    fio --name=append --filename="$dir/fio.0" --rw=write --bs="$1" --size="${total_mib}m" \
        --direct=1 --fdatasync=1 --ioengine=psync --fallocate=none \
        --output-format=terse --terse-version=3 2>/dev/null |
        awk -F';' '{printf "%.1f", $48/1024}'
    rm -f "$dir"/fio.*
}

field() { echo "$1" | grep "\"test\":\"$2\"" | sed "s/.*\"$3\":\([0-9.]*\).*/\1/"; }

results=$(mktemp)
trap 'rm -f "$results"; rm -rf "$dir"' EXIT
printf '%-8s %-9s %-5s %10s %10s %6s %11s %6s %7s %7s %11s %10s\n' batch appenders round "log MiB/s" "fio MiB/s" "/fio" "floor MiB/s" "/floor" fsyncs "cpu ms" "cache MiB/s" "disk MiB/s"
for batch in 16384 131072 1048576; do
    for round in $(seq 1 "$rounds"); do
        raw=$(fio_mib "$batch")
        floor=$(floor_mib "$batch")
        for appenders in 1 16; do
            out=$("$bench" "$dir/log" "$batch" "$appenders" "$total_mib")
            log=$(field "$out" durable_append mib_per_s)
            ratio=$(awk -v a="$log" -v b="$raw" 'BEGIN { printf "%.0f", 100 * a / b }')
            to_floor=$(awk -v a="$log" -v b="$floor" 'BEGIN { printf "%.0f", 100 * a / b }')
            printf '%-8s %-9s %-5s %10s %10s %5s%% %11s %5s%% %7s %7s %11s %10s\n' "$batch" "$appenders" "$round" \
                "$log" "$raw" "$ratio" "$floor" "$to_floor" "$(field "$out" durable_append fdatasyncs)" \
                "$(field "$out" durable_append executor_cpu_ms)" \
                "$(field "$out" read_cache mib_per_s)" "$(field "$out" read_disk mib_per_s)"
            echo "$batch $appenders $log $raw $ratio $floor $to_floor" >>"$results"
        done
    done
done

echo
echo "median over $rounds rounds (range: lowest and highest round ratio)"
printf '%-8s %-9s %10s %10s %6s %12s %11s %6s %12s\n' batch appenders "log MiB/s" "fio MiB/s" "/fio" range "floor MiB/s" "/floor" range
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for batch in 16384 131072 1048576; do
    for appenders in 1 16; do
        rows=$(awk -v b="$batch" -v a="$appenders" '$1 == b && $2 == a' "$results")
        ratios=$(echo "$rows" | awk '{ print $5 }' | sort -n)
        floors=$(echo "$rows" | awk '{ print $7 }' | sort -n)
        printf '%-8s %-9s %10s %10s %5s%% %6s%%-%s%% %11s %5s%% %6s%%-%s%%\n' "$batch" "$appenders" \
            "$(echo "$rows" | awk '{ print $3 }' | median)" \
            "$(echo "$rows" | awk '{ print $4 }' | median)" \
            "$(echo "$ratios" | median)" "$(echo "$ratios" | head -1)" "$(echo "$ratios" | tail -1)" \
            "$(echo "$rows" | awk '{ print $6 }' | median)" \
            "$(echo "$floors" | median)" "$(echo "$floors" | head -1)" "$(echo "$floors" | tail -1)"
    done
done
