#!/usr/bin/env bash
# Alternating A/B produce benchmark of two broker binaries on this machine:
# ROUNDS rounds, each starting broker A then broker B (fresh data dir, free
# port, --cores CORES, plus BROKER_ARGS), running the same `bench produce`
# against each with --broker-pid, so bench reads the broker's user and
# system CPU over the measured window (/proc/PID/stat). Prints every run and
# the median per (binary, acks): MB/s, latency, broker CPU per 16 KiB batch
# (user, system) and per MB. Outside CI.
#
# SCRAPE=1 adds a third run per round, "B+scrape": binary B again with its
# /metrics fetched once a second during the run (every arm then gets a free
# sluice.admin.listen port, so only the scraping differs), which measures
# what the admin endpoint costs the hot path.
#
# BENCH_B=PATH runs arm B with that bench binary instead of BENCH (default
# target/release/bench), to compare two load generators against the same
# broker: pass the same broker twice. Every row also shows bench's own CPU
# per message.
#
#   scripts/bench-ab.sh BROKER_A BROKER_B [ROUNDS] [-- BENCH_ARGS...]
#   e.g. scripts/bench-ab.sh /work/before/broker target/release/broker 3
#
# PERF=1 also counts, with perf stat on the broker over the measured
# window (after --warmup-s, for --duration-s: pass both), its io_uring
# submissions, context switches and socket receives (recvfrom + recvmsg
# syscalls), printed per MB written (needs perf).
#
# PIN=1 gives broker and load generator a CPU each (broker --set
# sluice.cpus=0, bench under taskset -c 1), as when clients run on other
# machines; PIN=B does so for arm B only (and B+scrape; same binary twice:
# what sharing the CPUs with the client costs). Meant for --cores 1 (the
# default): sluice.cpus=0 names one CPU, so do not combine PIN with CORES_B.
#
# CORES_B=N gives arm B (and B+scrape) --cores N instead of CORES (default
# 1): one binary twice compares core counts on the same run.
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

