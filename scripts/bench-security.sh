#!/usr/bin/env bash
# SASL_SSL against PLAINTEXT on one broker, alternating, ROUNDS rounds
# (docs/benchmarks.md, "Security cost"). Makes its own CA and server
# certificate with openssl, starts target/release/broker --cores 1 on
# loopback with both listeners, runs bench produce (closed loop and a
# fixed rate), bench consume and bench connect, then stops the broker by
# its PID. Usage: scripts/bench-security.sh [ROUNDS] (default 3)
# PIN=1 puts the broker on CPU 0 and bench on CPU 1 (taskset), so the
# broker's cost is not mixed with the client's, and bench reports the
# broker's CPU per MB (--broker-pid).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build -j2 --release -p broker -p bench -p tools >/dev/null
BROKER=target/release/broker
BENCH=target/release/bench
dir=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$dir/ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/ext" -out "$dir/server.pem" 2>/dev/null
cat "$dir/server.key" "$dir/server.pem" >"$dir/keystore.pem"

plain=127.0.0.1:19092
secure=127.0.0.1:19093
pin_broker=()
BENCH_RUN=("$BENCH")
if [ "${PIN:-0}" = 1 ]; then
    pin_broker=(--set sluice.cpus=0)
    BENCH_RUN=(taskset -c 1 "$BENCH")
fi
"$BROKER" --cores 1 "${pin_broker[@]}" --data-dir "$dir/data" --listen "$plain" --set sluice.admin.listen= \
    --set "listeners=SASL_SSL://$secure" --set "ssl.keystore.location=$dir/keystore.pem" \
    --set 'listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_bench="bench-secret";' \
    >"$dir/broker.log" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "sluice broker ready" "$dir/broker.log" && break; sleep 0.1; done
grep -q "sluice broker ready" "$dir/broker.log" || { cat "$dir/broker.log"; exit 1; }

sec=(--security-protocol SASL_SSL --sasl-mechanism PLAIN --sasl-username bench
     --sasl-password bench-secret --ssl-ca-location "$dir/ca.pem")
export RUST_BACKTRACE=0
for round in $(seq "$rounds"); do
    for mode in plaintext sasl_ssl; do
        if [ "$mode" = plaintext ]; then args=(--bootstrap "$plain"); else args=(--bootstrap "$secure" "${sec[@]}"); fi
        echo "== round $round $mode: closed loop"
        "${BENCH_RUN[@]}" produce "${args[@]}" --acks all --partitions 4 --producers 2 --duration-s 5 \
            --broker-pid "$pid" --topic "closed-$mode-$round" | grep -E "^acks|^ all|broker"
        echo "== round $round $mode: 50000 msg/s, then consume what it wrote"
        target/release/sluice topic create --bootstrap "$plain" -p 4 "rate-$mode-$round" >/dev/null
        "${BENCH_RUN[@]}" produce "${args[@]}" --acks all --partitions 4 --producers 2 --duration-s 5 \
            --rate 50000 --topic "rate-$mode-$round" --keep-topic | grep -E "^acks|^ all"
        "${BENCH_RUN[@]}" consume "${args[@]}" --topic "rate-$mode-$round" | tail -3
        echo "== round $round $mode: connections"
        "${BENCH_RUN[@]}" connect "${args[@]}" --count 200
    done
done
