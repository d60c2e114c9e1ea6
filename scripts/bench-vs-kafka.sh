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
#   scripts/bench-vs-kafka.sh [--brokers N] [bench produce options]
#   (default: --acks 0,1,all --partitions 4 --producers 2 --duration-s 10 --warmup-s 5)
#
# --brokers 1 (the default): one Sluice broker vs one Kafka node.
# --brokers N (N >= 2, e.g. 3): N-node clusters on this machine, topic
# replication factor N with min.insync.replicas=2, in this order:
#   sluice-rf1-durable          one Sluice broker, RF 1 (the baseline)
#   sluice-rfN-durable          N nodes as scripts/cluster.sh starts them (--cores 1), default flush policy
#   kafka-rfN-fsync-per-batch   bench/peers/kafka.sh start-cluster N, log.flush.interval.messages=1
#   sluice-rfN-write-caching    every node with the single-node write-caching settings
#   kafka-rfN-default           Kafka's defaults
# then the charts cluster-durable.{svg,png} and cluster-cached.{svg,png}
# and summary.txt (the table and the ratios against the replication goals).
# Ports: Sluice single 19500, cluster 19510+ (controllers 19521+); Kafka
# single 19600, cluster 19600+ (controllers 19600+N+). Against a cluster
# bench sends to each partition's leader and, before each acks run, waits
# until the replicas have caught up.
#
# Results: target/bench-vs-kafka/{*.json,*.hgrm,*.svg,*.png,ceilings.txt}
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/bench-vs-kafka
rm -rf "$out" && mkdir -p "$out"
brokers=1
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --brokers) brokers=${2:?--brokers needs a value}; shift 2 ;;
        --brokers=*) brokers=${1#--brokers=}; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
[[ $brokers =~ ^[1-9]$ ]] || { echo "--brokers must be 1..9, not $brokers" >&2; exit 2; }
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
cargo build --release -j2 -p broker -p bench -p tools >&2
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

ceilings() {
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
}

# --- --brokers N: clusters -------------------------------------------------
# Sluice node i: client port 19510+i-1, controller port 19520+i.
sluice_cluster_port=19510
sluice_controller_port=19520
# kafka.sh start-cluster: node i's client port 19600+i-1, controller 19600+N+i-1.
kafka_cluster_port=19600
min_isr=$((brokers < 2 ? brokers : 2))
cluster_args=(--replication-factor "$brokers" --topic-config "min.insync.replicas=$min_isr")
rf="rf$brokers"
failed=()
# A cluster run that failed is recorded (the summary lists it), not fatal.
note_failure() { # label rc
    [ "$2" -eq 0 ] && return 0
    echo "!! $1 failed (exit $2); node logs in $out/$1.node-*.log" >&2
    failed+=("$1 (exit $2)")
}

# Runs bench against the cluster at 127.0.0.1:$2 with the topic at RF N;
# its output also goes to $out/$1.bench.log. Fails with bench's status.
bench_cluster() {
    local label=$1 port=$2 rc
    echo "== $label" >&2
    "$bench" produce --bootstrap "127.0.0.1:$port" --label "$label" \
        --json "$out/$label.json" --hgrm-dir "$out" "${args[@]}" "${cluster_args[@]}" \
        2>&1 | tee "$out/$label.bench.log"
    rc=${PIPESTATUS[0]}
    return "$rc"
}

# A Sluice cluster of N nodes, each started as scripts/cluster.sh starts
# one (combined broker + controller voter, --cores 1) but on this script's
# own ports, so that a cluster someone runs on cluster.sh's fixed ports
# does not collide: node i listens on 127.0.0.1:$sluice_cluster_port+i-1,
# its controller on $sluice_controller_port+i. The arguments after the
# label go to every node. Node logs: $out/LABEL.node-i.log.
run_sluice_cluster() {
    local label=$1; shift
    local dir="$PWD/$out/$label-cluster" rc=0 i voters="" waited
    local -a pids=()
    for i in $(seq 1 "$brokers"); do
        voters+="${voters:+,}$i@127.0.0.1:$((sluice_controller_port + i))"
    done
    for i in $(seq 1 "$brokers"); do
        local port=$((sluice_cluster_port + i - 1)) cport=$((sluice_controller_port + i))
        mkdir -p "$dir/node-$i"
        target/release/broker --data-dir "$dir/node-$i" --cores 1 --listen "127.0.0.1:$port" \
            --set "node.id=$i" --set "sluice.cpus=$(( (i - 1) % $(nproc) ))" --set sluice.admin.listen= \
            --set process.roles=broker,controller \
            --set "controller.quorum.voters=$voters" \
            --set "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport" \
            --set controller.listener.names=CONTROLLER "$@" \
            </dev/null >"$dir/node-$i/broker.log" 2>&1 &
        pids+=($!)
    done
    for i in $(seq 1 "$brokers"); do
        waited=0
        while ! grep -q "sluice broker ready" "$dir/node-$i/broker.log"; do
            if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null || [ "$waited" -ge 600 ]; then
                echo "!! $label: node $i not ready; the end of its log:" >&2
                tail -n 20 "$dir/node-$i/broker.log" >&2
                rc=1
                break 2
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    done
    if [ "$rc" -eq 0 ]; then bench_cluster "$label" "$sluice_cluster_port" || rc=$?; fi
    # SIGTERM to every node by its PID, SIGKILL after 30 s.
    kill "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 300); do
        local alive=0
        for i in "${pids[@]}"; do kill -0 "$i" 2>/dev/null && alive=1; done
        [ "$alive" -eq 1 ] || break
        sleep 0.1
    done
    for i in "${pids[@]}"; do kill -9 "$i" 2>/dev/null || true; done
    wait "${pids[@]}" 2>/dev/null || true
    for i in $(seq 1 "$brokers"); do cp -f "$dir/node-$i/broker.log" "$out/$label.node-$i.log" 2>/dev/null || true; done
    rm -rf "$dir"
    note_failure "$label" "$rc"
}

# An Apache Kafka cluster of N nodes (bench/peers/kafka.sh start-cluster)
# with the given server properties on every node.
run_kafka_cluster() {
    local label=$1 properties=$2
    local dir="$PWD/$out/$label-cluster" rc=0 i
    KAFKA_PROPERTIES="$properties" bench/peers/kafka.sh start-cluster "$brokers" "$kafka_cluster_port" "$dir" >&2 || rc=$?
    if [ "$rc" -eq 0 ]; then bench_cluster "$label" "$kafka_cluster_port" || rc=$?; fi
    bench/peers/kafka.sh stop "$dir"
    for i in $(seq 1 "$brokers"); do cp -f "$dir/node-$i/kafka.log" "$out/$label.node-$i.log" 2>/dev/null || true; done
    rm -rf "$dir"
    note_failure "$label" "$rc"
}

# jq FIELD of the acks=$2 run in $out/$1.json; empty when there is none.
field() {
    [ -f "$out/$1.json" ] || return 0
    jq -r --arg acks "$2" ".runs[] | select(.acks == \$acks) | $3" "$out/$1.json" 2>/dev/null || true
}

# "x.xx (goal OP limit: met|not met)" for a/b, or n/a if a run is missing.
ratio() {
    local a=$1 b=$2 op=$3 limit=$4
    if [ -z "$a" ] || [ -z "$b" ]; then echo "n/a (a run is missing)"; return; fi
    awk -v a="$a" -v b="$b" -v op="$op" -v limit="$limit" 'BEGIN {
        if (b + 0 == 0) { print "n/a (divide by 0)"; exit }
        r = a / b; ok = (op == ">=") ? (r >= limit) : (r <= limit)
        printf "%.2f (goal %s %s: %s)\n", r, op, limit, ok ? "met" : "NOT MET" }'
}

