#!/usr/bin/env bash
# Alternating A/B produce benchmark of two broker binaries on this machine:
# ROUNDS rounds, each starting broker A then broker B (fresh data dir, free
# port, --cores CORES), running the same `bench produce` against each, and
# reading the broker's CPU time (user + system, /proc/PID/stat) over the
# run. Prints every run and the median per (binary, acks). Outside CI.
#
#   scripts/bench-ab.sh BROKER_A BROKER_B [ROUNDS] [-- BENCH_ARGS...]
#   e.g. scripts/bench-ab.sh /work/before/broker target/release/broker 3
#
# Default bench args: --acks 1,all --partitions 4 --producers 2
#   --duration-s 8 --warmup-s 3 (1 KiB records, 16 KiB batches)
set -euo pipefail
cd "$(dirname "$0")/.."
a=${1:?broker A}; b=${2:?broker B}; rounds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
bench_args=("$@")
[ ${#bench_args[@]} -eq 0 ] && bench_args=(--acks 1,all --partitions 4 --producers 2 --duration-s 8 --warmup-s 3)
cores=${CORES:-1}
bench=${BENCH:-target/release/bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_one() { # name binary round
    local name=$1 binary=$2 round=$3 port dir pid
    port=$(free_port); dir="$work/$name-$round"; mkdir -p "$dir"
    "$binary" --listen "127.0.0.1:$port" --data-dir "$dir/data" --cores "$cores" 2>"$dir/broker.log" &
    pid=$!
    for _ in $(seq 1 200); do grep -q "sluice broker ready" "$dir/broker.log" && break; sleep 0.05; done
    local before; before=$(cpu_ticks "$pid")
    "$bench" produce --bootstrap "127.0.0.1:$port" "${bench_args[@]}" --json "$dir/report.json" >"$dir/bench.out" 2>&1
    local after; after=$(cpu_ticks "$pid")
    kill -TERM "$pid"; wait "$pid" || true
    rm -rf "$dir/data" # gigabytes per run: do not let the disk fill across rounds
    python3 - "$dir/report.json" "$name" "$round" "$(( after - before ))" "$tick" <<'PY'
import json, sys
report, name, round_, ticks, tick = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
runs = json.load(open(report))["runs"]
total_mb = sum(r["mb_per_s"] * r["seconds"] for r in runs)
cpu_s = ticks / tick
for r in runs:
    l = r["latency_ms"]
    print(f"{name}\t{round_}\tacks={r['acks']}\t{r['mb_per_s']:.1f}\t{l['p50']:.3f}\t{l['p99']:.3f}\t{l['p99.9']:.3f}\t{r['errors']}\t{cpu_s / max(total_mb, 1e-9) * 1000:.2f}")
PY
}

echo -e "binary\tround\tacks\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\tbroker CPU ms/MB (whole run incl. warm-up)" | tee "$work/all.tsv"
for round in $(seq 1 "$rounds"); do
    run_one A "$a" "$round" | tee -a "$work/all.tsv"
    run_one B "$b" "$round" | tee -a "$work/all.tsv"
done
echo
echo "medians over $rounds rounds (A = $a, B = $b):"
python3 - "$work/all.tsv" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for r in rows:
    by[(r[0], r[2])].append(r)
print("binary\tacks\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\tCPU ms/MB")
for (name, acks), rs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    print(f"{name}\t{acks}\t{med(3):.1f}\t{med(4):.3f}\t{med(5):.3f}\t{med(6):.3f}\t{med(8):.2f}")
PY
