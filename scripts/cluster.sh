#!/usr/bin/env bash
# Starts, stops and lists a local Sluice cluster on 127.0.0.1: N nodes, each
# a broker and a controller-quorum voter (combined mode, KRaft style).
#
#   scripts/cluster.sh start [N] [--cores C] [--dir D]   N nodes (3), C cores each (1);
#                                                        nodes that run already are kept
#   scripts/cluster.sh stop [--dir D]
#   scripts/cluster.sh status [--dir D]
#
# Node i (1..N) has node.id i, client port 9092+i-1 (9092, 9093, ...),
# controller port 19092+i, admin endpoint (/metrics) 9644+i-1, data dir D/node-i (D: ./data/cluster of the
# repository), its log in D/node-i/broker.log (the previous run's in
# broker.log.1) and its PID in D/node-i/broker.pid. The binary is
# $SLUICE_BROKER_BIN if set, else target/release/broker (built when missing).
#
# "started" means every node's listeners are up; the cluster is usable once
# the quorum has elected a leader and the brokers have registered, a few
# seconds later: `sluice --bootstrap 127.0.0.1:9092 cluster info` shows it.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
readonly root
readonly host=127.0.0.1
readonly client_port_base=9092
readonly controller_port_base=19092
readonly admin_port_base=9644
readonly nodes_max=9
readonly ready_timeout_s=60
readonly stop_timeout_s=10

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

client_port() { echo $((client_port_base + $1 - 1)); }
controller_port() { echo $((controller_port_base + $1)); }
admin_port() { echo $((admin_port_base + $1 - 1)); }

