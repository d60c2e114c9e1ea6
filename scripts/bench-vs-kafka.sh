#!/usr/bin/env bash
# Side by side on this machine, in one run: Sluice and Apache Kafka 4.1 under
# the same bench workload, acks 0/1/all, in two fair pairings:
#   durable:  Sluice's default (fdatasync per batch, group commit) vs Kafka
#             with log.flush.interval.messages=1 (fsync per batch)
#   cached:   Kafka's default (no fsync; the page cache) vs Sluice with
#             write caching (flush.messages huge, flush.ms 1000)
# plus the machine's ceilings measured in the same run: loopback TCP
# (iperf3) and the disk's O_DIRECT+fdatasync append bandwidth (fio).
# Not part of CI.
#
#   scripts/bench-vs-kafka.sh [bench produce options]
#   (default: --acks 0,1,all --partitions 4 --producers 2 --duration-s 10 --warmup-s 5)
#
# Results: target/bench-vs-kafka/{*.json,*.hgrm,*.svg,*.png,ceilings.txt}
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-vs-kafka
rm -rf "$out" && mkdir -p "$out"
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(--acks 0,1,all --partitions 4 --producers 2 --duration-s 10 --warmup-s 5)
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    missing=()
    command -v iperf3 >/dev/null || missing+=(iperf3)
    command -v fio >/dev/null || missing+=(fio)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
cargo build --release -j2 -p broker -p bench >&2
bench=target/release/bench
sluice_port=19500
kafka_port=19600

run_sluice() {
    local label=$1; shift
    local dir; dir=$(mktemp -d "$PWD/$out/sluice-data.XXXX")
    target/release/broker --listen 127.0.0.1:$sluice_port --data-dir "$dir" "$@" 2>"$out/$label.log" &
    local pid=$!
    for _ in $(seq 300); do grep -q "sluice broker ready" "$out/$label.log" && break; sleep 0.1; done
    echo "== $label" >&2
    "$bench" produce --bootstrap 127.0.0.1:$sluice_port --label "$label" \
        --json "$out/$label.json" --hgrm-dir "$out" "${args[@]}"
    kill "$pid"; wait "$pid" || true
    rm -rf "$dir"
}

run_kafka() {
    local label=$1 properties=$2
    KAFKA_PROPERTIES="$properties" bench/peers/kafka.sh start $kafka_port "$PWD/$out/kafka-data" >&2
    echo "== $label" >&2
    "$bench" produce --bootstrap 127.0.0.1:$kafka_port --label "$label" \
        --json "$out/$label.json" --hgrm-dir "$out" "${args[@]}" || true
    bench/peers/kafka.sh stop "$PWD/$out/kafka-data"
    rm -rf "$out/kafka-data"
}

run_sluice sluice-durable
run_kafka kafka-fsync-per-batch "log.flush.interval.messages=1"
run_sluice sluice-write-caching --set log.flush.interval.messages=9223372036854775807 --set log.flush.interval.ms=1000
run_kafka kafka-default ""

{
    echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F)"
    if command -v iperf3 >/dev/null; then
        iperf3 -s -1 -p 19700 >/dev/null 2>&1 &
        sleep 0.5
        iperf3 -c 127.0.0.1 -p 19700 -t 3 -f m | awk '/receiver/ {print "loopback TCP (iperf3, 1 stream): " $7 " " $8}'
    fi
    if command -v fio >/dev/null; then
        for bs in 128k 1m; do
            fio --name=append --filename="$out/fio.0" --rw=write --bs=$bs --size=256m --direct=1 \
                --fdatasync=1 --ioengine=psync --fallocate=none --output-format=terse --terse-version=3 2>/dev/null |
                awk -F';' -v bs=$bs '{printf "disk O_DIRECT append + fdatasync per %s write (fio): %.1f MiB/s\n", bs, $48/1024}'
            rm -f "$out/fio.0"
        done
    fi
} | tee "$out/ceilings.txt"

echo "== durable: fsync per batch on both"
"$bench" compare "$out/sluice-durable.json" "$out/kafka-fsync-per-batch.json" \
    --title "Durable (fsync per batch): produce-ack latency" --svg "$out/durable.svg" --png "$out/durable.png"
echo "== cached: no fsync per batch on both"
"$bench" compare "$out/sluice-write-caching.json" "$out/kafka-default.json" \
    --title "Write caching (no fsync per batch): produce-ack latency" --svg "$out/cached.svg" --png "$out/cached.png"