arg_of() { # the value after FLAG in the bench args, if any
    local i
    for ((i = 0; i < ${#bench_args[@]} - 1; i++)); do
        [ "${bench_args[i]}" = "$1" ] && { echo "${bench_args[i + 1]}"; return; }
    done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_one() { # name binary round [scrape]
    local name=$1 binary=$2 round=$3 scrape=${4:-} port dir pid admin_args=() scraper= bench=$bench
    [ "$name" = B ] && bench=${BENCH_B:-$bench}
    local pin_broker=() bench_run=() cores=$cores
    [[ "$name" = B* ]] && cores=${CORES_B:-$cores}
    if [ "${PIN:-}" = 1 ] || { [ "${PIN:-}" = B ] && [[ "$name" = B* ]]; }; then
        pin_broker=(--set sluice.cpus=0)
        bench_run=(taskset -c 1)
    fi
    port=$(free_port); dir="$work/$name-$round"; mkdir -p "$dir"
    if [ -n "${SCRAPE:-}" ]; then
        admin_port=$(free_port)
        admin_args=(--set "sluice.admin.listen=127.0.0.1:$admin_port")
    fi
    # shellcheck disable=SC2086 # BROKER_ARGS is a list of flags
    "$binary" --listen "127.0.0.1:$port" --data-dir "$dir/data" --cores "$cores" "${pin_broker[@]}" "${admin_args[@]}" ${BROKER_ARGS:-} 2>"$dir/broker.log" &
    pid=$!
    for _ in $(seq 1 200); do grep -q "sluice broker ready" "$dir/broker.log" && break; sleep 0.05; done
    if [ -n "$scrape" ]; then
        (while sleep 1; do curl -s -o /dev/null "http://127.0.0.1:$admin_port/metrics"; done) &
        scraper=$!
    fi
    local counter=
    if [ -n "${PERF:-}" ]; then
        (sleep "$(arg_of --warmup-s)" && exec perf stat -x, -o "$dir/perf.csv" \
            -e io_uring:io_uring_submit_req -e context-switches \
            -e syscalls:sys_enter_recvfrom -e syscalls:sys_enter_recvmsg \
            -p "$pid" -- sleep "$(arg_of --duration-s)") &
        counter=$!
    fi
    "${bench_run[@]}" "$bench" produce --bootstrap "127.0.0.1:$port" "${bench_args[@]}" --broker-pid "$pid" --json "$dir/report.json" >"$dir/bench.out" 2>&1
    [ -n "$counter" ] && { wait "$counter" || true; }
    [ -n "$scraper" ] && { kill "$scraper"; wait "$scraper" 2>/dev/null || true; }
    kill -TERM "$pid"; wait "$pid" || true
    rm -rf "$dir/data" # gigabytes per run: do not let the disk fill across rounds
    python3 - "$dir/report.json" "$name" "$round" "$dir/perf.csv" "$(arg_of --duration-s)" <<'PY'
import json, os, sys
report, name, round_, perf, duration = sys.argv[1:6]
counts = {}
if os.path.exists(perf):
    for line in open(perf):
        f = line.strip().split(",")
        if len(f) > 2 and f[0].isdigit():
            counts[f[2]] = int(f[0])
for r in json.load(open(report))["runs"]:
    l, c = r["latency_ms"], r["broker_cpu"]
    mb = r["mb_per_s"] * float(duration or 0)
    per_mb = lambda e: f"{counts[e] / mb:.0f}" if e in counts and mb > 0 else "-"
    receives = ("syscalls:sys_enter_recvfrom", "syscalls:sys_enter_recvmsg")
    receives_per_mb = lambda: f"{sum(counts[e] for e in receives) / mb:.0f}" if all(e in counts for e in receives) and mb > 0 else "-"
    print(f"{name}\t{round_}\tacks={r['acks']}\t{r['mb_per_s']:.1f}\t{l['p50']:.3f}\t{l['p99']:.3f}\t{l['p99.9']:.3f}\t{r['errors']}\t{c['user_us_per_batch']:.1f}\t{c['system_us_per_batch']:.1f}\t{c['cpu_ms_per_mb']:.2f}\t{r['cpu_us_per_message']:.2f}\t{per_mb('io_uring:io_uring_submit_req')}\t{per_mb('context-switches')}\t{receives_per_mb()}")
PY
}

echo -e "binary\tround\tacks\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\terrors\tuser us/batch\tsys us/batch\tCPU ms/MB\tbench us/msg\tsubmissions/MB\tswitches/MB\treceives/MB" | tee "$work/all.tsv"
for round in $(seq 1 "$rounds"); do
    run_one A "$a" "$round" | tee -a "$work/all.tsv"
    run_one B "$b" "$round" | tee -a "$work/all.tsv"
    [ -n "${SCRAPE:-}" ] && run_one B+scrape "$b" "$round" scrape | tee -a "$work/all.tsv"
done
echo
echo "medians over $rounds rounds (A = $a, B = $b):"
python3 - "$work/all.tsv" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
for r in rows:
    by[(r[0], r[2])].append(r)
print("binary\tacks\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\tuser us/batch\tsys us/batch\tCPU ms/MB\tbench us/msg\tsubmissions/MB\tswitches/MB\treceives/MB")
for (name, acks), rs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    med = lambda i: statistics.median(float(r[i]) for r in rs)
    count = lambda i: f"{med(i):.0f}" if all(r[i] != "-" for r in rs) else "-"
    print(f"{name}\t{acks}\t{med(3):.1f}\t{med(4):.3f}\t{med(5):.3f}\t{med(6):.3f}\t{med(8):.1f}\t{med(9):.1f}\t{med(10):.2f}\t{med(11):.2f}\t{count(12)}\t{count(13)}\t{count(14)}")
PY
