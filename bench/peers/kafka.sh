#!/usr/bin/env bash
# Apache Kafka 4.1 as bench's side-by-side peer on loopback, from Maven
# Central jars: one KRaft node (broker + controller), or a cluster of N
# such nodes (combined mode, a static controller quorum of all N).
#
#   bench/peers/kafka.sh start [PORT] [DIR]           # default 19092, target/kafka-peer
#   bench/peers/kafka.sh start-cluster N [PORT] [DIR] # default 3, 19092, target/kafka-peer
#   bench/peers/kafka.sh stop [DIR]                   # a node or a cluster started in DIR
#
# One node: client port PORT, controller port PORT+1, data DIR/data, log
# DIR/kafka.log, PID DIR/kafka.pid. Cluster: node i (1..N) has node.id i,
# client port PORT+i-1, controller port PORT+N+i-1, everything in
# DIR/node-i (data/, kafka.log, kafka.pid); the internal topics get
# replication factor min(N,3). start-cluster returns once every node logged
# "Kafka Server started" (KRaft: registered and unfenced), so topics with
# replication factor N can be created at once.
#
# KAFKA_PROPERTIES adds server properties (every node), one key=value per
# line, e.g. KAFKA_PROPERTIES='log.flush.interval.messages=1' for an fsync
# per batch. KAFKA_HEAP (default 1g) sizes each JVM's heap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command=${1:-}
case "$command" in
start)
    port=${2:-19092}
    dir=${3:-$root/target/kafka-peer}
    ;;
start-cluster)
    nodes=${2:-3}
    port=${3:-19092}
    dir=${4:-$root/target/kafka-peer}
    [[ $nodes =~ ^[1-9]$ ]] || { echo "N must be 1..9, not $nodes" >&2; exit 2; }
    ;;
stop)
    dir=${2:-$root/target/kafka-peer}
    ;;
*)
    echo "usage: $0 start [PORT] [DIR] | start-cluster N [PORT] [DIR] | stop [DIR]" >&2
    exit 2
    ;;
esac

# Stops the node(s) of $dir by their PID files: SIGTERM to all at once
# (Kafka stops cleanly on it), then waits for each by its own PID, SIGKILL
# after 30 s.
stop() {
    local pid_file pid
    local -a pids=()
    for pid_file in "$dir/kafka.pid" "$dir"/node-*/kafka.pid; do
        [ -f "$pid_file" ] || continue
        pid=$(cat "$pid_file")
        if kill "$pid" 2>/dev/null; then pids+=("$pid"); fi
        rm -f "$pid_file"
    done
    for _ in $(seq 300); do
        local alive=0
        for pid in ${pids[@]+"${pids[@]}"}; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 1 ] || break
        sleep 0.1
    done
    for pid in ${pids[@]+"${pids[@]}"}; do kill -9 "$pid" 2>/dev/null || true; done
}

if [ "$command" = stop ]; then
    stop
    exit 0
fi

for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "$tool is needed to run Apache Kafka" >&2; exit 1; }
done
if [ ! -f "$here/lib/kafka_2.13-4.1.1.jar" ]; then
    echo "fetching Apache Kafka 4.1.1 from Maven Central" >&2
    (cd "$here" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib)
fi

log4j2() {
    cat > "$1" <<'LOG'
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.started.name=kafka.server.KafkaRaftServer
logger.started.level=INFO
LOG
}

jvm=(java "-Xms${KAFKA_HEAP:-1g}" "-Xmx${KAFKA_HEAP:-1g}" -XX:+UseG1GC)

if [ "$command" = start-cluster ]; then
    stop
    rm -rf "$dir"
    voters=""
    for i in $(seq 1 "$nodes"); do
        voters+="${voters:+,}$i@127.0.0.1:$((port + nodes + i - 1))"
    done
    internal_rf=$((nodes < 3 ? nodes : 3))
    internal_min_isr=$((nodes < 2 ? nodes : 2))
    cluster_id=""
    for i in $(seq 1 "$nodes"); do
        node_dir="$dir/node-$i"
        client_port=$((port + i - 1))
        controller_port=$((port + nodes + i - 1))
        mkdir -p "$node_dir/data"
        cat > "$node_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$client_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$client_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$node_dir/data
num.partitions=1
offsets.topic.replication.factor=$internal_rf
transaction.state.log.replication.factor=$internal_rf
transaction.state.log.min.isr=$internal_min_isr
group.initial.rebalance.delay.ms=0
${KAFKA_PROPERTIES:-}
PROPS
        log4j2 "$node_dir/log4j2.properties"
        cmd=("${jvm[@]}" "-Dlog4j2.configurationFile=$node_dir/log4j2.properties" -cp "$here/lib/*")
        if [ -z "$cluster_id" ]; then
            cluster_id=$("${cmd[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
        fi
        "${cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$node_dir/server.properties" \
            >"$node_dir/format.log" 2>&1
        nohup "${cmd[@]}" kafka.Kafka "$node_dir/server.properties" >"$node_dir/kafka.log" 2>&1 &
        echo $! > "$node_dir/kafka.pid"
    done
    # A node's broker logs "Kafka Server started" once it has registered
    # with the quorum and been unfenced.
    for _ in $(seq 1200); do
        ready=0
        for i in $(seq 1 "$nodes"); do
            node_dir="$dir/node-$i"
            if ! kill -0 "$(cat "$node_dir/kafka.pid")" 2>/dev/null; then
                echo "Apache Kafka node $i exited; the end of $node_dir/kafka.log:" >&2
                tail -20 "$node_dir/kafka.log" >&2
                stop
                exit 1
            fi
            grep -q "Kafka Server started" "$node_dir/kafka.log" && ready=$((ready + 1))
        done
        if [ "$ready" -eq "$nodes" ]; then
            for i in $(seq 1 "$nodes"); do
                echo "Apache Kafka 4.1.1 node $i on 127.0.0.1:$((port + i - 1)) (controller $((port + nodes + i - 1)), pid $(cat "$dir/node-$i/kafka.pid"), logs $dir/node-$i/kafka.log)"
            done
            exit 0
        fi
        sleep 0.1
    done
    echo "Apache Kafka cluster not ready after 120 s; the ends of $dir/node-*/kafka.log:" >&2
    for i in $(seq 1 "$nodes"); do tail -5 "$dir/node-$i/kafka.log" >&2; done
    stop
    exit 1
fi

stop
rm -rf "$dir"
mkdir -p "$dir/data"
controller_port=$((port + 1))
cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
${KAFKA_PROPERTIES:-}
PROPS
cat > "$dir/log4j2.properties" <<'LOG'
rootLogger.level=WARN
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
LOG
java_cmd=(java "-Xms${KAFKA_HEAP:-1g}" "-Xmx${KAFKA_HEAP:-1g}" -XX:+UseG1GC
          "-Dlog4j2.configurationFile=$dir/log4j2.properties" -cp "$here/lib/*")
cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
"${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1
nohup "${java_cmd[@]}" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
echo $! > "$dir/kafka.pid"
for _ in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "Apache Kafka 4.1.1 on 127.0.0.1:$port (pid $(cat "$dir/kafka.pid"), logs $dir/kafka.log)"
        exit 0
    fi
    kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null || break
    sleep 0.1
done
echo "Apache Kafka did not start; see $dir/kafka.log" >&2
tail -20 "$dir/kafka.log" >&2
stop
exit 1
