#!/usr/bin/env bash
# Produce latency on a compacted topic with the log cleaner running, against
# the same load with the cleaner off, in alternating rounds (one broker
# binary, --cores 1, fresh data dir each run). Outside CI.
#
#   scripts/bench-cleaner.sh [ROUNDS]
#
# Topic: 4 partitions, cleanup.policy=compact, 16 MiB segments,
# min.cleanable.dirty.ratio=0.1 (so passes keep coming); bench writes
# 1 KiB records over 10,000 uniform keys. Prints each run's MB/s, p50, p99,
# p99.9 and how many cleaning passes the broker logged.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
broker=${BROKER:-target/release/broker}
bench=${BENCH:-target/release/bench}
sluice=${SLUICE:-target/release/sluice}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo -e "cleaner\tround\tacks\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\tpasses"
for round in $(seq 1 "$rounds"); do
    for cleaner in true false; do
        dir="$work/$cleaner-$round"; mkdir -p "$dir"; port=$(free_port)
        "$broker" --listen "127.0.0.1:$port" --data-dir "$dir/data" --cores 1 \
            --set log.cleaner.enable=$cleaner --set log.cleaner.backoff.ms=200 2>"$dir/broker.log" &
        pid=$!
        for _ in $(seq 1 200); do grep -q "sluice broker ready" "$dir/broker.log" && break; sleep 0.05; done
        "$sluice" --bootstrap "127.0.0.1:$port" topic create compacted -p 4 \
            -c cleanup.policy=compact -c segment.bytes=16777216 -c min.cleanable.dirty.ratio=0.1 >/dev/null
        "$bench" produce --bootstrap "127.0.0.1:$port" --topic compacted --keep-topic --partitions 4 \
            --producers 2 --keys 10000 --acks 1,all --duration-s 10 --warmup-s 3 --json "$dir/r.json" >"$dir/bench.out" 2>&1
        kill -TERM "$pid"; wait "$pid" || true
        rm -rf "$dir/data"
        passes=$(grep -c "cleaned log" "$dir/broker.log" || true)
        python3 - "$dir/r.json" "$cleaner" "$round" "$passes" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["runs"]:
    l = r["latency_ms"]
    print(f"{sys.argv[2]}\t{sys.argv[3]}\tacks={r['acks']}\t{r['mb_per_s']:.1f}\t{l['p50']:.3f}\t{l['p99']:.3f}\t{l['p99.9']:.3f}\t{sys.argv[4]}")
PY
    done
done
