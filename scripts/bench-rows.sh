#!/usr/bin/env bash
# The single-node rows of docs/benchmarks.md, for two broker binaries,
# alternating: ROUNDS rounds, each running every row against a fresh
# broker A and then a fresh broker B (--cores CORES, free port, fresh data
# dir). The rows are those of "Broker: produce latency across acks" and
# "Broker: fetch throughput" (1 producer connection, 1 partition unless
# said), so a change can be checked for a regression of any of them (the
# performance issue's "no regression of any other row"):
#
#   acks 0/1/all   bench produce --acks 0,1,all --duration-s 5 --warmup-s 1
#   128k 1/all     ... --batch-bytes 131072 --acks 1,all
#   rate50k 1/all  ... --acks 1,all --rate 50000 (open loop, 51 MB/s)
#   fetch          bench consume --repeat 3 of 1.6 M records (~1.7 GB)
#                  in 4 partitions written by bench produce --acks 1
#                  --batch-bytes 131072 --messages 1600000 (the same
#                  bytes for both binaries, however fast each writes
#                  them; most reads past the tail cache)
#
# A row's acks runs share one topic, so a fast machine writes up to ~12 GB
# into TMPDIR before it is deleted (16k acks=0 at 1.4 GB/s): give it that
# much free space, or the broker refuses appends below its free-space floor.
#
# Every produce row reports the broker's CPU per MB (--broker-pid); the
# fetch row reads the broker's /proc/PID/stat around bench consume. Prints
# every run and then the median per (row, binary). Outside CI.
#
#   scripts/bench-rows.sh BROKER_A BROKER_B [ROUNDS]
#   (BENCH and ADMIN name other bench and sluice binaries; ROWS picks
#   rows, default "16k 128k rate50k fetch")
set -euo pipefail
cd "$(dirname "$0")/.."
a=${1:?broker A}; b=${2:?broker B}; rounds=${3:-3}
cores=${CORES:-1}
bench=${BENCH:-target/release/bench}
admin=${ADMIN:-target/release/sluice}
rows=" ${ROWS:-16k 128k rate50k fetch} "
work=$(mktemp -d)
# A failed row ends the run; no broker outlives it.
# set -e would end the trap at a kill of a broker already gone.
trap 'xargs -r kill 2>/dev/null <"$work/pids" || true; rm -rf "$work"' EXIT
: >"$work/pids"
tick=$(getconf CLK_TCK)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

produce_row() { # name round label port pid bench-args...
    local name=$1 round=$2 label=$3 port=$4 pid=$5 dir="$work/$1-$2"
    shift 5
    "$bench" produce --bootstrap "127.0.0.1:$port" --broker-pid "$pid" \
        --json "$dir/$label.json" "$@" >"$dir/$label.out" 2>&1
    python3 - "$dir/$label.json" "$name" "$round" "$label" <<'PY'
import json, sys
report, name, round_, label = sys.argv[1:5]
for r in json.load(open(report))["runs"]:
    l, c = r["latency_ms"], r["broker_cpu"]
    lat = lambda k: f"{l[k]:.3f}" if str(r["acks"]) != "0" else "-"
    print(f"{name}\t{round_}\t{label} acks={r['acks']}\t{r['mb_per_s']:.1f}\t{lat('p50')}\t{lat('p99')}\t{lat('p99.9')}\t{c['cpu_ms_per_mb']:.2f}")
PY
}

fetch_row() { # name round port pid
    local name=$1 round=$2 port=$3 pid=$4 dir="$work/$1-$2" before after
    "$admin" topic create --bootstrap "127.0.0.1:$port" --partitions 4 data >"$dir/data.out" 2>&1
    "$bench" produce --bootstrap "127.0.0.1:$port" --topic data --keep-topic --partitions 4 \
        --acks 1 --batch-bytes 131072 --messages 1600000 --warmup-s 0 >>"$dir/data.out" 2>&1
    before=$(cpu_ticks "$pid")
    "$bench" consume --bootstrap "127.0.0.1:$port" --topic data --repeat 3 >"$dir/consume.out" 2>&1
    after=$(cpu_ticks "$pid")
    # bench consume prints: run records MB records/s MB/s (its own) cpu
    # ms/MB. The row: the median read's MB/s, and the broker's CPU over
    # all three reads per MB read.
    python3 - "$dir/consume.out" "$name" "$round" $((after - before)) "$tick" <<'PY'
import statistics, sys
out, name, round_, ticks, hz = sys.argv[1:6]
runs = [l.split() for l in open(out) if l.split() and l.split()[0].isdigit()]
mb = sum(float(r[2]) for r in runs)
rate = statistics.median(float(r[4]) for r in runs)
print(f"{name}\t{round_}\tfetch\t{rate:.1f}\t-\t-\t-\t{int(ticks) * 1000 / int(hz) / mb:.2f}")
PY
}

run_arm() { # name binary round
    local name=$1 binary=$2 round=$3 port dir pid
    port=$(free_port); dir="$work/$name-$round"; mkdir -p "$dir"
    "$binary" --listen "127.0.0.1:$port" --data-dir "$dir/data" --cores "$cores" >/dev/null 2>"$dir/broker.log" &
    pid=$!
    echo "$pid" >>"$work/pids"
    for _ in $(seq 1 200); do grep -q "sluice broker ready" "$dir/broker.log" && break; sleep 0.05; done
    if [[ $rows == *" 16k "* ]]; then
        produce_row "$name" "$round" 16k "$port" "$pid" --acks 0,1,all --duration-s 5 --warmup-s 1
    fi
    if [[ $rows == *" 128k "* ]]; then
        produce_row "$name" "$round" 128k "$port" "$pid" --topic b128 --batch-bytes 131072 --acks 1,all --duration-s 5 --warmup-s 1
    fi
    if [[ $rows == *" rate50k "* ]]; then
        produce_row "$name" "$round" rate50k "$port" "$pid" --topic rate --acks 1,all --rate 50000 --duration-s 5 --warmup-s 1
    fi
    if [[ $rows == *" fetch "* ]]; then
        fetch_row "$name" "$round" "$port" "$pid"
    fi
    kill -TERM "$pid"; wait "$pid" || true
    rm -rf "$dir/data"
}

echo -e "binary\tround\trow\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\tbroker CPU ms/MB" | tee "$work/all.tsv"
for round in $(seq 1 "$rounds"); do
    run_arm A "$a" "$round" | tee -a "$work/all.tsv"
    run_arm B "$b" "$round" | tee -a "$work/all.tsv"
done
echo
echo "medians over $rounds rounds (A = $a, B = $b):"
python3 - "$work/all.tsv" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
by = collections.defaultdict(list)
order = []
for r in rows:
    if r[2] not in order:
        order.append(r[2])
    by[(r[2], r[0])].append(r)
med = lambda rs, i: "-" if rs[0][i] == "-" else f"{statistics.median(float(r[i]) for r in rs):.3f}".rstrip("0").rstrip(".")
print("row\tbinary\tMB/s\tp50 ms\tp99 ms\tp99.9 ms\tbroker CPU ms/MB")
for row in order:
    for name in ("A", "B"):
        rs = by.get((row, name))
        if rs:
            print(f"{row}\t{name}\t" + "\t".join(med(rs, i) for i in range(3, 8)))
PY