summary() {
    local label acks
    echo "machine: $(nproc) cores, $(uname -r), $(date -u '+%F %H:%M UTC'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "workload: bench produce ${args[*]} (RF $brokers runs add: ${cluster_args[*]})"
    echo
    echo "| setup | acks | msgs/s | MB/s | p50 ms | p99 ms | p99.9 ms | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    for label in "$@"; do
        if [ ! -f "$out/$label.json" ]; then echo "| $label | - | no report (failed) | | | | | |"; continue; fi
        jq -r --arg name "$label" '.runs[] | "| \($name) | \(.acks) | \(.msgs_per_s | floor) | \(.mb_per_s * 10 | round / 10) | " +
            (if .acks == "0" then "- | - | - | " else "\(.latency_ms.p50) | \(.latency_ms.p99) | \(.latency_ms["p99.9"]) | " end) +
            "\(.errors) |"' "$out/$label.json"
    done
    echo
    echo "goals (acks=all):"
    echo "  durable: Sluice RF$brokers / Kafka RF$brokers (fsync per batch) throughput: $(ratio "$(field "sluice-$rf-durable" all .mb_per_s)" "$(field "kafka-$rf-fsync-per-batch" all .mb_per_s)" '>=' 2)"
    echo "  durable: Sluice RF$brokers / Kafka RF$brokers (fsync per batch) p99.9:      $(ratio "$(field "sluice-$rf-durable" all '.latency_ms["p99.9"]')" "$(field "kafka-$rf-fsync-per-batch" all '.latency_ms["p99.9"]')" '<=' 0.5)"
    echo "  cached:  Sluice RF$brokers / Kafka RF$brokers (default) throughput:         $(ratio "$(field "sluice-$rf-write-caching" all .mb_per_s)" "$(field "kafka-$rf-default" all .mb_per_s)" '>=' 2)"
    echo "  cached:  Sluice RF$brokers / Kafka RF$brokers (default) p99.9:              $(ratio "$(field "sluice-$rf-write-caching" all '.latency_ms["p99.9"]')" "$(field "kafka-$rf-default" all '.latency_ms["p99.9"]')" '<=' 0.5)"
    echo "  Sluice RF$brokers durable / Sluice RF1 durable throughput:             $(ratio "$(field "sluice-$rf-durable" all .mb_per_s)" "$(field sluice-rf1-durable all .mb_per_s)" '>=' 0.5)"
    if [ ${#failed[@]} -gt 0 ]; then
        echo
        echo "FAILED runs: ${failed[*]}"
    fi
}

# Overlays the reports that exist in one chart.
chart() {
    local name=$1 title=$2 label; shift 2
    local -a reports=()
    for label in "$@"; do [ -f "$out/$label.json" ] && reports+=("$out/$label.json"); done
    [ ${#reports[@]} -gt 0 ] || { echo "== $name: no reports" >&2; return 0; }
    echo "== $name"
    "$bench" compare "${reports[@]}" --title "$title" --svg "$out/$name.svg" --png "$out/$name.png" || true
}

if [ "$brokers" -gt 1 ]; then
    command -v jq >/dev/null || { echo "jq is needed for the summary" >&2; exit 1; }
    caching=(--set log.flush.interval.messages=9223372036854775807 --set log.flush.interval.ms=1000)
    run_sluice sluice-rf1-durable || failed+=(sluice-rf1-durable)
    run_sluice_cluster "sluice-$rf-durable"
    run_kafka_cluster "kafka-$rf-fsync-per-batch" "log.flush.interval.messages=1"
    run_sluice_cluster "sluice-$rf-write-caching" "${caching[@]}"
    run_kafka_cluster "kafka-$rf-default" ""
    ceilings
    chart cluster-durable "Durable (fsync per batch), RF $brokers vs RF 1: produce-ack latency" \
        sluice-rf1-durable "sluice-$rf-durable" "kafka-$rf-fsync-per-batch"
    chart cluster-cached "Write caching (no fsync per batch), RF $brokers: produce-ack latency" \
        "sluice-$rf-write-caching" "kafka-$rf-default"
    summary sluice-rf1-durable "sluice-$rf-durable" "kafka-$rf-fsync-per-batch" \
        "sluice-$rf-write-caching" "kafka-$rf-default" | tee "$out/summary.txt"
    exit 0
fi

run_sluice sluice-durable
run_kafka kafka-fsync-per-batch "log.flush.interval.messages=1"
run_sluice sluice-write-caching --set log.flush.interval.messages=9223372036854775807 --set log.flush.interval.ms=1000
run_kafka kafka-default ""

ceilings

echo "== durable: fsync per batch on both"
"$bench" compare "$out/sluice-durable.json" "$out/kafka-fsync-per-batch.json" \
    --title "Durable (fsync per batch): produce-ack latency" --svg "$out/durable.svg" --png "$out/durable.png"
echo "== cached: no fsync per batch on both"
"$bench" compare "$out/sluice-write-caching.json" "$out/kafka-default.json" \
    --title "Write caching (no fsync per batch): produce-ack latency" --svg "$out/cached.svg" --png "$out/cached.png"
