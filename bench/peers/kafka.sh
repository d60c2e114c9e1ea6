#!/usr/bin/env bash
# Apache Kafka 4.1 as bench's side-by-side peer: one KRaft node (broker +
# controller) on loopback, from Maven Central jars.
#
#   bench/peers/kafka.sh start [PORT] [DIR]   # default 19092, target/kafka-peer
#   bench/peers/kafka.sh stop [DIR]
#
# KAFKA_PROPERTIES adds server properties, one key=value per line, e.g.
# KAFKA_PROPERTIES='log.flush.interval.messages=1' for an fsync per batch.
# KAFKA_HEAP (default 1g) sizes the JVM heap.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command=${1:-}
case "$command" in
start)
    port=${2:-19092}
    dir=${3:-$root/target/kafka-peer}
    ;;
stop)
    dir=${2:-$root/target/kafka-peer}
    ;;
*)
    echo "usage: $0 start [PORT] [DIR] | stop [DIR]" >&2
    exit 2
    ;;
esac

stop() {
    if [ -f "$dir/kafka.pid" ]; then
        pid=$(cat "$dir/kafka.pid")
        if kill "$pid" 2>/dev/null; then
            # Kafka stops cleanly on SIGTERM; wait for it by its own PID.
            for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$dir/kafka.pid"
    fi
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