# The PID in $1/broker.pid if that process runs and is the broker of data
# dir $1 (a PID reused by another process does not count); else nothing.
node_pid() {
    local node_dir=$1 pid
    [ -f "$node_dir/broker.pid" ] || return 0
    pid=$(<"$node_dir/broker.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    [ -r "/proc/$pid/cmdline" ] || return 0
    if tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$node_dir"; then
        echo "$pid"
    fi
}

broker_bin() {
    if [ -n "${SLUICE_BROKER_BIN:-}" ]; then
        [ -x "$SLUICE_BROKER_BIN" ] || die "SLUICE_BROKER_BIN=$SLUICE_BROKER_BIN is not an executable"
        echo "$SLUICE_BROKER_BIN"
        return
    fi
    if [ ! -x "$root/target/release/broker" ]; then
        echo "building the broker (cargo build --release -j2 -p broker)" >&2
        (cd "$root" && cargo build --release -j2 -p broker) >&2
    fi
    echo "$root/target/release/broker"
}

# Sends SIGTERM to each given PID, waits up to stop_timeout_s for all, then
# SIGKILLs the ones still there.
stop_pids() {
    local pid waited=0
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    while [ "$waited" -lt $((stop_timeout_s * 10)) ]; do
        local alive=0
        for pid in "$@"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        if [ "$alive" -eq 0 ]; then return 0; fi
        sleep 0.1
        waited=$((waited + 1))
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "pid $pid did not stop within ${stop_timeout_s}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# Waits until node $2 (data dir $1, PID $3) logs the ready line; on a
# timeout or an early exit prints the log's tail and fails.
wait_ready() {
    local node_dir=$1 id=$2 pid=$3 waited=0
    while ! grep -q "sluice broker ready" "$node_dir/broker.log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "node $id exited before it was ready; the end of $node_dir/broker.log:" >&2
            tail -n 20 "$node_dir/broker.log" >&2 || true
            return 1
        fi
        if [ "$waited" -ge $((ready_timeout_s * 10)) ]; then
            echo "node $id not ready after ${ready_timeout_s}s; the end of $node_dir/broker.log:" >&2
            tail -n 20 "$node_dir/broker.log" >&2 || true
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

start() {
    local count=$1 cores=$2 dir=$3 bin voters="" bootstrap="" id
    if ! [[ $count =~ ^[0-9]+$ && $count -ge 1 && $count -le $nodes_max ]]; then
        die "N must be 1..$nodes_max, not $count"
    fi
    if ! [[ $cores =~ ^[0-9]+$ && $cores -ge 1 ]]; then
        die "--cores must be a positive number, not $cores"
    fi
    for id in $(seq 1 "$count"); do
        voters+="${voters:+,}$id@$host:$(controller_port "$id")"
        bootstrap+="${bootstrap:+,}$host:$(client_port "$id")"
    done
    bin=$(broker_bin)
    # Nodes that already run (say, all but one killed node) are left alone.
    local -A started=()
    local ncpu; ncpu=$(nproc)
    if [ "$cores" -gt "$ncpu" ]; then die "--cores $cores: this machine has $ncpu CPUs"; fi
    for id in $(seq 1 "$count"); do
        local node_dir="$dir/node-$id" port cport running
        running=$(node_pid "$node_dir")
        if [ -n "$running" ]; then
            echo "node $id already runs (pid $running)"
            continue
        fi
        port=$(client_port "$id")
        cport=$(controller_port "$id")
        mkdir -p "$node_dir"
        if [ -f "$node_dir/broker.log" ]; then mv -f "$node_dir/broker.log" "$node_dir/broker.log.1"; fi
        # Node i's cores start at CPU (i-1)*cores, wrapping: the nodes share
        # the machine instead of all pinning core 0 to CPU 0.
        local cpus="" c
        for c in $(seq 0 $((cores - 1))); do
            cpus+="${cpus:+,}$(( ((id - 1) * cores + c) % ncpu ))"
        done
        nohup "$bin" --data-dir "$node_dir" --cores "$cores" --listen "$host:$port" \
            --set "node.id=$id" --set "sluice.cpus=$cpus" \
            --set "sluice.admin.listen=$host:$(admin_port "$id")" \
            --set process.roles=broker,controller \
            --set "controller.quorum.voters=$voters" \
            --set "listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport" \
            --set controller.listener.names=CONTROLLER \
            </dev/null >"$node_dir/broker.log" 2>&1 &
        started[$id]=$!
        echo "$!" >"$node_dir/broker.pid"
    done
    for id in $(seq 1 "$count"); do
        [ -n "${started[$id]:-}" ] || continue
        if ! wait_ready "$dir/node-$id" "$id" "${started[$id]}"; then
            echo "stopping the nodes this run started" >&2
            stop_pids "${started[@]}"
            for i in "${!started[@]}"; do rm -f "$dir/node-$i/broker.pid"; done
            exit 1
        fi
        echo "node $id: pid ${started[$id]}, client $host:$(client_port "$id"), controller $host:$(controller_port "$id"), admin http://$host:$(admin_port "$id"), log $dir/node-$id/broker.log"
    done
    echo "bootstrap: $bootstrap"
}

stop() {
    local dir=$1 node_dir pid
    local -a pids=() dirs=()
    for node_dir in "$dir"/node-*; do
        [ -d "$node_dir" ] || continue
        pid=$(node_pid "$node_dir")
        if [ -n "$pid" ]; then
            pids+=("$pid")
            echo "stopping ${node_dir##*/} (pid $pid)"
        fi
        dirs+=("$node_dir")
    done
    [ ${#pids[@]} -eq 0 ] || stop_pids "${pids[@]}"
    for node_dir in ${dirs[@]+"${dirs[@]}"}; do rm -f "$node_dir/broker.pid"; done
    [ ${#pids[@]} -gt 0 ] || echo "no node of $dir runs"
}

status() {
    local dir=$1 node_dir id pid found=0
    printf '%-6s %-8s %-8s %-16s %s\n' NODE STATE PID CLIENT CONTROLLER
    for node_dir in "$dir"/node-*; do
        [ -d "$node_dir" ] || continue
        id=${node_dir##*/node-}
        [[ $id =~ ^[0-9]+$ ]] || continue
        found=1
        pid=$(node_pid "$node_dir")
        printf '%-6s %-8s %-8s %-16s %s\n' "$id" "$([ -n "$pid" ] && echo running || echo stopped)" \
            "${pid:--}" "$host:$(client_port "$id")" "$host:$(controller_port "$id")"
    done
    [ "$found" -eq 1 ] || echo "no cluster in $dir"
}

main() {
    [ $# -ge 1 ] || usage
    local command=$1 count=3 cores=1 dir="$root/data/cluster"
    shift
    if [ "$command" = start ] && [ $# -ge 1 ] && [[ $1 != -* ]]; then
        count=$1
        shift
    fi
    while [ $# -gt 0 ]; do
        case $1 in
            --cores) [ "$command" = start ] || usage; cores=${2:?--cores needs a value}; shift 2 ;;
            --dir) dir=${2:?--dir needs a value}; shift 2 ;;
            -h | --help) usage ;;
            *) echo "cluster.sh: unknown argument $1" >&2; usage ;;
        esac
    done
    dir=$(realpath -m -- "$dir")
    case $command in
        start) start "$count" "$cores" "$dir" ;;
        stop) stop "$dir" ;;
        status) status "$dir" ;;
        *) usage ;;
    esac
}

main "$@"
